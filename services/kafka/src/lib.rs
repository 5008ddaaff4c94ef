//! The Kafka wire-protocol front door: existing Kafka producers, consumers and admin
//! tools (librdkafka/kcat, the Java client, kafka-python, kafkajs) work against Silt.
//!
//! Every request and response, and record batches, are encoded and decoded by the
//! `kafka-protocol` crate (generated from Kafka's own message specs). Produced records go
//! through the same [`Ingest`] as the HTTP door and fetches through the same [`Reader`],
//! so both doors see each other's data. Idempotent producers are checked by the metadata
//! service in the commit that assigns offsets. Any node serves any partition: the leader
//! named in Metadata responses is only a routing hint.
//!
//! Depends on `silt-ingest`, `silt-reader`, `silt-segment`, `silt-metadata`, `silt-groups`
//! (the group coordinator), `silt-auth` (SASL, ACLs) and `silt-tls`; nothing depends on it
//! but the binary.

mod apis;
mod cluster;
mod configs;
mod connection;
mod describe;
mod error;
mod fetch;
mod groups;
mod metadata;
mod produce;
mod records;
mod security;
mod settings;
mod topics;
mod transactions;

pub use transactions::{
    TIMEOUT_SCAN_INTERVAL, abort_expired_transactions, run_transaction_timeouts,
};

use std::sync::Arc;

use silt_auth::Principal;
use silt_groups::GroupService;
use silt_ingest::Ingest;
use silt_metadata::{MetadataStore, Role};
use silt_reader::Reader;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
pub use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

pub use apis::{SupportedApi, api_table, supported_apis};
pub use security::{KafkaSecurity, SASL_MECHANISMS};
pub use settings::KafkaSettings;

/// The record batch codec of the produce and fetch paths (Kafka v2 batches ↔ Silt
/// records), public for the micro benchmarks and fuzz targets.
pub mod codec {
    pub use crate::records::{IncomingBatch, decode_batches, encode_batch};
}
pub use cluster::NodeCache;

/// What the Kafka door needs to know of its node: who it is (advertised address, broker
/// id, roles, rack) and its `[kafka]` settings.
#[derive(Debug, Clone)]
pub struct KafkaConfig {
    /// Host and port clients are told to connect to (Metadata responses).
    pub advertised_host: String,
    pub advertised_port: u16,
    /// This node's broker id.
    pub node_id: i32,
    /// Roles this node runs (listed with it to other nodes).
    pub roles: Vec<Role>,
    /// Availability zone or rack (Kafka's `broker.rack`).
    pub rack: Option<String>,
    /// The `[kafka]` settings: cluster id, frame and memory limits, authentication.
    pub settings: KafkaSettings,
    /// What DescribeLogDirs calls the node's one log directory: its object store.
    pub log_dir: String,
    /// Requests handled at once per connection (responses still go out in order). A
    /// produce waits a linger plus an upload and a commit, so a client spreading records
    /// over many partitions keeps many small requests outstanding; memory is bounded by
    /// `max_queued_request_bytes` and ingest's budget, not by this count.
    pub max_inflight_per_connection: usize,
    /// `retention.ms` of topics that set none (this node's `compactor.default_retention_ms`;
    /// -1 keeps records forever), as DescribeConfigs shows it.
    pub default_retention_ms: i64,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        Self {
            advertised_host: "127.0.0.1".into(),
            advertised_port: 9092,
            node_id: 0,
            roles: vec![Role::Ingest, Role::Reader],
            rack: None,
            settings: KafkaSettings::default(),
            log_dir: "object store".into(),
            max_inflight_per_connection: 1024,
            default_retention_ms: silt_metadata::TopicConfigDefaults::default().retention_ms,
        }
    }
}

/// What every connection shares.
#[derive(Clone)]
pub struct KafkaState {
    pub config: Arc<KafkaConfig>,
    pub metadata: Arc<dyn MetadataStore>,
    pub ingest: Ingest,
    pub reader: Reader,
    pub groups: Arc<dyn GroupService>,
    /// Live nodes, cached briefly.
    pub nodes: Arc<NodeCache>,
    /// Authentication and ACLs.
    pub security: Arc<KafkaSecurity>,
}

/// Answers one request frame (the bytes after its size prefix) as a connection would:
/// `Ok(None)` for a request that takes no answer (a produce with acks=0), `Err` with the
/// reason when a connection would be closed over it. The fuzz targets drive the request
/// path through this without sockets.
pub async fn answer_frame(
    state: &KafkaState,
    mut frame: bytes::Bytes,
) -> Result<Option<bytes::Bytes>, String> {
    let ctx = connection::decode_header(&mut frame).map_err(|e| e.to_string())?;
    match apis::handle(state, &ctx, frame)
        .await
        .map_err(|e| format!("{:?} v{}: {e}", ctx.api_key, ctx.version))?
    {
        apis::Reply::Now(answer) => Ok(answer),
        apis::Reply::Later(future) => Ok(future.await),
    }
}

/// Accepts Kafka connections until `shutdown` fires, then waits for open connections to
/// finish their in-flight requests (bounded by the caller's own timeout). With `tls`,
/// every connection starts with a TLS handshake (Kafka's `SSL` listener); without it,
/// connections are plaintext.
pub async fn serve(
    listener: TcpListener,
    state: KafkaState,
    tls: Option<TlsAcceptor>,
    shutdown: CancellationToken,
) {
    let connections = TaskTracker::new();
    let pool = Arc::new(Semaphore::new(
        state.config.settings.max_queued_request_bytes.max(1),
    ));
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = shutdown.cancelled() => break,
        };
        match accepted {
            Ok((stream, peer)) => {
                let state = state.clone();
                let shutdown = shutdown.clone();
                let pool = pool.clone();
                let tls = tls.clone();
                let _ = stream.set_nodelay(true);
                connections.spawn(async move {
                    match tls {
                        None => {
                            let principal = Principal::anonymous();
                            connection::run(stream, peer, principal, state, pool, shutdown).await;
                        }
                        Some(acceptor) => match silt_tls::handshake(&acceptor, stream).await {
                            Ok(stream) => {
                                // A verified client certificate names the principal (until
                                // SASL, if the listener has it, names another).
                                let principal = stream
                                    .get_ref()
                                    .1
                                    .peer_certificates()
                                    .and_then(|chain| chain.first())
                                    .and_then(|cert| {
                                        silt_tls::certificate_principal(
                                            cert,
                                            state.security.tls_principal,
                                        )
                                    })
                                    .map_or_else(Principal::anonymous, |name| {
                                        Principal::user(&name)
                                    });
                                connection::run(stream, peer, principal, state, pool, shutdown)
                                    .await;
                            }
                            Err(e) => warn!(%peer, error = %e, "Kafka TLS handshake failed"),
                        },
                    }
                });
            }
            Err(e) => {
                warn!(error = %e, "accepting a Kafka connection failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
    connections.close();
    connections.wait().await;
    info!("Kafka listener stopped");
}
