//! Kafka transactions (decision 0008): a transactional id's open transaction, its
//! partitions, groups and pending offsets; the end of a transaction, committed with its
//! markers in one metadata transaction; the per-partition open transactions (the last
//! stable offset) and aborted ranges.

use std::collections::BTreeSet;

use async_trait::async_trait;

use super::SqlStore;
use super::cluster::write_group_offsets;
use super::db::{Tx, args};
use crate::error::{MetadataError, Result};
use crate::model::{
    BatchKind, ChunkOutcome, GroupOffset, ProducerIdentity, SegmentCommit, TransactionEnd,
    TransactionState,
};
use crate::names::validate_group_id;
use crate::rows::{RowRead, i32_of};
use crate::store::TransactionStore;

fn invalid(reason: impl Into<String>) -> MetadataError {
    MetadataError::InvalidTxnState {
        reason: reason.into(),
    }
}

/// The id's row, locked for the rest of `tx`: producer id, epoch, start of the open
/// transaction.
async fn locked_row(
    store: &SqlStore,
    tx: &mut Tx<'_>,
    transactional_id: &str,
) -> Result<(i64, i16, Option<i64>)> {
    let row = tx
        .fetch_optional(
            &format!(
                "SELECT producer_id, epoch, started_at_ms FROM transactional_ids \
                 WHERE transactional_id = $1{}",
                store.for_update()
            ),
            args![transactional_id],
        )
        .await?
        .ok_or_else(|| {
            invalid(format!(
                "transactional id '{transactional_id}' was never initialised"
            ))
        })?;
    let epoch = row.int("epoch")?;
    Ok((
        row.int("producer_id")?,
        i16::try_from(epoch).map_err(|_| MetadataError::Corrupt {
            reason: format!("epoch {epoch}"),
        })?,
        row.opt_int("started_at_ms")?,
    ))
}

/// Checks that `producer` is the id's current producer; answers when its open
/// transaction started, if one is open.
async fn check_producer(
    store: &SqlStore,
    tx: &mut Tx<'_>,
    transactional_id: &str,
    producer: ProducerIdentity,
) -> Result<Option<i64>> {
    let (producer_id, epoch, started) = locked_row(store, tx, transactional_id).await?;
    if producer.producer_id != producer_id {
        return Err(invalid(format!(
            "producer {} is not the producer of transactional id '{transactional_id}' ({producer_id})",
            producer.producer_id
        )));
    }
    if producer.epoch != epoch {
        return Err(MetadataError::ProducerFenced {
            producer_id,
            epoch: producer.epoch,
            current: epoch,
        });
    }
    Ok(started)
}

/// Opens the id's transaction if none is open (its start time is now, its producer id
/// the one opening it).
async fn open(
    store: &SqlStore,
    tx: &mut Tx<'_>,
    transactional_id: &str,
    started: Option<i64>,
) -> Result<()> {
    let now = store.now_ms();
    if started.is_none() {
        tx.execute(
            "UPDATE transactional_ids SET started_at_ms = $2, updated_at_ms = $2, \
             open_producer_id = producer_id WHERE transactional_id = $1",
            args![transactional_id, now],
        )
        .await?;
    } else {
        tx.execute(
            "UPDATE transactional_ids SET updated_at_ms = $2 WHERE transactional_id = $1",
            args![transactional_id, now],
        )
        .await?;
    }
    Ok(())
}

/// Whether producer `producer_id` (epoch `epoch`) has an open transaction that added
/// partition `partition` of topic `topic_id`: the check a transactional batch passes
/// before it is committed. `Ok(None)` when it may be committed, else why not.
pub(crate) async fn check_transactional_batch(
    tx: &mut Tx<'_>,
    topic_id: &str,
    partition: i32,
    producer_id: i64,
    epoch: i16,
) -> Result<Option<MetadataError>> {
    let row = tx
        .fetch_optional(
            "SELECT t.transactional_id, t.epoch, t.started_at_ms, \
             (SELECT COUNT(*) FROM transaction_partitions p WHERE p.transactional_id = t.transactional_id \
              AND p.topic_id = $2 AND p.partition = $3) AS added \
             FROM transactional_ids t WHERE t.producer_id = $1",
            args![producer_id, topic_id, partition],
        )
        .await?;
    let Some(row) = row else {
        return Ok(Some(invalid(format!(
            "producer {producer_id} is not a transactional producer"
        ))));
    };
    let current = i16::try_from(row.int("epoch")?).unwrap_or(i16::MAX);
    if epoch != current {
        return Ok(Some(MetadataError::ProducerFenced {
            producer_id,
            epoch,
            current,
        }));
    }
    if row.opt_int("started_at_ms")?.is_none() || row.int("added")? == 0 {
        return Ok(Some(invalid(format!(
            "transactional id '{}' has not added partition {partition} to an open transaction",
            row.text("transactional_id")?
        ))));
    }
    Ok(None)
}

/// Notes producer `producer_id`'s open transaction in a partition from `first_offset`
/// on (its first transactional batch there): the partition's last stable offset stops
/// there until the transaction ends.
pub(crate) async fn note_open_transaction(
    tx: &mut Tx<'_>,
    topic_id: &str,
    partition: i32,
    producer_id: i64,
    first_offset: i64,
) -> Result<()> {
    tx.execute(
        "INSERT INTO open_transactions (topic_id, partition, producer_id, first_offset) \
         VALUES ($1, $2, $3, $4) ON CONFLICT (topic_id, partition, producer_id) DO NOTHING",
        args![topic_id, partition, producer_id, first_offset],
    )
    .await?;
    Ok(())
}

impl SqlStore {
    async fn state_of(&self, transactional_id: &str) -> Result<Option<TransactionState>> {
        let Some(row) = self
            .pool
            .fetch_optional(
                "SELECT transactional_id, producer_id, epoch, timeout_ms, started_at_ms, updated_at_ms \
                 FROM transactional_ids WHERE transactional_id = $1",
                args![transactional_id],
            )
            .await?
        else {
            return Ok(None);
        };
        let partitions = self
            .pool
            .fetch_all(
                "SELECT t.name, p.partition FROM transaction_partitions p JOIN topics t ON t.id = p.topic_id \
                 WHERE p.transactional_id = $1 ORDER BY t.name, p.partition",
                args![transactional_id],
            )
            .await?
            .iter()
            .map(|r| Ok((r.text("name")?, i32_of(r, "partition")?)))
            .collect::<Result<Vec<_>>>()?;
        let groups = self
            .pool
            .fetch_all(
                "SELECT group_id FROM transaction_groups WHERE transactional_id = $1 ORDER BY group_id",
                args![transactional_id],
            )
            .await?
            .iter()
            .map(|r| r.text("group_id"))
            .collect::<Result<Vec<_>>>()?;
        let started_at_ms = row.opt_int("started_at_ms")?;
        let epoch = row.int("epoch")?;
        Ok(Some(TransactionState {
            transactional_id: row.text("transactional_id")?,
            producer_id: row.int("producer_id")?,
            epoch: i16::try_from(epoch).map_err(|_| MetadataError::Corrupt {
                reason: format!("epoch {epoch}"),
            })?,
            open: started_at_ms.is_some(),
            started_at_ms,
            timeout_ms: row.int("timeout_ms")?,
            partitions,
            groups,
            updated_at_ms: row.int("updated_at_ms")?,
        }))
    }
}

#[async_trait]
impl TransactionStore for SqlStore {
    async fn transaction(&self, transactional_id: &str) -> Result<Option<TransactionState>> {
        self.state_of(transactional_id).await
    }

    async fn add_partitions_to_transaction(
        &self,
        transactional_id: &str,
        producer: ProducerIdentity,
        partitions: &[(String, i32)],
    ) -> Result<()> {
        let mut tx = self.begin_write().await?;
        let started = check_producer(self, &mut tx, transactional_id, producer).await?;
        for (topic, partition) in partitions.iter().collect::<BTreeSet<_>>() {
            let row = tx
                .fetch_optional(
                    "SELECT p.topic_id FROM partitions p JOIN topics t ON t.id = p.topic_id \
                     WHERE t.name = $1 AND p.partition = $2",
                    args![topic.as_str(), *partition],
                )
                .await?;
            let Some(row) = row else {
                return Err(MetadataError::UnknownPartition {
                    topic: topic.clone(),
                    partition: *partition,
                });
            };
            tx.execute(
                "INSERT INTO transaction_partitions (transactional_id, topic_id, partition) \
                 VALUES ($1, $2, $3) ON CONFLICT (transactional_id, topic_id, partition) DO NOTHING",
                args![transactional_id, &row.text("topic_id")?, *partition],
            )
            .await?;
        }
        open(self, &mut tx, transactional_id, started).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn add_offsets_to_transaction(
        &self,
        transactional_id: &str,
        producer: ProducerIdentity,
        group: &str,
    ) -> Result<()> {
        validate_group_id(group)?;
        let mut tx = self.begin_write().await?;
        let started = check_producer(self, &mut tx, transactional_id, producer).await?;
        tx.execute(
            "INSERT INTO transaction_groups (transactional_id, group_id) VALUES ($1, $2) \
             ON CONFLICT (transactional_id, group_id) DO NOTHING",
            args![transactional_id, group],
        )
        .await?;
        open(self, &mut tx, transactional_id, started).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn txn_offset_commit(
        &self,
        transactional_id: &str,
        producer: ProducerIdentity,
        group: &str,
        offsets: &[GroupOffset],
    ) -> Result<()> {
        let mut tx = self.begin_write().await?;
        let started = check_producer(self, &mut tx, transactional_id, producer).await?;
        let added = tx
            .fetch_optional(
                "SELECT group_id FROM transaction_groups WHERE transactional_id = $1 AND group_id = $2",
                args![transactional_id, group],
            )
            .await?;
        if started.is_none() || added.is_none() {
            return Err(invalid(format!(
                "group '{group}' was not added to an open transaction of '{transactional_id}'"
            )));
        }
        for o in offsets {
            tx.execute(
                "INSERT INTO transaction_offsets (transactional_id, group_id, topic, partition, committed_offset, metadata) \
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (transactional_id, group_id, topic, partition) \
                 DO UPDATE SET committed_offset = excluded.committed_offset, metadata = excluded.metadata",
                args![transactional_id, group, &o.topic, o.partition, o.offset, &o.metadata],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn end_transaction(
        &self,
        end: &TransactionEnd,
        markers: &SegmentCommit,
    ) -> Result<Vec<ChunkOutcome>> {
        if markers.chunks.iter().any(|c| c.kind != BatchKind::Marker) {
            return Err(MetadataError::InvalidRequest {
                reason: "an end of transaction commits marker chunks only".into(),
            });
        }
        let mut tx = self.begin_write().await?;
        let id = end.transactional_id.as_str();
        let known = tx
            .fetch_optional(
                "SELECT id FROM segments WHERE object_key = $1",
                args![&markers.key],
            )
            .await?;
        let mut opened_by = end.producer.producer_id;
        if known.is_none() {
            // First time (not a resend): the transaction must be open and this producer's.
            let started = check_producer(self, &mut tx, id, end.producer).await?;
            if started.is_none() {
                if markers.chunks.is_empty() {
                    // An end of offsets only has no object to recognise a resend by: one
                    // whose first answer was lost finds the transaction already ended.
                    return Ok(Vec::new());
                }
                return Err(invalid(format!(
                    "transactional id '{id}' has no open transaction"
                )));
            }
            // An epoch bump may have changed the producer id since the transaction opened:
            // its records carry the id that opened it.
            if let Some(opener) = tx
                .fetch_one(
                    "SELECT open_producer_id FROM transactional_ids WHERE transactional_id = $1",
                    args![id],
                )
                .await?
                .opt_int("open_producer_id")?
            {
                opened_by = opener;
            }
            let state = self.state_in(&mut tx, id).await?;
            let wanted: BTreeSet<(String, i32)> = state.into_iter().collect();
            let given: BTreeSet<(String, i32)> = markers
                .chunks
                .iter()
                .map(|c| (c.topic.clone(), c.partition))
                .collect();
            if wanted != given {
                return Err(MetadataError::InvalidRequest {
                    reason: format!(
                        "the markers name {given:?}; the transaction of '{id}' wrote to {wanted:?}"
                    ),
                });
            }
        }
        let committed = if markers.chunks.is_empty() {
            // A transaction of offsets only: no partition to mark.
            super::log::Committed {
                outcomes: Vec::new(),
                high_watermarks: Vec::new(),
                replayed: false,
            }
        } else {
            self.commit_chunks(&mut tx, markers).await?
        };
        if committed.replayed {
            tx.commit().await?;
            return Ok(committed.outcomes);
        }
        let producer_id = opened_by;
        for (chunk, outcome) in markers.chunks.iter().zip(&committed.outcomes) {
            let ChunkOutcome::Committed { base_offset } = outcome else {
                return Err(MetadataError::InvalidRequest {
                    reason: format!(
                        "the marker for {}/{} was not committed: {outcome:?}",
                        chunk.topic, chunk.partition
                    ),
                });
            };
            let topic_id = tx
                .fetch_one(
                    "SELECT id FROM topics WHERE name = $1",
                    args![chunk.topic.as_str()],
                )
                .await?
                .text("id")?;
            let first = tx
                .fetch_optional(
                    "SELECT first_offset FROM open_transactions \
                     WHERE topic_id = $1 AND partition = $2 AND producer_id = $3",
                    args![&topic_id, chunk.partition, producer_id],
                )
                .await?
                .map(|r| r.int("first_offset"))
                .transpose()?;
            if let (Some(first_offset), false) = (first, end.commit) {
                tx.execute(
                    "INSERT INTO aborted_transactions (topic_id, partition, producer_id, first_offset, last_offset) \
                     VALUES ($1, $2, $3, $4, $5)",
                    args![&topic_id, chunk.partition, producer_id, first_offset, *base_offset],
                )
                .await?;
            }
            tx.execute(
                "DELETE FROM open_transactions WHERE topic_id = $1 AND partition = $2 AND producer_id = $3",
                args![&topic_id, chunk.partition, producer_id],
            )
            .await?;
        }
        if end.commit {
            let rows = tx
                .fetch_all(
                    "SELECT group_id, topic, partition, committed_offset, metadata FROM transaction_offsets \
                     WHERE transactional_id = $1 ORDER BY group_id, topic, partition",
                    args![id],
                )
                .await?;
            let now = self.now_ms();
            let mut by_group: std::collections::BTreeMap<String, Vec<GroupOffset>> =
                Default::default();
            for r in &rows {
                by_group
                    .entry(r.text("group_id")?)
                    .or_default()
                    .push(GroupOffset {
                        topic: r.text("topic")?,
                        partition: i32_of(r, "partition")?,
                        offset: r.int("committed_offset")?,
                        metadata: r.opt_text("metadata")?,
                        commit_time_ms: now,
                    });
            }
            for (group, offsets) in by_group {
                write_group_offsets(&mut tx, &group, &offsets).await?;
            }
        }
        for table in [
            "transaction_partitions",
            "transaction_groups",
            "transaction_offsets",
        ] {
            tx.execute(
                &format!("DELETE FROM {table} WHERE transactional_id = $1"),
                args![id],
            )
            .await?;
        }
        tx.execute(
            "UPDATE transactional_ids SET started_at_ms = NULL, open_producer_id = NULL, \
             updated_at_ms = $2 WHERE transactional_id = $1",
            args![id, self.now_ms()],
        )
        .await?;
        tx.commit().await?;
        Ok(self.published(committed))
    }

    async fn fence_expired_transaction(
        &self,
        transactional_id: &str,
        started_at_ms: i64,
    ) -> Result<Option<ProducerIdentity>> {
        let mut tx = self.begin_write().await?;
        let row = tx
            .fetch_optional(
                &format!(
                    "SELECT producer_id, epoch, timeout_ms, started_at_ms FROM transactional_ids \
                     WHERE transactional_id = $1{}",
                    self.for_update()
                ),
                args![transactional_id],
            )
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        if row.opt_int("started_at_ms")? != Some(started_at_ms) {
            // Ended (and maybe another opened) since it was seen: not this one's to fence.
            return Ok(None);
        }
        let identity = super::log::bump_epoch(
            &mut tx,
            transactional_id,
            (row.int("producer_id")?, row.int("epoch")?),
            row.int("timeout_ms")?,
            self.now_ms(),
        )
        .await?;
        tx.commit().await?;
        Ok(Some(identity))
    }

    async fn transactions(&self) -> Result<Vec<TransactionState>> {
        let ids = self
            .pool
            .fetch_all(
                "SELECT transactional_id FROM transactional_ids ORDER BY transactional_id",
                args![],
            )
            .await?;
        let mut out = Vec::with_capacity(ids.len());
        for row in &ids {
            if let Some(state) = self.state_of(&row.text("transactional_id")?).await? {
                out.push(state);
            }
        }
        Ok(out)
    }
}

impl SqlStore {
    /// The partitions of the id's open transaction, inside `tx`.
    async fn state_in(
        &self,
        tx: &mut Tx<'_>,
        transactional_id: &str,
    ) -> Result<Vec<(String, i32)>> {
        tx.fetch_all(
            "SELECT t.name, p.partition FROM transaction_partitions p JOIN topics t ON t.id = p.topic_id \
             WHERE p.transactional_id = $1",
            args![transactional_id],
        )
        .await?
        .iter()
        .map(|r| Ok((r.text("name")?, i32_of(r, "partition")?)))
        .collect()
    }
}
