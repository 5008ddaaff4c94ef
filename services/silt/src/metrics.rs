//! Every metric the node exports, declared once with its help text: `/metrics` carries a
//! `# HELP` line for each, and docs/operations.md lists exactly these (a test keeps the
//! two in step).

/// What kind of metric a name is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// Name, kind and help of every metric.
pub(crate) const METRICS: &[(&str, Kind, &str)] = &[
    (
        "silt_produce_records_total",
        Kind::Counter,
        "records accepted by a front door",
    ),
    (
        "silt_produce_bytes_total",
        Kind::Counter,
        "bytes of records accepted by a front door",
    ),
    (
        "silt_consume_records_total",
        Kind::Counter,
        "records served by a front door",
    ),
    (
        "silt_consume_bytes_total",
        Kind::Counter,
        "bytes of records served by a front door",
    ),
    (
        "silt_ingest_records_total",
        Kind::Counter,
        "committed records, segments, segment bytes",
    ),
    (
        "silt_ingest_segments_total",
        Kind::Counter,
        "committed records, segments, segment bytes",
    ),
    (
        "silt_ingest_segment_bytes_total",
        Kind::Counter,
        "committed records, segments, segment bytes",
    ),
    (
        "silt_reader_object_errors_total",
        Kind::Counter,
        "chunk reads that failed: missing (object deleted), corrupt (does not decode, or not into what the index says), unavailable (store error)",
    ),
    (
        "silt_faults_injected_total",
        Kind::Counter,
        "test clusters only: injected object-store faults (error, lost_ack, slow)",
    ),
    (
        "silt_memory_allocated_bytes",
        Kind::Gauge,
        "bytes the process has allocated (jemalloc, every second)",
    ),
    (
        "silt_memory_resident_bytes",
        Kind::Gauge,
        "bytes of physical memory the allocator holds (most of RSS)",
    ),
    (
        "silt_ingest_buffered_bytes",
        Kind::Gauge,
        "bytes held by ingest (backpressure budget in use)",
    ),
    (
        "silt_ingest_backpressure_waits_total",
        Kind::Counter,
        "appends that had to wait for ingest budget (the node was writing as fast as it could)",
    ),
    (
        "silt_ingest_segment_write_failures_total",
        Kind::Counter,
        "segments whose write to the object store failed (their producers got an error and retry); the log warns once per 10 s with the count since the last warning",
    ),
    (
        "silt_kafka_request_pool_waits_total",
        Kind::Counter,
        "Kafka frames whose reading waited for the request pool (kafka.max_queued_request_bytes)",
    ),
    (
        "silt_ingest_write_seconds",
        Kind::Histogram,
        "encode + PUT time per segment",
    ),
    (
        "silt_ingest_commit_seconds",
        Kind::Histogram,
        "metadata commit time per segment",
    ),
    (
        "silt_object_requests_total",
        Kind::Counter,
        "object-store requests by operation (put, get, head, list, delete, copy)",
    ),
    (
        "silt_object_bytes_total",
        Kind::Counter,
        "object-store requests by operation (put, get, head, list, delete, copy)",
    ),
    (
        "silt_object_errors_total",
        Kind::Counter,
        "object-store requests by operation (put, get, head, list, delete, copy)",
    ),
    (
        "silt_object_request_seconds",
        Kind::Histogram,
        "object-store request latency",
    ),
    (
        "silt_reader_cache_requests_total",
        Kind::Counter,
        "chunk and footer cache hit / miss",
    ),
    (
        "silt_reader_cache_errors_total",
        Kind::Counter,
        "reads of the cache's disk tier that failed and were served from the object store instead",
    ),
    (
        "silt_reader_cache_disk_enabled",
        Kind::Gauge,
        "1 when the cache's disk tier is in use, 0 when it could not be opened (memory only)",
    ),
    (
        "silt_tls_handshake_failures_total",
        Kind::Counter,
        "TLS handshakes on the Kafka or HTTP listener that failed or timed out (10 s)",
    ),
    (
        "silt_auth_failures_total",
        Kind::Counter,
        "failed authentications (SASL on kafka, basic auth or tokens on http); the first 20 per 10 s are also logged with the principal and client address",
    ),
    (
        "silt_authorization_denied_total",
        Kind::Counter,
        "requests (or parts of them) refused by ACLs",
    ),
    (
        "silt_kafka_authentications_total",
        Kind::Counter,
        "SASL logins: authenticated, reauthenticated (KIP-368)",
    ),
    (
        "silt_reader_records_total",
        Kind::Counter,
        "records and bytes read",
    ),
    (
        "silt_reader_bytes_total",
        Kind::Counter,
        "records and bytes read",
    ),
    (
        "silt_compactor_lag_bytes",
        Kind::Gauge,
        "raw bytes not yet in the lake, and the age of the oldest raw record (after the last pass)",
    ),
    (
        "silt_compactor_lag_seconds",
        Kind::Gauge,
        "raw bytes not yet in the lake, and the age of the oldest raw record (after the last pass)",
    ),
    (
        "silt_compactor_bytes_rewritten_total",
        Kind::Counter,
        "lake bytes and records written",
    ),
    (
        "silt_compactor_records_rewritten_total",
        Kind::Counter,
        "lake bytes and records written",
    ),
    (
        "silt_compactor_objects_deleted_total",
        Kind::Counter,
        "objects deleted by GC: unreferenced (compacted or expired), orphan (never committed)",
    ),
    (
        "silt_compactor_passes_total",
        Kind::Counter,
        "compaction passes",
    ),
    (
        "silt_kafka_connections",
        Kind::Gauge,
        "open Kafka connections",
    ),
    (
        "silt_kafka_requests_total",
        Kind::Counter,
        "Kafka requests by API",
    ),
    (
        "silt_kafka_request_seconds",
        Kind::Histogram,
        "Kafka request latency by API, from the request's arrival to its answer (fetch long polls included)",
    ),
    (
        "silt_consumer_group_lag",
        Kind::Gauge,
        "records between a group's committed offsets and the high watermarks, summed over a topic's partitions (published every 10 s, from start, by the process that coordinates groups: silt dev, or the active metadata process)",
    ),
    (
        "silt_metadata_active",
        Kind::Gauge,
        "1 while this metadata process is the active one (holds the lease), 0 while it stands by",
    ),
    (
        "silt_metadata_epoch",
        Kind::Gauge,
        "the lease epoch this metadata process last served with",
    ),
    (
        "silt_metadata_requests_total",
        Kind::Counter,
        "metadata service calls answered, by call and outcome (ok, unavailable, invalid, conflict, not_found, internal)",
    ),
    (
        "silt_metadata_request_seconds",
        Kind::Histogram,
        "metadata service call latency by call, as the service measures it",
    ),
];

/// How often the consumer-group lag is published (the first time at start).
pub(crate) const LAG_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);

/// Sets `silt_consumer_group_lag{group, topic}`: records between each group's committed
/// offsets and the high watermarks, summed over the topic's partitions.
pub(crate) async fn publish_group_lag(
    store: &dyn silt_metadata::MetadataStore,
) -> Result<(), silt_metadata::MetadataError> {
    use silt_metadata::{GroupOffsetStore, LogStore, MetadataError};
    let mut watermarks = std::collections::HashMap::new();
    for group in GroupOffsetStore::groups(store).await? {
        let mut lag: std::collections::BTreeMap<String, i64> = Default::default();
        for o in store.group_offsets(&group).await? {
            if !watermarks.contains_key(&o.topic) {
                let offsets = match LogStore::partition_offsets(store, &o.topic).await {
                    Ok(offsets) => offsets,
                    Err(MetadataError::UnknownTopic { .. }) => Vec::new(),
                    Err(e) => return Err(e),
                };
                watermarks.insert(o.topic.clone(), offsets);
            }
            let hwm = watermarks[&o.topic]
                .iter()
                .find(|p| p.partition == o.partition)
                .map_or(o.offset, |p| p.high_watermark);
            *lag.entry(o.topic).or_default() += (hwm - o.offset).max(0);
        }
        for (topic, records) in lag {
            metrics::gauge!("silt_consumer_group_lag", "group" => group.clone(), "topic" => topic)
                .set(records as f64);
        }
    }
    Ok(())
}

/// Publishes the consumer-group lag every [`LAG_INTERVAL`] while `publishes()` (the
/// process holds the groups' coordinator: `silt dev`, or the active metadata process),
/// until `stop`.
pub(crate) fn spawn_lag_publisher(
    tasks: &tokio_util::task::TaskTracker,
    store: std::sync::Arc<dyn silt_metadata::MetadataStore>,
    publishes: impl Fn() -> bool + Send + 'static,
    stop: tokio_util::sync::CancellationToken,
) {
    tasks.spawn(async move {
        let mut tick = tokio::time::interval(LAG_INTERVAL);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            if publishes()
                && let Err(e) = publish_group_lag(store.as_ref()).await
            {
                tracing::warn!(error = %e, "consumer-group lag not published");
            }
        }
    });
}

/// Puts the counters of rare events on `/metrics` at zero from the start, so dashboards
/// and alert rules see a series (a rate of 0) rather than none.
pub(crate) fn zero_rare_counters() {
    metrics::counter!("silt_ingest_backpressure_waits_total").increment(0);
    metrics::counter!("silt_ingest_segment_write_failures_total").increment(0);
    metrics::counter!("silt_kafka_request_pool_waits_total").increment(0);
    metrics::counter!("silt_tls_handshake_failures_total").increment(0);
    for kind in ["missing", "corrupt", "unavailable"] {
        metrics::counter!("silt_reader_object_errors_total", "kind" => kind).increment(0);
    }
    for door in ["kafka", "http"] {
        metrics::counter!("silt_auth_failures_total", "door" => door).increment(0);
        metrics::counter!("silt_authorization_denied_total", "door" => door).increment(0);
    }
}

/// Registers the help text of every metric with the recorder.
pub(crate) fn describe() {
    for (name, kind, help) in METRICS {
        match kind {
            Kind::Counter => metrics::describe_counter!(*name, *help),
            Kind::Gauge => metrics::describe_gauge!(*name, *help),
            Kind::Histogram => metrics::describe_histogram!(*name, *help),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn the_operations_guide_lists_exactly_the_declared_metrics() {
        let guide = include_str!("../../../docs/operations.md");
        let documented: BTreeSet<&str> = guide
            .split('`')
            .filter(|s| s.starts_with("silt_"))
            .map(|s| s.split('{').next().unwrap_or(s))
            .filter(|s| s.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
            .collect();
        let declared: BTreeSet<&str> = METRICS.iter().map(|(n, _, _)| *n).collect();
        assert_eq!(documented, declared);
    }

    #[test]
    fn every_metric_the_code_records_is_declared() {
        let declared: BTreeSet<&str> = METRICS.iter().map(|(n, _, _)| *n).collect();
        let sources = [
            include_str!("../../../ingest/src/batcher.rs"),
            include_str!("../../../ingest/src/flush.rs"),
            include_str!("../../../reader/src/fetch.rs"),
            include_str!("../../../reader/src/cache.rs"),
            include_str!("../../../compactor/src/lib.rs"),
            include_str!("../../../storage/src/instrumented.rs"),
            include_str!("../../../storage/src/faults.rs"),
            include_str!("../../kafka/src/connection.rs"),
            include_str!("../../kafka/src/fetch.rs"),
            include_str!("../../kafka/src/produce.rs"),
            include_str!("../../kafka/src/security.rs"),
            include_str!("../../http/src/records.rs"),
            include_str!("../../http/src/auth.rs"),
            include_str!("../../auth/src/lib.rs"),
            include_str!("../../tls/src/lib.rs"),
            include_str!("node.rs"),
            include_str!("metrics.rs"),
            include_str!("../../metadata-service/src/server.rs"),
        ];
        for source in sources {
            for piece in source
                .split('"')
                .filter(|s| s.starts_with("silt_") && s.ends_with(|c: char| c.is_ascii_lowercase()))
            {
                if piece.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
                    assert!(
                        declared.contains(piece),
                        "{piece} is recorded but not declared in metrics.rs"
                    );
                }
            }
        }
    }
}
