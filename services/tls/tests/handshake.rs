//! Handshakes against the TLS listener with a rustls client: server-only TLS, client
//! certificates optional and required, and configurations that must be refused.

use std::path::PathBuf;
use std::sync::Arc;

use axum::serve::Listener;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use silt_tls::{ClientAuth, TlsError, TlsListener, TlsSettings, server_config};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    /// A CA, a server certificate for `localhost` and client certificates for alice
    /// (signed by the CA) and mallory (self-signed).
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let ca_key = KeyPair::generate().expect("key");
        let mut ca = CertificateParams::new(Vec::<String>::new()).expect("params");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name.push(DnType::CommonName, "test CA");
        let ca_cert = ca.self_signed(&ca_key).expect("CA");
        std::fs::write(dir.path().join("ca.pem"), ca_cert.pem()).expect("write");
        let issuer = Issuer::new(ca, ca_key);

        let write = |name: &str, params: CertificateParams, signed: bool| {
            let key = KeyPair::generate().expect("key");
            let cert = if signed {
                params.signed_by(&key, &issuer)
            } else {
                params.self_signed(&key)
            }
            .expect("certificate");
            std::fs::write(dir.path().join(format!("{name}.pem")), cert.pem()).expect("write");
            std::fs::write(dir.path().join(format!("{name}.key")), key.serialize_pem())
                .expect("write");
        };
        let mut server = CertificateParams::new(vec!["localhost".into()]).expect("params");
        server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        write("server", server, true);
        for (name, signed) in [("alice", true), ("mallory", false)] {
            let mut client = CertificateParams::new(Vec::<String>::new()).expect("params");
            client.distinguished_name.push(DnType::CommonName, name);
            client.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
            write(name, client, signed);
        }
        Self { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn settings(&self, client_auth: ClientAuth) -> TlsSettings {
        TlsSettings {
            cert_file: Some(self.path("server.pem")),
            key_file: Some(self.path("server.key")),
            client_ca_file: (client_auth != ClientAuth::None).then(|| self.path("ca.pem")),
            client_auth,
        }
    }

    fn client(&self, cert: Option<&str>) -> tokio_rustls::TlsConnector {
        let mut roots = rustls::RootCertStore::empty();
        for ca in CertificateDer::pem_file_iter(self.path("ca.pem")).expect("ca") {
            roots.add(ca.expect("ca")).expect("root");
        }
        let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots);
        let config = match cert {
            None => builder.with_no_client_auth(),
            Some(name) => {
                let chain = CertificateDer::pem_file_iter(self.path(&format!("{name}.pem")))
                    .expect("chain")
                    .collect::<Result<Vec<_>, _>>()
                    .expect("chain");
                let key =
                    PrivateKeyDer::from_pem_file(self.path(&format!("{name}.key"))).expect("key");
                builder
                    .with_client_auth_cert(chain, key)
                    .expect("client cert")
            }
        };
        tokio_rustls::TlsConnector::from(Arc::new(config))
    }
}

/// Serves an echo over the TLS listener; returns whether a client with `cert` gets its
/// bytes back.
async fn echo_works(pki: &Pki, client_auth: ClientAuth, cert: Option<&str>) -> bool {
    let config = server_config(&pki.settings(client_auth), &[]).expect("server config");
    let tcp = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = tcp.local_addr().expect("addr");
    let mut listener = TlsListener::new(tcp, config).expect("listener");
    tokio::spawn(async move {
        loop {
            let (mut stream, _) = listener.accept().await;
            tokio::spawn(async move {
                let mut buf = [0u8; 5];
                if stream.read_exact(&mut buf).await.is_ok() {
                    let _ = stream.write_all(&buf).await;
                    let _ = stream.flush().await;
                }
            });
        }
    });
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let name = ServerName::try_from("localhost").expect("name");
    let Ok(mut tls) = pki.client(cert).connect(name, tcp).await else {
        return false;
    };
    if tls.write_all(b"hello").await.is_err() || tls.flush().await.is_err() {
        return false;
    }
    let mut back = [0u8; 5];
    let read = tokio::time::timeout(std::time::Duration::from_secs(5), tls.read_exact(&mut back));
    matches!(read.await, Ok(Ok(_))) && &back == b"hello"
}

#[tokio::test]
async fn server_only_tls() {
    let pki = Pki::new();
    assert!(echo_works(&pki, ClientAuth::None, None).await);
}

#[tokio::test]
async fn required_client_certificates() {
    let pki = Pki::new();
    assert!(echo_works(&pki, ClientAuth::Required, Some("alice")).await);
    assert!(
        !echo_works(&pki, ClientAuth::Required, None).await,
        "no certificate"
    );
    assert!(
        !echo_works(&pki, ClientAuth::Required, Some("mallory")).await,
        "a certificate from an unknown authority"
    );
}

#[tokio::test]
async fn optional_client_certificates() {
    let pki = Pki::new();
    assert!(echo_works(&pki, ClientAuth::Optional, None).await);
    assert!(echo_works(&pki, ClientAuth::Optional, Some("alice")).await);
    assert!(
        !echo_works(&pki, ClientAuth::Optional, Some("mallory")).await,
        "a certificate, when given, must verify"
    );
}

#[test]
fn incomplete_or_wrong_settings_are_refused() {
    let pki = Pki::new();
    let missing = server_config(&TlsSettings::default(), &[]);
    assert!(matches!(
        missing,
        Err(TlsError::Missing {
            setting: "cert_file"
        })
    ));
    let no_ca = TlsSettings {
        client_ca_file: None,
        ..pki.settings(ClientAuth::Required)
    };
    assert!(matches!(
        server_config(&no_ca, &[]),
        Err(TlsError::NoClientCa(_))
    ));
    let key_as_cert = TlsSettings {
        cert_file: Some(pki.path("server.key")),
        ..pki.settings(ClientAuth::None)
    };
    assert!(server_config(&key_as_cert, &[]).is_err());
    let wrong_key = TlsSettings {
        key_file: Some(pki.path("alice.key")),
        ..pki.settings(ClientAuth::None)
    };
    assert!(
        server_config(&wrong_key, &[]).is_err(),
        "a key that is not the certificate's"
    );
}
