//! TLS for Silt's listeners (Kafka, HTTP): a rustls server configuration built from PEM
//! files, optionally verifying client certificates (mTLS), and a listener that completes
//! TLS handshakes concurrently for HTTP servers.
//!
//! The crypto provider is aws-lc-rs, the one the object-store client already links.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use serde::{Deserialize, Serialize};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tracing::debug;

#[cfg(feature = "test-pki")]
pub mod test_pki;

pub use rustls::ServerConfig;

/// ALPN protocols of HTTP listeners (the HTTP API, the metadata service).
pub const HTTP_ALPN: &[&[u8]] = &[b"h2", b"http/1.1"];

/// Longest a client may take to complete its TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Whether clients must present a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientAuth {
    /// No client certificates are asked for.
    #[default]
    None,
    /// A certificate is asked for and verified when given; clients without one connect.
    Optional,
    /// Clients without a certificate signed by `client_ca_file` are refused.
    Required,
}

/// The `[tls]` settings: one certificate for every listener that enables TLS.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsSettings {
    /// PEM file with the server certificate, then its intermediates.
    pub cert_file: Option<PathBuf>,
    /// PEM file with the server's private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: Option<PathBuf>,
    /// PEM file with the certificate authorities client certificates must chain to.
    pub client_ca_file: Option<PathBuf>,
    pub client_auth: ClientAuth,
    /// PEM file with the authorities this node trusts when it connects to the metadata
    /// service over `https://` (default: the system's). When that service asks for a
    /// client certificate, the node presents `cert_file` and `key_file`.
    pub ca_file: Option<PathBuf>,
    /// What of a verified client certificate becomes the principal (`User:` and it).
    pub principal: PrincipalFrom,
}

/// How a client certificate names its principal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PrincipalFrom {
    /// The whole subject in RFC 2253 form, as Kafka does: `CN=alice,OU=eng,O=Example`.
    #[default]
    Subject,
    /// The subject's common name alone: `alice`.
    CommonName,
}

/// The principal name a client certificate (DER) gives, or `None` if it cannot be read
/// (or, for `CommonName`, has none).
pub fn certificate_principal(der: &[u8], from: PrincipalFrom) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let subject = cert.subject();
    match from {
        PrincipalFrom::CommonName => subject
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .map(str::to_string),
        PrincipalFrom::Subject => {
            let registry = x509_parser::objects::oid_registry();
            // RFC 2253: the last RDN first; attributes of one RDN joined by '+'.
            let rdns: Vec<String> = subject
                .iter_rdn()
                .map(|rdn| {
                    rdn.iter()
                        .map(|atv| {
                            let key = x509_parser::objects::oid2abbrev(atv.attr_type(), registry)
                                .map_or_else(|_| atv.attr_type().to_id_string(), str::to_string);
                            let value = atv.as_str().map_or_else(
                                |_| format!("#{}", hex(atv.attr_value().as_bytes())),
                                escape_rfc2253,
                            );
                            format!("{key}={value}")
                        })
                        .collect::<Vec<_>>()
                        .join("+")
                })
                .collect();
            Some(rdns.into_iter().rev().collect::<Vec<_>>().join(","))
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn escape_rfc2253(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';' | '=')
            || (i == 0 && (c == '#' || c == ' '))
            || (i == last && c == ' ');
        if special {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("tls.{setting} must be set to enable TLS on a listener")]
    Missing { setting: &'static str },
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: rustls::pki_types::pem::Error,
    },
    #[error("{path} holds no certificate")]
    NoCertificate { path: PathBuf },
    #[error("tls.client_auth = {0:?} needs tls.client_ca_file")]
    NoClientCa(ClientAuth),
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("client certificate verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
}

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|source| TlsError::Read {
            path: path.to_path_buf(),
            source,
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

/// Builds the server configuration: the certificate chain and key, and the client
/// certificate policy. `alpn` lists the application protocols offered (HTTP: `h2`,
/// `http/1.1`; Kafka: none).
pub fn server_config(
    settings: &TlsSettings,
    alpn: &[&[u8]],
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let cert_file = settings.cert_file.as_deref().ok_or(TlsError::Missing {
        setting: "cert_file",
    })?;
    let key_file = settings.key_file.as_deref().ok_or(TlsError::Missing {
        setting: "key_file",
    })?;
    let chain = certificates(cert_file)?;
    let key = PrivateKeyDer::from_pem_file(key_file).map_err(|source| TlsError::Read {
        path: key_file.to_path_buf(),
        source,
    })?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let builder = match (settings.client_auth, &settings.client_ca_file) {
        (ClientAuth::None, _) => builder.with_no_client_auth(),
        (auth, None) => return Err(TlsError::NoClientCa(auth)),
        (auth, Some(ca_file)) => {
            let mut roots = RootCertStore::empty();
            for ca in certificates(ca_file)? {
                roots.add(ca)?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = if auth == ClientAuth::Optional {
                verifier.allow_unauthenticated().build()?
            } else {
                verifier.build()?
            };
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_single_cert(chain, key)?;
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

/// Completes the TLS handshake of an accepted connection, within [`HANDSHAKE_TIMEOUT`].
/// Failures count in `silt_tls_handshake_failures_total`.
pub async fn handshake(
    acceptor: &TlsAcceptor,
    stream: TcpStream,
) -> io::Result<TlsStream<TcpStream>> {
    let done = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out"))
        .and_then(|r| r);
    if done.is_err() {
        metrics::counter!("silt_tls_handshake_failures_total").increment(1);
    }
    done
}

/// A listener yielding connections whose TLS handshake is complete, for `axum::serve`.
/// Handshakes run concurrently, each in its own task: a client that stalls its handshake
/// holds up nobody else; one that fails it is dropped (and logged at debug level).
pub struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl TlsListener {
    pub fn new(listener: TcpListener, config: Arc<rustls::ServerConfig>) -> io::Result<Self> {
        let local = listener.local_addr()?;
        let acceptor = TlsAcceptor::from(config);
        let (tx, ready) = mpsc::channel(64);
        tokio::spawn(async move {
            loop {
                let (stream, peer) = match listener.accept().await {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        debug!(error = %e, "accepting a connection failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let (acceptor, ready) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    match handshake(&acceptor, stream).await {
                        Ok(tls) => {
                            let _ = ready.send((tls, peer)).await;
                        }
                        Err(e) => debug!(%peer, error = %e, "TLS handshake failed"),
                    }
                });
                if tx.is_closed() {
                    return;
                }
            }
        });
        Ok(Self { ready, local })
    }
}

/// The client address of an HTTP connection, plaintext or TLS, for axum's `ConnectInfo`
/// (serve with `into_make_service_with_connect_info::<PeerAddr>()`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerAddr(pub SocketAddr);

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, TcpListener>>
    for PeerAddr
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, TcpListener>) -> Self {
        Self(*stream.remote_addr())
    }
}

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, TlsListener>>
    for PeerAddr
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, TlsListener>) -> Self {
        Self(*stream.remote_addr())
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(ready) => ready,
            // The accept loop only stops once this listener is gone.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.local)
    }
}
