//! Writing a batch as one segment object, then committing segments in flush order.

use std::sync::Arc;
use std::time::Instant;

use object_store::path::Path;
use object_store::{ObjectStore, PutMode, PutOptions, PutPayload};
use silt_metadata::{
    BatchKind, ChunkCommit, ChunkOutcome, ErrorKind, LogStore, MetadataError, ProducerBatch,
    SegmentCommit, TransactionEnd,
};
use silt_segment::{
    ChunkInput, ChunkLocation, Record, SegmentCompression, encode_segment_with, segment_key,
};
use tokio::sync::{OwnedSemaphorePermit, mpsc, oneshot};
use tokio::task::JoinHandle;
use tracing::{error, warn};
use uuid::Uuid;

use crate::batcher::{AppendAck, SegmentListener, WrittenSegment};
use crate::error::IngestError;

/// One append waiting for its segment: records `index..index + count` of its chunk.
pub(crate) struct Waiter {
    pub(crate) index: u32,
    pub(crate) count: u32,
    pub(crate) reply: oneshot::Sender<Result<AppendAck, IngestError>>,
    /// This append's share of the byte budget, given back when the waiter is dropped.
    pub(crate) _budget: OwnedSemaphorePermit,
}

impl Waiter {
    /// Gives the budget back, then answers the caller (so a caller that sees its answer
    /// also sees the budget released).
    fn answer(self, result: Result<AppendAck, IngestError>) {
        let Waiter { reply, _budget, .. } = self;
        drop(_budget);
        let _ = reply.send(result);
    }
}

/// Records buffered for one (topic, partition).
#[derive(Default)]
pub(crate) struct PendingChunk {
    pub(crate) records: Vec<Record>,
    pub(crate) waiters: Vec<Waiter>,
    pub(crate) producer: Option<ProducerBatch>,
    pub(crate) kind: BatchKind,
}

/// Everything buffered when a segment is cut, in (topic, partition) order.
pub(crate) struct Batch {
    pub(crate) chunks: Vec<((String, i32), PendingChunk)>,
    pub(crate) bytes: usize,
}

type ChunkRecords = Vec<(String, i32, Vec<Record>)>;
type ChunkWaiters = Vec<(String, i32, Option<ProducerBatch>, BatchKind, Vec<Waiter>)>;

impl Batch {
    pub(crate) fn split(self) -> (ChunkRecords, ChunkWaiters) {
        self.chunks
            .into_iter()
            .map(|((topic, partition), chunk)| {
                (
                    (topic.clone(), partition, chunk.records),
                    (topic, partition, chunk.producer, chunk.kind, chunk.waiters),
                )
            })
            .unzip()
    }
}

/// A segment being written, and the appends waiting on it, in flush order.
pub(crate) struct InFlight {
    pub(crate) written: JoinHandle<Result<Written, IngestError>>,
    pub(crate) waiters: ChunkWaiters,
}

pub(crate) struct Written {
    key: String,
    size: u64,
    footer_len: u64,
    footer_crc: u32,
    chunks: Vec<ChunkLocation>,
    records: u64,
}

/// The control record that ends a transaction in a partition, as Kafka writes it: key
/// (version 0, type: 0 abort, 1 commit), value (version 0, coordinator epoch).
fn marker_record(commit: bool, timestamp_ms: i64) -> Record {
    Record {
        timestamp_ms,
        key: Some(bytes::Bytes::from_static(if commit {
            &[0, 0, 0, 1]
        } else {
            &[0, 0, 0, 0]
        })),
        value: Some(bytes::Bytes::from_static(&[0, 0, 0, 0, 0, 0])),
        headers: Vec::new(),
    }
}

/// Writes the markers that end `end`'s transaction (one control record per partition)
/// as a segment object of their own, and answers the commit that indexes them.
pub(crate) async fn write_markers(
    end: &TransactionEnd,
    partitions: &[(String, i32)],
    now_ms: i64,
    compression: SegmentCompression,
    store: Arc<dyn ObjectStore>,
    listener: Option<Arc<dyn SegmentListener>>,
) -> Result<SegmentCommit, IngestError> {
    let records: ChunkRecords = partitions
        .iter()
        .map(|(t, p)| (t.clone(), *p, vec![marker_record(end.commit, now_ms)]))
        .collect();
    let written = write_segment(records, compression, store, listener).await?;
    let producer = ProducerBatch {
        producer_id: end.producer.producer_id,
        epoch: end.producer.epoch,
        base_sequence: -1,
    };
    Ok(SegmentCommit {
        key: written.key,
        size: written.size,
        footer_len: written.footer_len,
        footer_crc: Some(written.footer_crc),
        chunks: partitions
            .iter()
            .zip(&written.chunks)
            .map(|((topic, partition), loc)| ChunkCommit {
                topic: topic.clone(),
                partition: *partition,
                record_count: loc.record_count,
                row_group: loc.row_group as u32,
                byte_start: loc.byte_start,
                byte_len: loc.byte_len,
                min_timestamp_ms: loc.min_timestamp_ms,
                max_timestamp_ms: loc.max_timestamp_ms,
                producer: Some(producer),
                kind: BatchKind::Marker,
            })
            .collect(),
    })
}

/// Encodes the records as one segment (off the runtime), PUTs it, and announces it.
pub(crate) async fn write_segment(
    records: ChunkRecords,
    compression: SegmentCompression,
    store: Arc<dyn ObjectStore>,
    listener: Option<Arc<dyn SegmentListener>>,
) -> Result<Written, IngestError> {
    let started = Instant::now();
    let record_count: u64 = records.iter().map(|(_, _, r)| r.len() as u64).sum();
    let encoded = tokio::task::spawn_blocking(move || {
        let inputs: Vec<ChunkInput<'_>> = records
            .iter()
            .map(|(topic, partition, records)| ChunkInput {
                topic,
                partition: *partition,
                records,
            })
            .collect();
        encode_segment_with(&inputs, compression)
    })
    .await
    .map_err(|e| IngestError::Internal {
        reason: format!("segment encoder panicked: {e}"),
    })?
    .map_err(|e| IngestError::Encode {
        source: Arc::new(e),
    })?;

    // The hour folder comes from the id's own timestamp (UUID v7), so name and folder agree.
    let id = Uuid::now_v7();
    let made = id
        .get_timestamp()
        .map(|t| t.to_unix())
        .and_then(|(secs, nanos)| chrono::DateTime::from_timestamp(secs as i64, nanos))
        .unwrap_or_default();
    let key = segment_key(id, made);
    let size = encoded.data.len() as u64;
    // Segment names are unique: never overwrite an object.
    let options = PutOptions {
        mode: PutMode::Create,
        ..PutOptions::default()
    };
    store
        .put_opts(
            &Path::from(key.as_str()),
            PutPayload::from(encoded.data.clone()),
            options,
        )
        .await
        .map_err(|e| IngestError::ObjectStore {
            key: key.clone(),
            source: Arc::new(e),
        })?;
    metrics::histogram!("silt_ingest_write_seconds").record(started.elapsed().as_secs_f64());
    let footer_crc = encoded.footer_crc;
    let written = WrittenSegment {
        key,
        data: encoded.data,
        footer_len: encoded.footer_len,
        chunks: encoded.chunks,
    };
    if let Some(listener) = &listener {
        listener.segment_written(&written);
    }
    Ok(Written {
        key: written.key,
        size,
        footer_len: written.footer_len,
        footer_crc,
        chunks: written.chunks,
        records: record_count,
    })
}

fn fail_all(waiters: ChunkWaiters, error: &IngestError) {
    for (_, _, _, _, waiters) in waiters {
        for w in waiters {
            w.answer(Err(error.clone()));
        }
    }
}

/// At most one "segment write failed" warning this often.
const WRITE_WARNING_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// Commits written segments one at a time, in the order they were cut, so that records
/// appended in order to a partition get increasing offsets.
pub(crate) async fn run_committer(
    mut queue: mpsc::Receiver<InFlight>,
    metadata: Arc<dyn LogStore>,
    report_buffered: impl Fn(),
) {
    // A store that keeps failing (a full disk) fails every segment: one warning per
    // WRITE_WARNING_EVERY, with how many failed since the last.
    let mut warned: Option<std::time::Instant> = None;
    let mut failed_since = 0u64;
    while let Some(InFlight { written, waiters }) = queue.recv().await {
        report_buffered();
        let written = match written.await {
            Ok(Ok(written)) => written,
            Ok(Err(e)) => {
                failed_since += 1;
                if warned.is_none_or(|at| at.elapsed() >= WRITE_WARNING_EVERY) {
                    warn!(error = %e, failed_since_last_warning = failed_since, "segment write failed");
                    warned = Some(std::time::Instant::now());
                    failed_since = 0;
                }
                metrics::counter!("silt_ingest_segment_write_failures_total").increment(1);
                fail_all(waiters, &e);
                continue;
            }
            Err(e) => {
                error!(error = %e, "segment writer task failed");
                fail_all(
                    waiters,
                    &IngestError::Internal {
                        reason: format!("segment writer failed: {e}"),
                    },
                );
                continue;
            }
        };
        commit(written, waiters, metadata.as_ref()).await;
        report_buffered();
    }
}

async fn commit(written: Written, waiters: ChunkWaiters, metadata: &dyn LogStore) {
    let mut chunks: Vec<(ChunkCommit, Vec<Waiter>)> = waiters
        .into_iter()
        .zip(&written.chunks)
        .map(|((topic, partition, producer, kind, waiters), loc)| {
            let chunk = ChunkCommit {
                topic,
                partition,
                record_count: loc.record_count,
                row_group: loc.row_group as u32,
                byte_start: loc.byte_start,
                byte_len: loc.byte_len,
                min_timestamp_ms: loc.min_timestamp_ms,
                max_timestamp_ms: loc.max_timestamp_ms,
                producer,
                kind,
            };
            (chunk, waiters)
        })
        .collect();
    let started = Instant::now();
    // A topic may have been deleted while its records waited: drop those chunks (their
    // callers get the error) and commit the rest. Bounded: each round removes a chunk.
    loop {
        let segment = SegmentCommit {
            key: written.key.clone(),
            size: written.size,
            footer_len: written.footer_len,
            footer_crc: Some(written.footer_crc),
            chunks: chunks.iter().map(|(c, _)| c.clone()).collect(),
        };
        match metadata.commit_segment(&segment).await {
            Ok(outcomes) => {
                metrics::histogram!("silt_ingest_commit_seconds")
                    .record(started.elapsed().as_secs_f64());
                metrics::counter!("silt_ingest_segments_total").increment(1);
                metrics::counter!("silt_ingest_segment_bytes_total").increment(written.size);
                metrics::counter!("silt_ingest_records_total").increment(written.records);
                for ((_, waiters), outcome) in chunks.into_iter().zip(outcomes) {
                    let (base, duplicate) = match outcome {
                        ChunkOutcome::Committed { base_offset } => (base_offset, false),
                        ChunkOutcome::Duplicate { base_offset } => (base_offset, true),
                        ChunkOutcome::Rejected(e) => {
                            let rejected = IngestError::Rejected {
                                source: Arc::new(e),
                            };
                            for w in waiters {
                                w.answer(Err(rejected.clone()));
                            }
                            continue;
                        }
                    };
                    for w in waiters {
                        let ack = AppendAck {
                            base_offset: base + i64::from(w.index),
                            count: w.count,
                            duplicate,
                        };
                        w.answer(Ok(ack));
                    }
                }
                return;
            }
            Err(e) if e.kind() == ErrorKind::NotFound => {
                let Some(bad) = position_of_missing(&chunks, &e) else {
                    fail_chunks(chunks, &written.key, e);
                    return;
                };
                let (chunk, waiters) = chunks.remove(bad);
                let rejected = IngestError::Rejected {
                    source: Arc::new(e),
                };
                warn!(topic = %chunk.topic, partition = chunk.partition, "dropping chunk of a missing topic or partition");
                for w in waiters {
                    w.answer(Err(rejected.clone()));
                }
                if chunks.is_empty() {
                    return;
                }
            }
            Err(e) => {
                warn!(error = %e, key = %written.key, "segment commit failed");
                fail_chunks(chunks, &written.key, e);
                return;
            }
        }
    }
}

fn position_of_missing(chunks: &[(ChunkCommit, Vec<Waiter>)], e: &MetadataError) -> Option<usize> {
    chunks.iter().position(|(c, _)| match e {
        MetadataError::UnknownTopic { topic } => &c.topic == topic,
        MetadataError::UnknownPartition { topic, partition } => {
            &c.topic == topic && c.partition == *partition
        }
        _ => false,
    })
}

fn fail_chunks(chunks: Vec<(ChunkCommit, Vec<Waiter>)>, key: &str, e: MetadataError) {
    let error = IngestError::Commit {
        key: key.to_string(),
        source: Arc::new(e),
    };
    for (_, waiters) in chunks {
        for w in waiters {
            w.answer(Err(error.clone()));
        }
    }
}
