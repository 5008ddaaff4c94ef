//! Handshakes against the TLS listener with a rustls client: server-only TLS, client
//! certificates optional and required, and configurations that must be refused.

use axum::serve::Listener;
use rustls::pki_types::ServerName;
use silt_tls::test_pki::Pki;
use silt_tls::{ClientAuth, TlsError, TlsListener, TlsSettings, server_config};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

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

#[test]
fn client_certificates_name_their_principal() {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let pki = Pki::new();
    let der = CertificateDer::from_pem_file(pki.path("alice.pem")).expect("alice");
    assert_eq!(
        silt_tls::certificate_principal(&der, silt_tls::PrincipalFrom::Subject).as_deref(),
        Some("CN=alice,O=Example\\, Inc.")
    );
    assert_eq!(
        silt_tls::certificate_principal(&der, silt_tls::PrincipalFrom::CommonName).as_deref(),
        Some("alice")
    );
    assert_eq!(
        silt_tls::certificate_principal(b"not a certificate", silt_tls::PrincipalFrom::Subject),
        None
    );
}
