//! Wiring the roles of one node together, and stopping them in order.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use object_store::ObjectStore;
use silt_groups::{Coordinator, GroupConfig, GroupService};
use silt_http::{AppState, HttpLimits};
use silt_ingest::{Ingest, IngestConfig, SegmentListener, WrittenSegment};
use silt_kafka::{KafkaConfig, KafkaState};
use silt_metadata::{MetadataStore, SqliteStore};
use silt_reader::{Reader, ReaderConfig};
use silt_storage::{InstrumentedStore, StoreSettings, build_store};
use tokio_util::sync::CancellationToken;
use tracing::info;
use tracing_subscriber::EnvFilter;

use crate::config::Config;

pub fn init_tracing(filter: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(filter));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .init();
}

fn install_metrics() -> anyhow::Result<PrometheusHandle> {
    let latency = [
        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    ];
    PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &latency)?
        .install_recorder()
        .context("installing the metrics recorder")
}

/// Puts every segment this node writes into its reader's cache, so that tailing
/// consumers on this node never read the object back.
struct CacheOnWrite(Reader);

impl SegmentListener for CacheOnWrite {
    fn segment_written(&self, segment: &WrittenSegment) {
        self.0.cache_segment(
            &segment.key,
            &segment.data,
            segment.footer_len,
            segment
                .chunks
                .iter()
                .map(|c| (c.row_group as u32, c.byte_start, c.byte_len)),
        );
    }
}

fn store_settings(config: &Config) -> StoreSettings {
    if config.storage.s3.bucket.is_empty() {
        StoreSettings::Local {
            root: config.objects_dir(),
        }
    } else {
        StoreSettings::S3(config.storage.s3.clone())
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}

/// Runs every role in this process until SIGTERM or Ctrl-C, then stops accepting
/// requests, flushes and commits buffered records, and exits.
pub async fn run_dev(config: Config) -> anyhow::Result<()> {
    let metrics = install_metrics()?;
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating data_dir {}", config.data_dir.display()))?;

    let raw_store = build_store(&store_settings(&config)).await?;
    let store: Arc<dyn ObjectStore> = Arc::new(InstrumentedStore::new(raw_store));
    let sqlite = Arc::new(
        SqliteStore::open(&config.metadata_path())
            .await
            .with_context(|| format!("opening metadata at {}", config.metadata_path().display()))?,
    );
    let metadata: Arc<dyn MetadataStore> = sqlite.clone();

    let reader_config = ReaderConfig {
        memory_cache_bytes: config.cache.memory_bytes,
        disk_cache_bytes: config.cache.disk_bytes,
        cache_dir: config.cache_dir(),
        ..ReaderConfig::default()
    };
    let reader = Reader::build(reader_config, store.clone(), metadata.clone()).await?;
    let ingest_config = IngestConfig {
        linger: config.ingest.linger,
        max_segment_bytes: config.ingest.max_segment_bytes,
        max_buffered_bytes: config.ingest.max_buffered_bytes,
        max_inflight_segments: config.ingest.max_inflight_segments,
    };
    let listener: Arc<dyn SegmentListener> = Arc::new(CacheOnWrite(reader.clone()));
    let ingest = Ingest::start(
        ingest_config,
        store.clone(),
        metadata.clone(),
        Some(listener),
    );

    let coordinator = Coordinator::start(GroupConfig::default(), metadata.clone());
    let groups: Arc<dyn GroupService> = Arc::new(coordinator.clone());
    let limits = HttpLimits {
        max_message_bytes: config.http.max_message_bytes,
        max_request_bytes: config.http.max_request_bytes,
        max_wait_ms: config.http.max_wait.as_millis() as u64,
    };
    let render = Arc::new(move || metrics.render());
    let state = AppState::new(
        metadata.clone(),
        ingest.clone(),
        reader.clone(),
        groups.clone(),
        limits,
        Some(render),
    );
    let app = silt_http::router(state);
    let http = tokio::net::TcpListener::bind(config.http.addr)
        .await
        .with_context(|| format!("binding HTTP to {}", config.http.addr))?;

    let kafka_listener = tokio::net::TcpListener::bind(config.kafka.addr)
        .await
        .with_context(|| format!("binding Kafka to {}", config.kafka.addr))?;
    let (advertised_host, advertised_port) = config.kafka.advertised()?;
    let kafka_config = KafkaConfig {
        advertised_host,
        advertised_port,
        node_id: config.kafka.node_id,
        cluster_id: config.kafka.cluster_id.clone(),
        max_frame_bytes: config.kafka.max_frame_bytes,
        auto_create_topics: config.kafka.auto_create_topics,
        default_partitions: config.kafka.default_partitions,
        max_message_bytes: config.http.max_message_bytes,
        ..KafkaConfig::default()
    };
    let kafka_state = KafkaState {
        config: Arc::new(kafka_config),
        metadata: metadata.clone(),
        ingest: ingest.clone(),
        reader: reader.clone(),
        groups: groups.clone(),
    };
    info!(
        http = %http.local_addr()?,
        kafka = %kafka_listener.local_addr()?,
        data_dir = %config.data_dir.display(),
        store = %store,
        "silt dev is ready"
    );

    let stop = CancellationToken::new();
    let http_stop = stop.clone();
    let http_server = tokio::spawn(async move {
        axum::serve(http, app)
            .with_graceful_shutdown(async move { http_stop.cancelled().await })
            .await
    });
    let kafka_server = tokio::spawn(silt_kafka::serve(kafka_listener, kafka_state, stop.clone()));

    shutdown_signal().await;
    info!("shutting down: flushing buffered records, then closing connections");
    // Stop accepting work, write and commit everything buffered (producers waiting on it
    // get their answers), then give open connections a moment to drain, not forever:
    // long polls and live tails would otherwise hold the exit.
    stop.cancel();
    ingest.shutdown().await;
    coordinator.shutdown();
    let drained = tokio::time::timeout(Duration::from_secs(5), async {
        let _ = http_server.await;
        let _ = kafka_server.await;
    })
    .await;
    if drained.is_err() {
        info!("connections still open after 5s; closing them");
    }
    reader.close().await;
    sqlite.close().await;
    info!("stopped");
    Ok(())
}
