//! The append path: buffering records across partitions and deciding when to flush.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use object_store::ObjectStore;
use silt_metadata::{
    BatchKind, ChunkOutcome, Clock, LogStore, ProducerBatch, SegmentCommit, TransactionEnd,
    TransactionStore, system_clock,
};
use silt_segment::{ChunkLocation, Record};
use tokio::sync::{Notify, Semaphore, mpsc, oneshot};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use crate::config::IngestConfig;
use crate::error::IngestError;
use crate::flush::{Batch, InFlight, PendingChunk, Waiter, run_committer, write_segment};
use crate::rules::{ProduceRules, TopicDefaults};

/// Offsets given to one acknowledged append: records got `base_offset..base_offset + count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendAck {
    pub base_offset: i64,
    pub count: u32,
    /// The append was an idempotent producer's retry of a batch committed before: nothing
    /// new was written, and `base_offset` is where the batch landed the first time.
    pub duplicate: bool,
}

/// An append that is buffered and waits for its segment. Await it for the outcome;
/// dropping it does not withdraw the records.
#[derive(Debug)]
pub struct PendingAppend {
    reply: oneshot::Receiver<Result<AppendAck, IngestError>>,
}

impl PendingAppend {
    pub async fn wait(self) -> Result<AppendAck, IngestError> {
        self.reply.await.unwrap_or_else(|_| {
            Err(IngestError::Internal {
                reason: "segment writer dropped the append".into(),
            })
        })
    }
}

/// A segment this node has just written, announced before it is committed so that a
/// reader on the same node can cache it ahead of the first fetch.
#[derive(Debug, Clone)]
pub struct WrittenSegment {
    /// Object key under the store's prefix.
    pub key: String,
    pub data: Bytes,
    pub footer_len: u64,
    pub chunks: Vec<ChunkLocation>,
}

/// Receives every segment ingest writes.
pub trait SegmentListener: Send + Sync + 'static {
    fn segment_written(&self, segment: &WrittenSegment);
}

#[derive(Default)]
struct Buffer {
    /// Per partition, its chunks in append order. Each batch of an idempotent producer is
    /// a chunk of its own, so its sequence can be checked (and a retry dropped) alone.
    chunks: BTreeMap<(String, i32), Vec<PendingChunk>>,
    bytes: usize,
    first_at: Option<Instant>,
}

struct Shared {
    config: IngestConfig,
    buffer: Mutex<Buffer>,
    /// Something was appended to an empty buffer.
    arrived: Notify,
    /// The buffer reached the segment size cap.
    full: Notify,
    budget: Arc<Semaphore>,
    cancel: CancellationToken,
}

impl Shared {
    fn buffered_bytes(&self) -> usize {
        self.config.max_buffered_bytes - self.budget.available_permits()
    }

    fn report_buffered(&self) {
        metrics::gauge!("silt_ingest_buffered_bytes").set(self.buffered_bytes() as f64);
    }
}

/// The ingest role. Cheap to clone; every clone appends to the same buffers.
#[derive(Clone)]
pub struct Ingest {
    shared: Arc<Shared>,
    /// Where segments go, for the markers written outside the batcher.
    store: Arc<dyn ObjectStore>,
    listener: Option<Arc<dyn SegmentListener>>,
    tasks: Arc<tokio::sync::Mutex<JoinSet<()>>>,
    /// What every door checks before appending.
    rules: Arc<ProduceRules>,
    /// The node's clock: what the doors take append and commit times from.
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for Ingest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ingest")
            .field("config", &self.shared.config)
            .finish()
    }
}

impl Ingest {
    /// Starts ingest's background tasks (flusher and committer) on the current runtime.
    pub fn start(
        config: IngestConfig,
        store: Arc<dyn ObjectStore>,
        metadata: Arc<dyn LogStore>,
        listener: Option<Arc<dyn SegmentListener>>,
    ) -> Self {
        let budget = Arc::new(Semaphore::new(config.max_buffered_bytes));
        let shared = Arc::new(Shared {
            config: config.clone(),
            buffer: Mutex::new(Buffer::default()),
            arrived: Notify::new(),
            full: Notify::new(),
            budget,
            cancel: CancellationToken::new(),
        });
        let (tx, rx) = mpsc::channel(config.max_inflight_segments.max(1));
        let mut tasks = JoinSet::new();
        tasks.spawn(run_flusher(
            shared.clone(),
            store.clone(),
            listener.clone(),
            tx,
        ));
        let gauge = shared.clone();
        tasks.spawn(run_committer(rx, metadata, move || gauge.report_buffered()));
        Self {
            shared,
            store,
            listener,
            tasks: Arc::new(tokio::sync::Mutex::new(tasks)),
            rules: Arc::new(ProduceRules::default()),
            clock: system_clock(),
        }
    }

    /// Takes the doors' time from `clock` instead of the system (tests).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The node's clock (append times of LogAppendTime topics, offset commit times).
    pub fn clock(&self) -> &dyn Clock {
        self.clock.as_ref()
    }

    /// Sets the topic defaults the produce rules apply (before the doors start).
    pub fn with_rules(mut self, defaults: TopicDefaults) -> Self {
        self.rules = Arc::new(ProduceRules::new(defaults));
        self
    }

    /// Ends a transaction: writes its markers (a control record per partition it wrote
    /// to) as a segment of their own and commits them with the end of the transaction in
    /// one metadata transaction (decision 0008). Answers each marker's offset.
    pub async fn end_transaction(
        &self,
        txns: &dyn TransactionStore,
        end: &TransactionEnd,
        partitions: &[(String, i32)],
    ) -> Result<Vec<i64>, IngestError> {
        let markers = if partitions.is_empty() {
            // A transaction of group offsets only: nothing to mark.
            SegmentCommit {
                key: String::new(),
                size: 0,
                footer_len: 0,
                footer_crc: None,
                chunks: Vec::new(),
            }
        } else {
            crate::flush::write_markers(
                end,
                partitions,
                self.clock.now_ms(),
                self.shared.config.compression,
                self.store.clone(),
                self.listener.clone(),
            )
            .await?
        };
        let outcomes =
            txns.end_transaction(end, &markers)
                .await
                .map_err(|e| IngestError::Rejected {
                    source: Arc::new(e),
                })?;
        outcomes
            .into_iter()
            .map(|o| match o {
                ChunkOutcome::Committed { base_offset }
                | ChunkOutcome::Duplicate { base_offset } => Ok(base_offset),
                ChunkOutcome::Rejected(e) => Err(IngestError::Rejected {
                    source: Arc::new(e),
                }),
            })
            .collect()
    }

    /// The rules every door applies before it appends: partitions, record sizes,
    /// append times, topics created on first use.
    pub fn rules(&self) -> &ProduceRules {
        &self.rules
    }

    /// Appends records to one partition and waits until they are durable: written to the
    /// object store and committed. Records keep their order and get consecutive offsets.
    pub async fn append(
        &self,
        topic: &str,
        partition: i32,
        records: Vec<Record>,
    ) -> Result<AppendAck, IngestError> {
        self.submit(topic, partition, records, None, BatchKind::Plain)
            .await?
            .wait()
            .await
    }

    /// Buffers records for one partition (waiting for budget if ingest is full) and returns
    /// a handle to await their acknowledgement. Appends submitted one after another keep
    /// that order in the partition, which lets a caller submit several before awaiting
    /// any. `producer` marks an idempotent or transactional producer's batch, `kind`
    /// whether it is a transaction's records (or marker).
    pub async fn submit(
        &self,
        topic: &str,
        partition: i32,
        records: Vec<Record>,
        producer: Option<ProducerBatch>,
        kind: BatchKind,
    ) -> Result<PendingAppend, IngestError> {
        if records.is_empty() {
            return Err(IngestError::EmptyBatch);
        }
        let size: usize = records.iter().map(Record::size_estimate).sum();
        let max = self.shared.config.max_buffered_bytes;
        if size > max {
            return Err(IngestError::BatchTooLarge { size, max });
        }
        if self.shared.cancel.is_cancelled() {
            return Err(IngestError::ShuttingDown);
        }
        // Backpressure: hold `size` bytes of the budget until this append is answered.
        let permits = u32::try_from(size).map_err(|_| IngestError::BatchTooLarge { size, max })?;
        let permit = match self.shared.budget.clone().try_acquire_many_owned(permits) {
            Ok(permit) => permit,
            Err(_) => {
                // Ingest is full: this caller waits (and so does its connection).
                metrics::counter!("silt_ingest_backpressure_waits_total").increment(1);
                tokio::select! {
                    permit = self.shared.budget.clone().acquire_many_owned(permits) => {
                        permit.map_err(|_| IngestError::ShuttingDown)?
                    }
                    () = self.shared.cancel.cancelled() => return Err(IngestError::ShuttingDown),
                }
            }
        };
        let count = records.len() as u32;
        let (tx, rx) = oneshot::channel();
        {
            let mut buffer = self.shared.buffer.lock().unwrap_or_else(|e| e.into_inner());
            // Checked under the lock: the flusher drains the buffer under it after cancel.
            if self.shared.cancel.is_cancelled() {
                return Err(IngestError::ShuttingDown);
            }
            let was_empty = buffer.chunks.is_empty();
            let chunks = buffer
                .chunks
                .entry((topic.to_string(), partition))
                .or_default();
            // Plain records share a chunk; a producer's batch is a chunk of its own.
            let plain =
                |p: &Option<ProducerBatch>, k: BatchKind| p.is_none() && k == BatchKind::Plain;
            let shared_chunk =
                plain(&producer, kind) && chunks.last().is_some_and(|c| plain(&c.producer, c.kind));
            if !shared_chunk {
                chunks.push(PendingChunk {
                    producer,
                    kind,
                    ..PendingChunk::default()
                });
            }
            let Some(chunk) = chunks.last_mut() else {
                return Err(IngestError::Internal {
                    reason: "no chunk to append to".into(),
                });
            };
            // The waiter holds the budget until its segment is answered, even if this
            // caller goes away meanwhile: the records stay buffered until then.
            chunk.waiters.push(Waiter {
                index: chunk.records.len() as u32,
                count,
                reply: tx,
                _budget: permit,
            });
            chunk.records.extend(records);
            buffer.bytes += size;
            if was_empty {
                buffer.first_at = Some(Instant::now());
                self.shared.arrived.notify_one();
            }
            if buffer.bytes >= self.shared.config.max_segment_bytes {
                self.shared.full.notify_one();
            }
        }
        self.shared.report_buffered();
        Ok(PendingAppend { reply: rx })
    }

    /// Bytes of records currently held by ingest (buffered, or being written and committed).
    pub fn buffered_bytes(&self) -> usize {
        self.shared.buffered_bytes()
    }

    /// Stops accepting appends, writes and commits everything buffered, and waits for the
    /// background tasks to finish.
    pub async fn shutdown(&self) {
        self.shared.cancel.cancel();
        let mut tasks = self.tasks.lock().await;
        while tasks.join_next().await.is_some() {}
        info!("ingest stopped");
    }
}

fn take_batch(shared: &Shared) -> Option<Batch> {
    let mut buffer = shared.buffer.lock().unwrap_or_else(|e| e.into_inner());
    if buffer.chunks.is_empty() {
        return None;
    }
    let taken = std::mem::take(&mut *buffer);
    let chunks = taken
        .chunks
        .into_iter()
        .flat_map(|(key, chunks)| chunks.into_iter().map(move |c| (key.clone(), c)))
        .collect();
    Some(Batch {
        chunks,
        bytes: taken.bytes,
    })
}

async fn run_flusher(
    shared: Arc<Shared>,
    store: Arc<dyn ObjectStore>,
    listener: Option<Arc<dyn SegmentListener>>,
    commits: mpsc::Sender<InFlight>,
) {
    loop {
        // Wait for the first record of the next segment.
        let first_at = loop {
            let first = shared
                .buffer
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .first_at;
            if let Some(at) = first {
                break Some(at);
            }
            tokio::select! {
                () = shared.arrived.notified() => {}
                () = shared.cancel.cancelled() => break None,
            }
        };
        if let Some(at) = first_at {
            // Linger for company, unless the segment fills up or we are stopping.
            tokio::select! {
                () = tokio::time::sleep_until(at + shared.config.linger) => {}
                () = shared.full.notified() => {}
                () = shared.cancel.cancelled() => {}
            }
        }
        if let Some(batch) = take_batch(&shared) {
            debug!(
                chunks = batch.chunks.len(),
                bytes = batch.bytes,
                "flushing segment"
            );
            let (records, waiters) = batch.split();
            let written = tokio::spawn(write_segment(
                records,
                shared.config.compression,
                store.clone(),
                listener.clone(),
            ));
            if commits.send(InFlight { written, waiters }).await.is_err() {
                break;
            }
        }
        if shared.cancel.is_cancelled() && take_is_empty(&shared) {
            break;
        }
    }
}

fn take_is_empty(shared: &Shared) -> bool {
    shared
        .buffer
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .chunks
        .is_empty()
}
