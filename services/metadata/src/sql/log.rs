//! The log: segment commits (offsets assigned, idempotent sequences checked, index
//! entries written, all in one transaction), index lookups, log starts and high
//! watermarks; and the producer ids idempotence hands out.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use async_trait::async_trait;

use super::db::{Tx, args};
use super::{Backend, SqlStore, placeholders, postgres, sqlite};
use crate::error::{MetadataError, Result};
use crate::model::{
    AbortedTransaction, BatchKind, ChunkCommit, ChunkEntry, ChunkOutcome, PartitionOffsets,
    ProducerBatch, ProducerIdentity, ProducerState, SegmentCommit,
};
use crate::rows::{CHUNK_COLUMNS, RowRead, chunk_from_row, i32_of, to_i64};
use crate::sequence::{
    PRODUCER_BATCHES_KEPT, RememberedBatch, SequenceCheck, judge, last_sequence, not_in_segment,
};
use crate::store::{LogStore, ProducerStore};

/// Index entries to insert, as columns (PostgreSQL inserts them as arrays, in one go).
#[derive(Debug, Default)]
pub(crate) struct ChunkRows {
    pub(crate) topic_id: Vec<String>,
    pub(crate) partition: Vec<i64>,
    pub(crate) base_offset: Vec<i64>,
    pub(crate) record_count: Vec<i64>,
    pub(crate) segment_id: Vec<i64>,
    pub(crate) row_group: Vec<i64>,
    pub(crate) byte_start: Vec<i64>,
    pub(crate) byte_len: Vec<i64>,
    pub(crate) min_timestamp_ms: Vec<i64>,
    pub(crate) max_timestamp_ms: Vec<i64>,
    pub(crate) producer_id: Vec<Option<i64>>,
    pub(crate) producer_epoch: Vec<Option<i64>>,
    pub(crate) base_sequence: Vec<Option<i64>>,
    pub(crate) batch_kind: Vec<i64>,
}

impl ChunkRows {
    pub(crate) fn len(&self) -> usize {
        self.topic_id.len()
    }

    pub(crate) fn push(
        &mut self,
        topic_id: &str,
        entry: &ChunkEntry,
        segment_id: i64,
    ) -> Result<()> {
        self.topic_id.push(topic_id.to_string());
        self.partition.push(i64::from(entry.partition));
        self.base_offset.push(entry.base_offset);
        self.record_count.push(i64::from(entry.record_count));
        self.segment_id.push(segment_id);
        self.row_group.push(i64::from(entry.row_group));
        self.byte_start
            .push(to_i64(entry.byte_start, "byte_start")?);
        self.byte_len.push(to_i64(entry.byte_len, "byte_len")?);
        self.min_timestamp_ms.push(entry.min_timestamp_ms);
        self.max_timestamp_ms.push(entry.max_timestamp_ms);
        self.producer_id.push(entry.producer.map(|p| p.producer_id));
        self.producer_epoch
            .push(entry.producer.map(|p| i64::from(p.epoch)));
        self.base_sequence
            .push(entry.producer.map(|p| i64::from(p.base_sequence)));
        self.batch_kind.push(entry.kind.code());
        Ok(())
    }
}

/// The index entry a committed chunk becomes (its segment is known by id).
fn entry_of(chunk: &ChunkCommit, base_offset: i64) -> ChunkEntry {
    ChunkEntry {
        partition: chunk.partition,
        base_offset,
        record_count: chunk.record_count,
        segment: crate::model::SegmentRef {
            key: String::new(),
            size: 0,
            footer_len: 0,
            footer_crc: None,
        },
        row_group: chunk.row_group,
        byte_start: chunk.byte_start,
        byte_len: chunk.byte_len,
        min_timestamp_ms: chunk.min_timestamp_ms,
        max_timestamp_ms: chunk.max_timestamp_ms,
        producer: chunk.producer,
        kind: chunk.kind,
    }
}

/// A partition's offsets with its last stable offset, from `partitions p`.
const OFFSET_COLUMNS: &str = "p.partition, p.log_start_offset, p.next_offset, \
     (SELECT MIN(o.first_offset) FROM open_transactions o \
      WHERE o.topic_id = p.topic_id AND o.partition = p.partition) AS first_open";

fn offsets_from_row(row: &impl RowRead) -> Result<PartitionOffsets> {
    let high_watermark = row.int("next_offset")?;
    Ok(PartitionOffsets {
        partition: i32_of(row, "partition")?,
        log_start_offset: row.int("log_start_offset")?,
        high_watermark,
        last_stable_offset: row.opt_int("first_open")?.unwrap_or(high_watermark),
    })
}

impl SqlStore {
    /// Locks the partitions a commit touches (sorted, so in one order) and reads their
    /// next offsets.
    async fn lock_partitions(
        &self,
        tx: &mut Tx<'_>,
        partitions: &[(&str, i32)],
    ) -> Result<Vec<(String, i32, i64)>> {
        match self.backend {
            Backend::Sqlite { .. } => sqlite::lock_partitions(tx, partitions).await,
            Backend::Postgres { .. } => postgres::lock_partitions(tx, partitions).await,
        }
    }

    async fn set_next_offsets(&self, tx: &mut Tx<'_>, next: &[(&str, i32, i64)]) -> Result<()> {
        match self.backend {
            Backend::Sqlite { .. } => sqlite::set_next_offsets(tx, next).await,
            Backend::Postgres { .. } => postgres::set_next_offsets(tx, next).await,
        }
    }

    /// Commits a segment's chunks inside `tx`: offsets assigned, idempotent sequences and
    /// transactional state checked, index entries written. A segment committed before
    /// (a resent commit) is answered as the first time and changes nothing.
    pub(crate) async fn commit_chunks(
        &self,
        tx: &mut Tx<'_>,
        segment: &SegmentCommit,
    ) -> Result<Committed> {
        if segment.chunks.is_empty() {
            return Err(MetadataError::InvalidRequest {
                reason: "a segment commit needs at least one chunk".into(),
            });
        }
        if let Some(c) = segment.chunks.iter().find(|c| c.record_count == 0) {
            return Err(MetadataError::InvalidRequest {
                reason: format!("empty chunk for {}/{}", c.topic, c.partition),
            });
        }
        // Resolve topic ids, lock every touched partition and read its next offset, then
        // assign offsets in memory and write them and the index entries back.
        let names: Vec<&str> = segment
            .chunks
            .iter()
            .map(|c| c.topic.as_str())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let topic_ids = topic_ids(tx, &names).await?;
        let touched: Vec<(&str, i32)> = segment
            .chunks
            .iter()
            .map(|c| (topic_ids[c.topic.as_str()].as_str(), c.partition))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let mut next: HashMap<(String, i32), i64> = self
            .lock_partitions(tx, &touched)
            .await?
            .into_iter()
            .map(|(t, p, n)| ((t, p), n))
            .collect();
        if let Some(chunk) = segment
            .chunks
            .iter()
            .find(|c| !next.contains_key(&(topic_ids[c.topic.as_str()].clone(), c.partition)))
        {
            return Err(MetadataError::UnknownPartition {
                topic: chunk.topic.clone(),
                partition: chunk.partition,
            });
        }
        let existing = tx
            .fetch_optional(
                "SELECT id FROM segments WHERE object_key = $1",
                args![&segment.key],
            )
            .await?;
        if let Some(row) = existing {
            let outcomes = replay_commit(tx, row.int("id")?, segment, &topic_ids).await?;
            return Ok(Committed {
                outcomes,
                high_watermarks: Vec::new(),
                replayed: true,
            });
        }
        let segment_id = tx
            .fetch_one(
                "INSERT INTO segments (object_key, size, footer_len, footer_crc, created_at_ms) \
                 VALUES ($1, $2, $3, $4, $5) RETURNING id",
                args![
                    &segment.key,
                    to_i64(segment.size, "size")?,
                    to_i64(segment.footer_len, "footer_len")?,
                    segment.footer_crc.map(i64::from),
                    self.now_ms()
                ],
            )
            .await?
            .int("id")?;

        let mut outcomes = Vec::with_capacity(segment.chunks.len());
        let mut rows = ChunkRows::default();
        let mut high_watermarks: HashMap<(String, i32), i64> = HashMap::new();
        for chunk in &segment.chunks {
            let topic_id = &topic_ids[chunk.topic.as_str()];
            // A transaction's batch is committed only inside its open transaction, for a
            // partition it added, at the producer's current epoch (what fences zombies).
            if chunk.kind == BatchKind::Transactional {
                let Some(producer) = &chunk.producer else {
                    outcomes.push(ChunkOutcome::Rejected(MetadataError::InvalidRequest {
                        reason: "a transactional batch names its producer".into(),
                    }));
                    continue;
                };
                if let Some(refusal) = super::transactions::check_transactional_batch(
                    tx,
                    topic_id,
                    chunk.partition,
                    producer.producer_id,
                    producer.epoch,
                )
                .await?
                {
                    outcomes.push(ChunkOutcome::Rejected(refusal));
                    continue;
                }
            }
            // Markers carry their producer but no sequences.
            let sequenced = chunk.producer.filter(|_| chunk.kind != BatchKind::Marker);
            if let Some(producer) = &sequenced {
                match check_sequence(tx, topic_id, chunk, producer).await? {
                    SequenceCheck::Next => {}
                    SequenceCheck::Duplicate(base_offset) => {
                        outcomes.push(ChunkOutcome::Duplicate { base_offset });
                        continue;
                    }
                    SequenceCheck::Refused(e) => {
                        outcomes.push(ChunkOutcome::Rejected(e));
                        continue;
                    }
                }
            }
            let offset = next
                .get_mut(&(topic_id.clone(), chunk.partition))
                .ok_or_else(|| MetadataError::Corrupt {
                    reason: "a locked partition vanished".into(),
                })?;
            let base = *offset;
            *offset += i64::from(chunk.record_count);
            rows.push(topic_id, &entry_of(chunk, base), segment_id)?;
            if let Some(producer) = &sequenced {
                // Recorded at once: a later batch of the same producer in this segment is
                // checked against it.
                record_batch(tx, topic_id, chunk, producer, base).await?;
                if chunk.kind == BatchKind::Transactional {
                    super::transactions::note_open_transaction(
                        tx,
                        topic_id,
                        chunk.partition,
                        producer.producer_id,
                        base,
                    )
                    .await?;
                }
            }
            outcomes.push(ChunkOutcome::Committed { base_offset: base });
            high_watermarks.insert((chunk.topic.clone(), chunk.partition), *offset);
        }
        if rows.len() > 0 {
            let moved: Vec<(&str, i32, i64)> = next
                .iter()
                .map(|((t, p), n)| (t.as_str(), *p, *n))
                .collect();
            self.set_next_offsets(tx, &moved).await?;
            self.insert_chunks(tx, &rows).await?;
        }
        Ok(Committed {
            outcomes,
            high_watermarks: high_watermarks
                .into_iter()
                .map(|((t, p), h)| (t, p, h))
                .collect(),
            replayed: false,
        })
    }

    /// Tells the watchers of a committed segment's partitions, and answers its outcomes.
    pub(crate) fn published(&self, committed: Committed) -> Vec<ChunkOutcome> {
        for (topic, partition, hwm) in &committed.high_watermarks {
            self.watchers.publish(topic, *partition, *hwm);
        }
        committed.outcomes
    }

    pub(crate) async fn insert_chunks(&self, tx: &mut Tx<'_>, rows: &ChunkRows) -> Result<()> {
        if rows.len() == 0 {
            return Ok(());
        }
        match self.backend {
            Backend::Sqlite { .. } => sqlite::insert_chunks(tx, rows).await,
            Backend::Postgres { .. } => postgres::insert_chunks(tx, rows).await,
        }
    }
}

/// What a segment commit did, before its transaction commits.
pub(crate) struct Committed {
    pub(crate) outcomes: Vec<ChunkOutcome>,
    /// The new high watermark of each partition it moved.
    pub(crate) high_watermarks: Vec<(String, i32, i64)>,
    /// The segment was committed before: nothing changed.
    pub(crate) replayed: bool,
}

/// Topic ids by name, for the topics of a commit (an error names the first missing one).
async fn topic_ids<'c>(tx: &mut Tx<'_>, names: &[&'c str]) -> Result<HashMap<&'c str, String>> {
    let mut ids = HashMap::new();
    for batch in names.chunks(500) {
        let sql = format!(
            "SELECT name, id FROM topics WHERE name IN ({})",
            placeholders(1, batch.len())
        );
        let args: Vec<_> = batch.iter().map(|n| super::db::Arg::Text(n)).collect();
        for row in tx.fetch_all(&sql, &args).await? {
            let name = row.text("name")?;
            if let Some(n) = batch.iter().find(|n| **n == name) {
                ids.insert(*n, row.text("id")?);
            }
        }
    }
    if let Some(missing) = names.iter().find(|n| !ids.contains_key(**n)) {
        return Err(MetadataError::UnknownTopic {
            topic: (*missing).to_string(),
        });
    }
    Ok(ids)
}

/// A segment committed before (a retried commit whose answer was lost): answers each
/// chunk as the first commit did, changing nothing.
async fn replay_commit(
    tx: &mut Tx<'_>,
    segment_id: i64,
    segment: &SegmentCommit,
    topic_ids: &HashMap<&str, String>,
) -> Result<Vec<ChunkOutcome>> {
    let mut outcomes = Vec::with_capacity(segment.chunks.len());
    for chunk in &segment.chunks {
        let topic_id = &topic_ids[chunk.topic.as_str()];
        let base = tx
            .fetch_optional(
                "SELECT base_offset FROM chunks WHERE segment_id = $1 AND topic_id = $2 \
                 AND partition = $3 AND row_group = $4",
                args![segment_id, topic_id, chunk.partition, chunk.row_group],
            )
            .await?
            .map(|row| row.int("base_offset"))
            .transpose()?;
        let outcome = match (base, &chunk.producer) {
            (Some(base_offset), _) => ChunkOutcome::Committed { base_offset },
            (None, Some(producer)) => match check_sequence(tx, topic_id, chunk, producer).await? {
                SequenceCheck::Duplicate(base_offset) => ChunkOutcome::Duplicate { base_offset },
                SequenceCheck::Refused(e) => ChunkOutcome::Rejected(e),
                SequenceCheck::Next => ChunkOutcome::Rejected(not_in_segment(chunk)),
            },
            (None, None) => ChunkOutcome::Rejected(not_in_segment(chunk)),
        };
        outcomes.push(outcome);
    }
    Ok(outcomes)
}

async fn check_sequence(
    tx: &mut Tx<'_>,
    topic_id: &str,
    chunk: &ChunkCommit,
    producer: &ProducerBatch,
) -> Result<SequenceCheck> {
    let current = tx
        .fetch_optional(
            "SELECT epoch FROM producers WHERE producer_id = $1",
            args![producer.producer_id],
        )
        .await?
        .map(|row| row.int("epoch"))
        .transpose()?;
    let rows = tx
        .fetch_all(
            "SELECT first_seq, last_seq, base_offset FROM producer_batches \
             WHERE producer_id = $1 AND topic_id = $2 AND partition = $3 AND epoch = $4 ORDER BY id",
            args![
                producer.producer_id,
                topic_id,
                chunk.partition,
                i64::from(producer.epoch)
            ],
        )
        .await?;
    let recent = rows
        .iter()
        .map(|r| {
            Ok(RememberedBatch {
                first_seq: i32_of(r, "first_seq")?,
                last_seq: i32_of(r, "last_seq")?,
                base_offset: r.int("base_offset")?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(judge(chunk, producer, current, &recent))
}

async fn record_batch(
    tx: &mut Tx<'_>,
    topic_id: &str,
    chunk: &ChunkCommit,
    producer: &ProducerBatch,
    base_offset: i64,
) -> Result<()> {
    tx.execute(
        "INSERT INTO producer_batches (producer_id, topic_id, partition, epoch, first_seq, last_seq, base_offset) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
        args![
            producer.producer_id,
            topic_id,
            chunk.partition,
            i64::from(producer.epoch),
            producer.base_sequence,
            last_sequence(chunk, producer),
            base_offset
        ],
    )
    .await?;
    // A batch of a newer epoch makes it the producer's current one (see `judge`).
    tx.execute(
        "UPDATE producers SET epoch = $2 WHERE producer_id = $1 AND epoch < $2",
        args![producer.producer_id, i64::from(producer.epoch)],
    )
    .await?;
    tx.execute(
        "DELETE FROM producer_batches WHERE producer_id = $1 AND topic_id = $2 AND partition = $3 AND id NOT IN \
         (SELECT id FROM producer_batches WHERE producer_id = $1 AND topic_id = $2 AND partition = $3 \
          ORDER BY id DESC LIMIT $4)",
        args![
            producer.producer_id,
            topic_id,
            chunk.partition,
            PRODUCER_BATCHES_KEPT
        ],
    )
    .await?;
    Ok(())
}

#[async_trait]
impl LogStore for SqlStore {
    async fn partition_offsets(&self, topic: &str) -> Result<Vec<PartitionOffsets>> {
        let t = self.get_topic(topic).await?;
        let rows = self
            .pool
            .fetch_all(
                &format!(
                    "SELECT {OFFSET_COLUMNS} FROM partitions p WHERE p.topic_id = $1 ORDER BY p.partition"
                ),
                args![&t.id.to_string()],
            )
            .await?;
        rows.iter().map(offsets_from_row).collect()
    }

    async fn partition_offset(&self, topic: &str, partition: i32) -> Result<PartitionOffsets> {
        let row = self
            .pool
            .fetch_optional(
                &format!(
                    "SELECT {OFFSET_COLUMNS} FROM partitions p \
                     JOIN topics t ON t.id = p.topic_id WHERE t.name = $1 AND p.partition = $2"
                ),
                args![topic, partition],
            )
            .await?;
        match row {
            Some(r) => offsets_from_row(&r),
            // Tell a missing topic from a missing partition.
            None => {
                self.get_topic(topic).await?;
                Err(MetadataError::UnknownPartition {
                    topic: topic.to_string(),
                    partition,
                })
            }
        }
    }

    async fn commit_segment(&self, segment: &SegmentCommit) -> Result<Vec<ChunkOutcome>> {
        let mut tx = self.begin_write().await?;
        let committed = self.commit_chunks(&mut tx, segment).await?;
        tx.commit().await?;
        Ok(self.published(committed))
    }

    async fn aborted_transactions(
        &self,
        topic: &str,
        partition: i32,
        from: i64,
        to: i64,
    ) -> Result<Vec<AbortedTransaction>> {
        let rows = self
            .pool
            .fetch_all(
                "SELECT a.producer_id, a.first_offset, a.last_offset FROM aborted_transactions a \
                 JOIN topics t ON t.id = a.topic_id WHERE t.name = $1 AND a.partition = $2 \
                 AND a.last_offset >= $3 AND a.first_offset < $4 ORDER BY a.first_offset",
                args![topic, partition, from, to],
            )
            .await?;
        rows.iter()
            .map(|r| {
                Ok(AbortedTransaction {
                    producer_id: r.int("producer_id")?,
                    first_offset: r.int("first_offset")?,
                    last_offset: r.int("last_offset")?,
                })
            })
            .collect()
    }

    async fn partition_sizes(&self, topic: &str) -> Result<Vec<(i32, u64)>> {
        let t = self.get_topic(topic).await?;
        let rows = self
            .pool
            .fetch_all(
                "SELECT partition, CAST(SUM(byte_len) AS BIGINT) AS bytes FROM chunks WHERE topic_id = $1 \
                 GROUP BY partition",
                args![&t.id.to_string()],
            )
            .await?;
        let mut sizes: Vec<(i32, u64)> = (0..t.partitions).map(|p| (p, 0)).collect();
        for row in &rows {
            let partition = i32_of(row, "partition")?;
            let bytes = u64::try_from(row.int("bytes")?).map_err(|_| MetadataError::Corrupt {
                reason: format!("negative size of {topic}/{partition}"),
            })?;
            if let Some(slot) = sizes.iter_mut().find(|(p, _)| *p == partition) {
                slot.1 = bytes;
            }
        }
        Ok(sizes)
    }

    async fn chunks_from(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
        limit: u32,
    ) -> Result<Vec<ChunkEntry>> {
        let topic_id = self.topic_id(topic, partition).await?;
        let sql = format!(
            "SELECT {CHUNK_COLUMNS} FROM chunks c JOIN segments s ON s.id = c.segment_id \
             WHERE c.topic_id = $1 AND c.partition = $2 AND c.base_offset >= COALESCE( \
               (SELECT MAX(base_offset) FROM chunks WHERE topic_id = $1 AND partition = $2 AND base_offset <= $3), 0) \
             AND c.base_offset + c.record_count > $3 \
             ORDER BY c.base_offset LIMIT $4"
        );
        let rows = self
            .pool
            .fetch_all(&sql, args![&topic_id, partition, offset, limit])
            .await?;
        rows.iter().map(chunk_from_row).collect()
    }

    async fn chunk_for_timestamp(
        &self,
        topic: &str,
        partition: i32,
        timestamp_ms: i64,
    ) -> Result<Option<ChunkEntry>> {
        let topic_id = self.topic_id(topic, partition).await?;
        let sql = format!(
            "SELECT {CHUNK_COLUMNS} FROM chunks c JOIN segments s ON s.id = c.segment_id \
             JOIN partitions p ON p.topic_id = c.topic_id AND p.partition = c.partition \
             WHERE c.topic_id = $1 AND c.partition = $2 AND c.max_timestamp_ms >= $3 \
             AND c.base_offset + c.record_count > p.log_start_offset \
             ORDER BY c.base_offset LIMIT 1"
        );
        let row = self
            .pool
            .fetch_optional(&sql, args![&topic_id, partition, timestamp_ms])
            .await?;
        row.as_ref().map(chunk_from_row).transpose()
    }
}

#[async_trait]
impl ProducerStore for SqlStore {
    async fn init_producer_id(&self) -> Result<ProducerIdentity> {
        let mut tx = self.begin_write().await?;
        let producer_id = new_producer_id(&mut tx, self.now_ms()).await?;
        tx.commit().await?;
        Ok(ProducerIdentity {
            producer_id,
            epoch: 0,
        })
    }

    async fn partition_producers(&self, topic: &str, partition: i32) -> Result<Vec<ProducerState>> {
        let topic_id = self.topic_id(topic, partition).await?;
        let rows = self
            .pool
            .fetch_all(
                "SELECT b.producer_id, b.epoch, b.last_seq, b.base_offset, \
                 (SELECT o.first_offset FROM open_transactions o WHERE o.topic_id = b.topic_id \
                  AND o.partition = b.partition AND o.producer_id = b.producer_id) AS txn_start \
                 FROM producer_batches b \
                 WHERE b.topic_id = $1 AND b.partition = $2 AND b.id = (SELECT MAX(id) \
                 FROM producer_batches WHERE producer_id = b.producer_id AND topic_id = $1 \
                 AND partition = $2) ORDER BY b.producer_id",
                args![&topic_id, partition],
            )
            .await?;
        rows.iter()
            .map(|r| {
                Ok(ProducerState {
                    producer_id: r.int("producer_id")?,
                    epoch: i16::try_from(r.int("epoch")?).map_err(|_| MetadataError::Corrupt {
                        reason: format!("a producer epoch of {topic}/{partition}"),
                    })?,
                    last_sequence: i32_of(r, "last_seq")?,
                    last_base_offset: r.int("base_offset")?,
                    txn_start_offset: r.opt_int("txn_start")?,
                })
            })
            .collect()
    }

    async fn init_transactional_producer(
        &self,
        transactional_id: &str,
        timeout: Duration,
    ) -> Result<ProducerIdentity> {
        if transactional_id.is_empty() {
            return Err(MetadataError::InvalidRequest {
                reason: "a transactional id is not empty".into(),
            });
        }
        let timeout_ms = i64::try_from(timeout.as_millis()).unwrap_or(i64::MAX);
        let now = self.now_ms();
        let mut tx = self.begin_write().await?;
        let lookup = format!(
            "SELECT producer_id, epoch FROM transactional_ids WHERE transactional_id = $1{}",
            self.for_update()
        );
        let mut current = tx.fetch_optional(&lookup, args![transactional_id]).await?;
        if current.is_none() {
            let producer_id = new_producer_id(&mut tx, self.now_ms()).await?;
            let inserted = tx
                .execute(
                    "INSERT INTO transactional_ids (transactional_id, producer_id, epoch, timeout_ms, updated_at_ms) \
                     VALUES ($1, $2, 0, $3, $4) ON CONFLICT (transactional_id) DO NOTHING",
                    args![transactional_id, producer_id, timeout_ms, now],
                )
                .await?;
            if inserted == 1 {
                tx.commit().await?;
                return Ok(ProducerIdentity {
                    producer_id,
                    epoch: 0,
                });
            }
            // Another caller made it first (its insert is committed now): bump its epoch.
            current = tx.fetch_optional(&lookup, args![transactional_id]).await?;
        }
        let row = current.ok_or_else(|| MetadataError::Corrupt {
            reason: format!("transactional id '{transactional_id}' vanished"),
        })?;
        let identity = bump_epoch(
            &mut tx,
            transactional_id,
            (row.int("producer_id")?, row.int("epoch")?),
            timeout_ms,
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(identity)
    }
}

/// Moves transactional id `transactional_id` (its row locked in `tx`, at `current`
/// producer id and epoch) to its next epoch, a new producer id once the epochs run out,
/// and fences every older epoch's batches.
pub(crate) async fn bump_epoch(
    tx: &mut Tx<'_>,
    transactional_id: &str,
    current: (i64, i64),
    timeout_ms: i64,
    now: i64,
) -> Result<ProducerIdentity> {
    let (mut producer_id, epoch) = current;
    let epoch = if epoch >= i64::from(i16::MAX) - 1 {
        // The epochs of this producer id are used up: start a new one.
        producer_id = new_producer_id(tx, now).await?;
        0
    } else {
        epoch + 1
    };
    tx.execute(
        "UPDATE transactional_ids SET producer_id = $2, epoch = $3, timeout_ms = $4, updated_at_ms = $5 \
         WHERE transactional_id = $1",
        args![transactional_id, producer_id, epoch, timeout_ms, now],
    )
    .await?;
    // Batches of an older epoch are fenced from now on (see `judge`).
    tx.execute(
        "UPDATE producers SET epoch = $2 WHERE producer_id = $1 AND epoch < $2",
        args![producer_id, epoch],
    )
    .await?;
    Ok(ProducerIdentity {
        producer_id,
        epoch: i16::try_from(epoch).map_err(|_| MetadataError::Corrupt {
            reason: format!("epoch {epoch} of '{transactional_id}'"),
        })?,
    })
}

/// A new producer id, at epoch 0, made at `now_ms`.
async fn new_producer_id(tx: &mut Tx<'_>, now_ms: i64) -> Result<i64> {
    tx.fetch_one(
        "INSERT INTO producers (epoch, created_at_ms) VALUES (0, $1) RETURNING producer_id",
        args![now_ms],
    )
    .await?
    .int("producer_id")
}
