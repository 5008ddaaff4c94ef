//! The fetch path: index lookup, chunk reads through the cache, long polling.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use object_store::ObjectStore;
use silt_metadata::{BatchKind, ChunkEntry, LogStore, PartitionOffsets, ProducerBatch};
use silt_segment::Record;
use tokio::time::Instant;
use tracing::instrument;

use crate::cache::ChunkCache;
use crate::config::ReaderConfig;
use crate::error::ReaderError;
use crate::wait::PartitionWatch;

/// Most time one read spends loading chunks once it has records to answer with.
const READ_BUDGET: Duration = Duration::from_millis(500);

/// Chunks loaded at once by one read (each may be a GET when not cached).
const CHUNK_LOADS: usize = 8;

/// What to read: records of one partition from `offset` on.
#[derive(Debug, Clone)]
pub struct FetchRequest {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    /// Stop adding records once this many bytes are gathered; the first record is always
    /// returned whole, however large, so a consumer never gets stuck.
    pub max_bytes: usize,
    /// Stop after this many records.
    pub max_records: usize,
    /// How long to wait for records when `offset` is at the high watermark.
    pub max_wait: Duration,
    /// Read only what is stable: up to the last stable offset (before the oldest open
    /// transaction), as Kafka's read_committed isolation; else up to the high watermark.
    pub read_committed: bool,
}

/// A record with the offset the metadata service gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadRecord {
    pub offset: i64,
    pub record: Record,
    /// The producer batch the record came in, if the index knows it: its producer, the
    /// batch's first offset (`sequence = base_sequence + offset - batch_offset`) and kind.
    pub batch: Option<BatchOrigin>,
}

/// Where a record's producer batch starts, and whose it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchOrigin {
    pub batch_offset: i64,
    pub producer: Option<ProducerBatch>,
    pub kind: BatchKind,
}

impl BatchOrigin {
    /// The origin a chunk gives its records; `None` for plain records of no producer.
    pub fn of(chunk: &ChunkEntry) -> Option<Self> {
        (chunk.producer.is_some() || chunk.kind != BatchKind::Plain).then_some(Self {
            batch_offset: chunk.base_offset,
            producer: chunk.producer,
            kind: chunk.kind,
        })
    }
}

#[derive(Debug, Clone)]
pub struct FetchResult {
    pub records: Vec<ReadRecord>,
    pub log_start_offset: i64,
    pub high_watermark: i64,
    /// The first offset of the oldest open transaction, else the high watermark.
    pub last_stable_offset: i64,
    /// The offset to fetch next.
    pub next_offset: i64,
}

/// The reader role. Cheap to clone.
#[derive(Clone)]
pub struct Reader {
    metadata: Arc<dyn LogStore>,
    cache: Arc<ChunkCache>,
    config: ReaderConfig,
}

impl std::fmt::Debug for Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reader")
            .field("config", &self.config)
            .finish()
    }
}

impl Reader {
    pub async fn build(
        config: ReaderConfig,
        store: Arc<dyn ObjectStore>,
        metadata: Arc<dyn LogStore>,
    ) -> Result<Self, ReaderError> {
        let cache = ChunkCache::build(&config, store).await?;
        Ok(Self {
            metadata,
            cache: Arc::new(cache),
            config,
        })
    }

    /// Caches a segment this node has just written, so that reading it costs no GET.
    /// `chunks` yields (row group, byte start, byte length).
    pub fn cache_segment(
        &self,
        key: &str,
        data: &Bytes,
        footer_len: u64,
        chunks: impl Iterator<Item = (u32, u64, u64)>,
    ) {
        self.cache.insert_segment(key, data, footer_len, chunks);
    }

    async fn offsets(&self, topic: &str, partition: i32) -> Result<PartitionOffsets, ReaderError> {
        Ok(self.metadata.partition_offset(topic, partition).await?)
    }

    /// Drops what a reader of committed records must not see from `records` of one
    /// partition: transactions' markers, and the records of aborted transactions (for
    /// doors whose clients do not filter them, as Kafka clients do).
    pub async fn drop_uncommitted(
        &self,
        topic: &str,
        partition: i32,
        records: &mut Vec<ReadRecord>,
    ) -> Result<(), ReaderError> {
        let transactional = |r: &ReadRecord| r.batch.is_some_and(|b| b.kind != BatchKind::Plain);
        let (Some(first), Some(last)) = (
            records.iter().find(|r| transactional(r)),
            records.iter().rev().find(|r| transactional(r)),
        ) else {
            return Ok(());
        };
        let aborted = self
            .metadata
            .aborted_transactions(topic, partition, first.offset, last.offset + 1)
            .await?;
        records.retain(|r| match r.batch {
            Some(b) if b.kind == BatchKind::Marker => false,
            Some(b) if b.kind == BatchKind::Transactional => {
                let producer = b.producer.map(|p| p.producer_id);
                !aborted.iter().any(|a| {
                    Some(a.producer_id) == producer
                        && (a.first_offset..a.last_offset).contains(&r.offset)
                })
            }
            _ => true,
        });
        Ok(())
    }

    /// Log start offset and high watermark of one partition.
    pub async fn partition_offsets(
        &self,
        topic: &str,
        partition: i32,
    ) -> Result<PartitionOffsets, ReaderError> {
        self.offsets(topic, partition).await
    }

    /// The partition's offsets, if `offset` lies within `[log_start_offset, high_watermark]`;
    /// `OffsetOutOfRange` otherwise.
    pub async fn checked_offsets(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
    ) -> Result<PartitionOffsets, ReaderError> {
        let offsets = self.offsets(topic, partition).await?;
        if offset < offsets.log_start_offset || offset > offsets.high_watermark {
            return Err(ReaderError::OffsetOutOfRange {
                topic: topic.to_string(),
                partition,
                offset,
                log_start_offset: offsets.log_start_offset,
                high_watermark: offsets.high_watermark,
            });
        }
        Ok(offsets)
    }

    /// Reads records of a partition from `req.offset` on, in offset order. At the high
    /// watermark it waits up to `req.max_wait` for new records. An offset outside
    /// `[log_start_offset, high_watermark]` is an error.
    #[instrument(skip_all, fields(topic = %req.topic, partition = req.partition, offset = req.offset))]
    pub async fn fetch(&self, req: &FetchRequest) -> Result<FetchResult, ReaderError> {
        let deadline = Instant::now() + req.max_wait;
        // Subscribe before reading the offsets, so no commit slips between the two.
        let mut watch = self.metadata.watch(&req.topic, req.partition);
        let mut offsets = self
            .checked_offsets(&req.topic, req.partition, req.offset)
            .await?;
        let end = |o: &PartitionOffsets| {
            if req.read_committed {
                o.last_stable_offset
            } else {
                o.high_watermark
            }
        };
        while req.offset >= end(&offsets) {
            let woken = tokio::time::timeout_at(deadline, watch.changed()).await;
            match woken {
                Ok(Ok(())) => offsets = self.offsets(&req.topic, req.partition).await?,
                // Timed out, or the topic was deleted while we waited.
                Ok(Err(_)) | Err(_) => {
                    return Ok(FetchResult {
                        records: Vec::new(),
                        log_start_offset: offsets.log_start_offset,
                        high_watermark: offsets.high_watermark,
                        last_stable_offset: offsets.last_stable_offset,
                        next_offset: req.offset,
                    });
                }
            }
        }
        let records = self.read(req, end(&offsets)).await?;
        let next_offset = records.last().map_or(req.offset, |r| r.offset + 1);
        metrics::counter!("silt_reader_records_total").increment(records.len() as u64);
        Ok(FetchResult {
            records,
            log_start_offset: offsets.log_start_offset,
            high_watermark: offsets.high_watermark,
            last_stable_offset: offsets.last_stable_offset,
            next_offset,
        })
    }

    async fn read(
        &self,
        req: &FetchRequest,
        high_watermark: i64,
    ) -> Result<Vec<ReadRecord>, ReaderError> {
        use futures::StreamExt;
        let mut out = Vec::new();
        let mut bytes = 0usize;
        let mut position = req.offset;
        let max_records = req.max_records.max(1);
        let started = Instant::now();
        'lookup: while position < high_watermark {
            // A read of many small chunks not in the cache (a transactional producer's
            // batches of a few records, each in another object) costs a GET each: answer
            // with what has been read once READ_BUDGET is spent, so a client's request
            // never times out waiting (it asks again from where this answer ends).
            if !out.is_empty() && started.elapsed() >= READ_BUDGET {
                break;
            }
            let chunks = self
                .metadata
                .chunks_from(
                    &req.topic,
                    req.partition,
                    position,
                    self.config.chunks_per_lookup,
                )
                .await?;
            if chunks.is_empty() {
                break;
            }
            // Chunks below the end, loaded CHUNK_LOADS at a time, taken in order.
            let wanted = chunks
                .iter()
                .take_while(|c| c.base_offset < high_watermark)
                .count();
            // (Futures collected first: a stream over a closure borrowing `self` trips the
            // compiler's Send inference in the doors' spawned handlers.)
            let futures: Vec<_> = chunks[..wanted]
                .iter()
                .map(|chunk| self.load_tagged(chunk))
                .collect();
            let mut loads = futures::stream::iter(futures).buffered(CHUNK_LOADS);
            while let Some((chunk, loaded)) = loads.next().await {
                // Offsets the index has no entry for held aborted transactions' records,
                // dropped when the compactor merged their neighbours: a gap, as in a
                // compacted Kafka log (a marker always follows it).
                position = position.max(chunk.base_offset);
                let records = match loaded {
                    Ok(records) => records,
                    // A damaged or missing object fails only its own range: the records
                    // read before it are answered; asking from here gets the error.
                    Err(_) if !out.is_empty() => break 'lookup,
                    Err(e) => return Err(e),
                };
                for (i, record) in records.into_iter().enumerate() {
                    let offset = chunk.base_offset + i as i64;
                    if offset < position {
                        continue;
                    }
                    if offset >= high_watermark {
                        break 'lookup;
                    }
                    let size = record.size_estimate();
                    if !out.is_empty() && bytes + size > req.max_bytes {
                        break 'lookup;
                    }
                    bytes += size;
                    out.push(ReadRecord {
                        offset,
                        record,
                        batch: BatchOrigin::of(chunk),
                    });
                    position = offset + 1;
                    if out.len() >= max_records {
                        break 'lookup;
                    }
                }
                position = position.max(chunk.end_offset());
                if !out.is_empty() && started.elapsed() >= READ_BUDGET {
                    break 'lookup;
                }
            }
            if wanted < chunks.len() {
                break;
            }
        }
        metrics::counter!("silt_reader_bytes_total").increment(bytes as u64);
        Ok(out)
    }

    /// A chunk with its records.
    async fn load_tagged<'c>(
        &self,
        chunk: &'c ChunkEntry,
    ) -> (&'c ChunkEntry, Result<Vec<Record>, ReaderError>) {
        (chunk, self.load_chunk(chunk).await)
    }

    /// A chunk's records; an unreadable object is counted by what went wrong
    /// (`silt_reader_object_errors_total{kind}`) and named in the error.
    async fn load_chunk(&self, chunk: &ChunkEntry) -> Result<Vec<Record>, ReaderError> {
        let result = self.decode_chunk(chunk).await;
        if let Err(e) = &result {
            let kind = match e {
                ReaderError::ObjectStore {
                    source: object_store::Error::NotFound { .. },
                    ..
                } => "missing",
                ReaderError::ObjectStore { .. } => "unavailable",
                ReaderError::Segment { .. } | ReaderError::Corrupt { .. } => "corrupt",
                _ => "other",
            };
            metrics::counter!("silt_reader_object_errors_total", "kind" => kind).increment(1);
            tracing::warn!(segment = %chunk.segment.key, row_group = chunk.row_group, error = %e, "chunk unreadable");
        }
        result
    }

    async fn decode_chunk(&self, chunk: &ChunkEntry) -> Result<Vec<Record>, ReaderError> {
        let footer = self.cache.footer(&chunk.segment).await?;
        let data = self
            .cache
            .chunk(
                &chunk.segment,
                chunk.row_group,
                chunk.byte_start,
                chunk.byte_len,
            )
            .await?;
        let (row_group, start, expected) = (
            chunk.row_group as usize,
            chunk.byte_start,
            chunk.record_count,
        );
        let records =
            tokio::task::spawn_blocking(move || footer.decode_chunk(row_group, start, data))
                .await
                .map_err(|e| ReaderError::Internal {
                    reason: format!("chunk decoder panicked: {e}"),
                })?
                .map_err(|source| ReaderError::Segment {
                    key: chunk.segment.key.clone(),
                    source,
                })?;
        if records.len() != expected as usize {
            return Err(ReaderError::Corrupt {
                key: chunk.segment.key.clone(),
                reason: format!(
                    "row group {} holds {} records, the index says {expected}",
                    chunk.row_group,
                    records.len()
                ),
            });
        }
        Ok(records)
    }

    /// The first offset of a partition whose record timestamp is >= `timestamp_ms`, with
    /// that record's timestamp; `None` if there is none (Kafka then answers the high watermark).
    pub async fn offset_for_timestamp(
        &self,
        topic: &str,
        partition: i32,
        timestamp_ms: i64,
    ) -> Result<Option<(i64, i64)>, ReaderError> {
        let offsets = self.offsets(topic, partition).await?;
        // The index finds the first chunk whose largest timestamp reaches T; timestamps
        // need not grow with offsets, so the record is searched for inside it.
        let Some(chunk) = self
            .metadata
            .chunk_for_timestamp(topic, partition, timestamp_ms)
            .await?
        else {
            return Ok(None);
        };
        let records = self.load_chunk(&chunk).await?;
        Ok(records
            .iter()
            .enumerate()
            .map(|(i, r)| (chunk.base_offset + i as i64, r.timestamp_ms))
            .find(|(offset, ts)| *offset >= offsets.log_start_offset && *ts >= timestamp_ms))
    }

    /// Subscribes to the high watermarks of `partitions`: call before reading their
    /// offsets, then [`PartitionWatch::seen`] what was read, then wait on it.
    pub fn watch_partitions<'p>(
        &self,
        partitions: impl IntoIterator<Item = (&'p str, i32)>,
    ) -> PartitionWatch {
        PartitionWatch::new(
            partitions
                .into_iter()
                .map(|(topic, partition)| self.metadata.watch(topic, partition))
                .collect(),
        )
    }

    /// Flushes the cache's disk tier.
    pub async fn close(&self) {
        self.cache.close().await;
    }
}
