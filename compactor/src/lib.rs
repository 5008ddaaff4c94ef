//! The compactor: merges raw ingest segments into the lake layout, applies retention and
//! collects garbage.
//!
//! A pass ([`Compactor::run_pass`]) does, for every partition of every topic:
//! 1. **retention** — `retention.ms` (whole index entries whose newest record is older)
//!    and `retention.bytes` (oldest entries beyond the size) move the log start forward;
//! 2. **merge** — index entries still in raw segments and older than the minimum age are
//!    read, rewritten as lake files (`lake/<topic>/partition=<p>/<first>-<last>.parquet`,
//!    absolute offsets, row groups sized for scans) and swapped into the index in one
//!    metadata transaction per file: readers see the old entries or the new ones, never
//!    both, never neither. A crash before the swap leaves an unreferenced lake object.
//!
//! then, once for the whole store:
//! 3. **garbage collection** — objects no index entry refers to any more (compacted or
//!    past retention) are deleted once they have been unreferenced for the grace period,
//!    so reads that started earlier finish; objects the index never knew (written by a
//!    node that died before committing, or a compaction that crashed before its swap)
//!    are deleted once older than the grace period.
//!
//! Passes run one at a time; run one compactor per cluster. Depends on `silt-segment` (the
//! formats), `silt-metadata` (the compaction, catalog and group-offset roles) and
//! `object_store`.

mod gc;
mod merge;
mod retention;

use std::sync::Arc;
use std::time::Duration;

use object_store::ObjectStore;
use serde::{Deserialize, Serialize};
use silt_metadata::{CatalogStore, Clock, CompactionStore, MetadataError, system_clock};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// Compactor settings (the `[compactor]` settings).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CompactorConfig {
    /// Raw entries younger than this stay raw (tailing consumers read them from cache).
    #[serde(with = "humantime_serde")]
    pub min_age: Duration,
    /// Largest lake file, in bytes of compressed raw chunks merged into it.
    pub target_file_bytes: u64,
    /// Records per lake row group (a scan unit for lake readers and Silt's reader).
    pub rows_per_group: usize,
    /// How long an object stays after it stopped being referenced, and how old an
    /// unknown object must be before it counts as an orphan.
    #[serde(with = "humantime_serde")]
    pub gc_grace: Duration,
    /// Time between automatic passes.
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// `retention.ms` of topics that set none (Kafka's `log.retention.ms`); `None` keeps
    /// records forever. Written as `default_retention_ms`, -1 for forever.
    #[serde(rename = "default_retention_ms", with = "retention_ms")]
    pub default_retention: Option<Duration>,
}

/// A retention as Kafka writes it: milliseconds, -1 for forever.
mod retention_ms {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i64(v.map_or(-1, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX)))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let ms = i64::deserialize(d)?;
        match ms {
            -1 => Ok(None),
            ms if ms >= 0 => Ok(Some(Duration::from_millis(ms as u64))),
            ms => Err(serde::de::Error::custom(format!(
                "{ms} is not a retention: milliseconds, or -1 for forever"
            ))),
        }
    }
}

impl Default for CompactorConfig {
    fn default() -> Self {
        Self {
            min_age: Duration::from_secs(600),
            target_file_bytes: 128 << 20,
            rows_per_group: 16 * 1024,
            gc_grace: Duration::from_secs(300),
            interval: Duration::from_secs(60),
            default_retention: Some(Duration::from_secs(7 * 24 * 3600)),
        }
    }
}

/// What one pass did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PassReport {
    /// Raw index entries merged into lake files.
    pub chunks_merged: u64,
    pub lake_files_written: u64,
    pub records_rewritten: u64,
    /// Bytes of raw chunks read and of lake files written.
    pub bytes_read: u64,
    pub bytes_written: u64,
    /// Partitions whose log start moved, and the records that fell below it.
    pub partitions_truncated: u64,
    pub records_expired: u64,
    /// Objects deleted: no longer referenced, or never committed.
    pub unreferenced_deleted: u64,
    pub orphans_deleted: u64,
    /// Raw (not yet compacted) bytes left, and the age of the oldest raw record, in ms.
    pub lag_bytes: u64,
    pub lag_ms: u64,
    pub duration_ms: u64,
    /// Problems met; the pass went on with the next partition.
    pub errors: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum CompactorError {
    #[error(transparent)]
    Metadata(#[from] MetadataError),
    #[error("object store: {0}")]
    ObjectStore(#[from] object_store::Error),
    #[error("segment: {0}")]
    Segment(#[from] silt_segment::SegmentError),
    #[error("{0}")]
    Invalid(String),
}

struct Inner {
    store: Arc<dyn ObjectStore>,
    /// The index the compactor rewrites.
    metadata: Arc<dyn CompactionStore>,
    /// The topics it walks.
    catalog: Arc<dyn CatalogStore>,
    config: CompactorConfig,
    /// "Now" of each pass (retention cutoffs, minimum ages, orphan grace).
    clock: Arc<dyn Clock>,
    /// One pass at a time.
    running: tokio::sync::Mutex<()>,
}

/// The compactor of this node. Cheap to clone.
#[derive(Clone)]
pub struct Compactor {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Compactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compactor")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl Compactor {
    /// The compactor of the objects in `store` whose index is `metadata`.
    pub fn new(
        store: Arc<dyn ObjectStore>,
        metadata: Arc<dyn CompactionStore>,
        catalog: Arc<dyn CatalogStore>,
        config: CompactorConfig,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                metadata,
                catalog,
                config,
                clock: system_clock(),
                running: tokio::sync::Mutex::new(()),
            }),
        }
    }

    /// Takes each pass's "now" from `clock` instead of the system (tests).
    pub fn with_clock(self, clock: Arc<dyn Clock>) -> Self {
        let inner = &self.inner;
        Self {
            inner: Arc::new(Inner {
                store: inner.store.clone(),
                metadata: inner.metadata.clone(),
                catalog: inner.catalog.clone(),
                config: inner.config.clone(),
                clock,
                running: tokio::sync::Mutex::new(()),
            }),
        }
    }

    pub fn config(&self) -> &CompactorConfig {
        &self.inner.config
    }

    /// Runs one pass (retention, merge, GC) now, waiting for a running one to finish
    /// first. `min_age` overrides the configured minimum age of merged entries and caps
    /// how long unreferenced objects are kept (so operators and tests can collect at
    /// once; a read still in flight then fails and is retried by its client). Orphans
    /// always wait the full `gc_grace`: an ingest node's object is an "orphan" for the
    /// moment between its upload and its commit.
    pub async fn run_pass(&self, min_age: Option<Duration>) -> Result<PassReport, CompactorError> {
        let _running = self.inner.running.lock().await;
        let started = std::time::Instant::now();
        let config = &self.inner.config;
        let min_age = min_age.unwrap_or(config.min_age);
        let grace = min_age.min(config.gc_grace);
        let now_ms = self.inner.clock.now_ms();
        let mut report = PassReport::default();
        let metadata = &self.inner.metadata;
        let mut footers = merge::Footers::default();
        for topic in self.inner.catalog.topics().await? {
            for partition in 0..topic.partitions {
                if let Err(e) = retention::apply(
                    metadata.as_ref(),
                    &topic,
                    partition,
                    config,
                    now_ms,
                    &mut report,
                )
                .await
                {
                    report
                        .errors
                        .push(format!("retention of {}/{partition}: {e}", topic.name));
                }
                if let Err(e) = merge::partition(
                    self.inner.store.as_ref(),
                    metadata.as_ref(),
                    &topic.name,
                    partition,
                    min_age,
                    now_ms,
                    config,
                    &mut footers,
                    &mut report,
                )
                .await
                {
                    report
                        .errors
                        .push(format!("merge of {}/{partition}: {e}", topic.name));
                }
            }
        }
        if let Err(e) = gc::collect(
            self.inner.store.as_ref(),
            metadata.as_ref(),
            grace,
            config.gc_grace,
            now_ms,
            &mut report,
        )
        .await
        {
            report.errors.push(format!("garbage collection: {e}"));
        }
        report.duration_ms = started.elapsed().as_millis() as u64;
        metrics::gauge!("silt_compactor_lag_bytes").set(report.lag_bytes as f64);
        metrics::gauge!("silt_compactor_lag_seconds").set(report.lag_ms as f64 / 1000.0);
        metrics::counter!("silt_compactor_bytes_rewritten_total").increment(report.bytes_written);
        metrics::counter!("silt_compactor_records_rewritten_total")
            .increment(report.records_rewritten);
        metrics::counter!("silt_compactor_objects_deleted_total", "reason" => "unreferenced")
            .increment(report.unreferenced_deleted);
        metrics::counter!("silt_compactor_objects_deleted_total", "reason" => "orphan")
            .increment(report.orphans_deleted);
        metrics::counter!("silt_compactor_passes_total").increment(1);
        Ok(report)
    }

    /// Runs a pass every `interval` until `stop`; a pass in progress when `stop` fires is
    /// abandoned (its lake object, if any, stays unreferenced until GC).
    pub async fn run_every_interval(&self, stop: CancellationToken) {
        let interval = self.inner.config.interval;
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(interval) => {}
            }
            let pass = tokio::select! {
                () = stop.cancelled() => return,
                pass = self.run_pass(None) => pass,
            };
            match pass {
                Ok(report) if report.errors.is_empty() => {
                    if report.lake_files_written > 0 || report.partitions_truncated > 0 {
                        info!(
                            lake_files = report.lake_files_written,
                            records = report.records_rewritten,
                            truncated = report.partitions_truncated,
                            deleted = report.unreferenced_deleted + report.orphans_deleted,
                            "compaction pass"
                        );
                    }
                }
                Ok(report) => warn!(errors = ?report.errors, "compaction pass had errors"),
                Err(e) => warn!(error = %e, "compaction pass failed"),
            }
        }
    }
}
