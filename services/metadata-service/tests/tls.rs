//! The metadata service over TLS with client certificates required: a node presenting a
//! certificate from the trusted authority works; one without a certificate, or not
//! trusting the service's authority, gets no answer.

use std::sync::Arc;
use std::time::Duration;

use silt_groups::GroupConfig;
use silt_metadata::{CatalogStore, SqliteStore, TopicConfig};
use silt_metadata_service::{ClientConfig, MetadataClient, MetadataService, serve};
use silt_tls::ClientAuth;
use silt_tls::test_pki::Pki;
use tokio_util::sync::CancellationToken;

fn client(url: &str, ca: Option<Vec<u8>>, identity: Option<Vec<u8>>) -> MetadataClient {
    let mut config = ClientConfig::new(vec![url.to_string()]);
    config.tls_ca_pem = ca;
    config.tls_identity_pem = identity;
    config.retry_for = Duration::from_secs(2);
    MetadataClient::connect(config).expect("client")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_metadata_service_over_tls_with_client_certificates() {
    let pki = Pki::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(&dir.path().join("meta.db"))
        .await
        .expect("opens");
    let service = MetadataService::new(Arc::new(store), GroupConfig::default());
    service.activate(0);
    let tls = silt_tls::server_config(&pki.settings(ClientAuth::Required), silt_tls::HTTP_ALPN)
        .expect("server config");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binds");
    let url = format!(
        "https://localhost:{}",
        listener.local_addr().expect("addr").port()
    );
    let stop = CancellationToken::new();
    tokio::spawn(serve(listener, service, Some(tls), stop.clone()));

    let mut alice = pki.pem("alice.pem");
    alice.extend(pki.pem("alice.key"));
    let trusted = client(&url, Some(pki.pem("ca.pem")), Some(alice.clone()));
    trusted
        .wait_connected(Duration::from_secs(10))
        .await
        .expect("connects over TLS");
    trusted
        .create_topic("over-tls", 3, TopicConfig::default())
        .await
        .expect("creates a topic");
    let topics = trusted.topics().await.expect("lists topics");
    assert_eq!(topics.len(), 1);
    assert_eq!(
        (topics[0].name.as_str(), topics[0].partitions),
        ("over-tls", 3)
    );

    // No client certificate: the handshake is refused.
    let anonymous = client(&url, Some(pki.pem("ca.pem")), None);
    assert!(anonymous.topics().await.is_err());
    // Not trusting the service's authority (the system's roots only): refused too.
    let untrusting = client(&url, None, Some(alice));
    assert!(untrusting.topics().await.is_err());
    stop.cancel();
}
