//! What the compactor changes: raw chunks swapped for lake objects, log starts moved,
//! unreferenced objects noted and forgotten.

use std::time::Duration;

use async_trait::async_trait;

use super::db::{Arg, args};
use super::log::ChunkRows;
use super::{SqlStore, placeholders};
use crate::error::{MetadataError, Result};
use crate::model::{BatchKind, ChunkEntry, PartitionOffsets};
use crate::rows::{CHUNK_COLUMNS, RowRead, chunk_from_row, to_i64};
use crate::sequence::{check_swap, same_entries};
use crate::store::CompactionStore;

/// Object keys per statement of a keyed lookup or delete.
const KEYS_PER_STATEMENT: usize = 500;

#[async_trait]
impl CompactionStore for SqlStore {
    async fn raw_chunks(
        &self,
        topic: &str,
        partition: i32,
        from: i64,
        before_ms: i64,
        limit: u32,
    ) -> Result<Vec<ChunkEntry>> {
        let topic_id = self.topic_id(topic, partition).await?;
        // Plain chunks, and transactions' chunks below the last stable offset: every
        // transaction there has ended, so the aborted ranges say which records to keep.
        let sql = format!(
            "SELECT {CHUNK_COLUMNS}, s.created_at_ms AS segment_created_ms FROM chunks c \
             JOIN segments s ON s.id = c.segment_id \
             WHERE c.topic_id = $1 AND c.partition = $2 AND s.kind = 'raw' \
             AND c.base_offset + c.record_count > $5 \
             AND (c.batch_kind = 0 OR c.base_offset + c.record_count <= COALESCE( \
               (SELECT MIN(o.first_offset) FROM open_transactions o \
                WHERE o.topic_id = $1 AND o.partition = $2), $4)) \
             ORDER BY c.base_offset LIMIT $3"
        );
        let rows = self
            .pool
            .fetch_all(&sql, args![&topic_id, partition, limit, i64::MAX, from])
            .await?;
        let mut out = Vec::new();
        for row in &rows {
            if row.int("segment_created_ms")? >= before_ms {
                break;
            }
            out.push(chunk_from_row(row)?);
        }
        Ok(out)
    }

    async fn replace_chunks(
        &self,
        topic: &str,
        partition: i32,
        replaced: &[ChunkEntry],
        new: &[ChunkEntry],
    ) -> Result<()> {
        let (start, end) = check_swap(replaced, new)?;
        let topic_id = self.topic_id(topic, partition).await?;
        let mut tx = self.begin_write().await?;
        // The partition row lock orders this swap with commits and retention.
        tx.fetch_optional(
            &format!(
                "SELECT 1 AS locked FROM partitions WHERE topic_id = $1 AND partition = $2{}",
                self.for_update()
            ),
            args![&topic_id, partition],
        )
        .await?;
        let current = tx
            .fetch_all(
                "SELECT c.base_offset, c.record_count, s.object_key FROM chunks c \
                 JOIN segments s ON s.id = c.segment_id \
                 WHERE c.topic_id = $1 AND c.partition = $2 AND c.base_offset >= $3 AND c.base_offset < $4 \
                 ORDER BY c.base_offset",
                args![&topic_id, partition, start, end],
            )
            .await?
            .iter()
            .map(|r| {
                Ok((
                    r.int("base_offset")?,
                    r.int("record_count")?,
                    r.text("object_key")?,
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        if !same_entries(&current, replaced) {
            return Err(MetadataError::Stale {
                reason: format!("the index of {topic}/{partition} changed during compaction"),
            });
        }
        // Markers stay where they are (decision 0008): the lake holds records only.
        tx.execute(
            "DELETE FROM chunks WHERE topic_id = $1 AND partition = $2 AND base_offset >= $3 AND base_offset < $4 \
             AND batch_kind <> $5",
            args![&topic_id, partition, start, end, BatchKind::Marker.code()],
        )
        .await?;
        let Some(first) = new.first() else {
            // Nothing but aborted records and markers: no lake object.
            tx.commit().await?;
            return Ok(());
        };
        let lake = &first.segment;
        let segment_id = tx
            .fetch_one(
                "INSERT INTO segments (object_key, size, footer_len, footer_crc, created_at_ms, kind) \
                 VALUES ($1, $2, $3, $4, $5, 'lake') \
                 ON CONFLICT (object_key) DO UPDATE SET size = excluded.size, footer_len = excluded.footer_len, \
                 footer_crc = excluded.footer_crc, unreferenced_at_ms = NULL RETURNING id",
                args![
                    &lake.key,
                    to_i64(lake.size, "size")?,
                    to_i64(lake.footer_len, "footer_len")?,
                    lake.footer_crc.map(i64::from),
                    self.now_ms()
                ],
            )
            .await?
            .int("id")?;
        let mut rows = ChunkRows::default();
        for entry in new {
            rows.push(&topic_id, entry, segment_id)?;
        }
        self.insert_chunks(&mut tx, &rows).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn advance_log_start(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
    ) -> Result<PartitionOffsets> {
        let topic_id = self.topic_id(topic, partition).await?;
        let mut tx = self.begin_write().await?;
        let row = tx
            .fetch_one(
                &format!(
                    "SELECT log_start_offset, next_offset FROM partitions \
                     WHERE topic_id = $1 AND partition = $2{}",
                    self.for_update()
                ),
                args![&topic_id, partition],
            )
            .await?;
        let (log_start, next) = (row.int("log_start_offset")?, row.int("next_offset")?);
        let start = offset.clamp(log_start, next);
        tx.execute(
            "UPDATE partitions SET log_start_offset = $1 WHERE topic_id = $2 AND partition = $3",
            args![start, &topic_id, partition],
        )
        .await?;
        tx.execute(
            "DELETE FROM chunks WHERE topic_id = $1 AND partition = $2 AND base_offset + record_count <= $3",
            args![&topic_id, partition, start],
        )
        .await?;
        // Aborted ranges wholly below the log start concern no record any more.
        tx.execute(
            "DELETE FROM aborted_transactions WHERE topic_id = $1 AND partition = $2 AND last_offset < $3",
            args![&topic_id, partition, start],
        )
        .await?;
        let first_open = tx
            .fetch_one(
                "SELECT MIN(first_offset) AS first_open FROM open_transactions                  WHERE topic_id = $1 AND partition = $2",
                args![&topic_id, partition],
            )
            .await?
            .opt_int("first_open")?;
        tx.commit().await?;
        Ok(PartitionOffsets {
            partition,
            log_start_offset: start,
            high_watermark: next,
            last_stable_offset: first_open.unwrap_or(next),
        })
    }

    async fn unreferenced_segments(&self, grace: Duration, limit: u32) -> Result<Vec<String>> {
        let now = self.now_ms();
        let mut tx = self.begin_write().await?;
        tx.execute(
            "UPDATE segments SET unreferenced_at_ms = $1 WHERE unreferenced_at_ms IS NULL \
             AND NOT EXISTS (SELECT 1 FROM chunks c WHERE c.segment_id = segments.id)",
            args![now],
        )
        .await?;
        tx.commit().await?;
        let rows = self
            .pool
            .fetch_all(
                "SELECT object_key FROM segments WHERE unreferenced_at_ms IS NOT NULL \
                 AND unreferenced_at_ms <= $1 ORDER BY id LIMIT $2",
                args![now - grace.as_millis() as i64, limit],
            )
            .await?;
        rows.iter().map(|r| r.text("object_key")).collect()
    }

    async fn forget_segments(&self, keys: &[String]) -> Result<()> {
        let mut tx = self.begin_write().await?;
        for batch in keys.chunks(KEYS_PER_STATEMENT) {
            let sql = format!(
                "DELETE FROM segments WHERE object_key IN ({}) \
                 AND NOT EXISTS (SELECT 1 FROM chunks c WHERE c.segment_id = segments.id)",
                placeholders(1, batch.len())
            );
            let args: Vec<Arg<'_>> = batch.iter().map(Arg::from).collect();
            tx.execute(&sql, &args).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn known_segments(&self, keys: &[String]) -> Result<Vec<String>> {
        let mut known = Vec::new();
        for batch in keys.chunks(KEYS_PER_STATEMENT) {
            let sql = format!(
                "SELECT object_key FROM segments WHERE object_key IN ({})",
                placeholders(1, batch.len())
            );
            let args: Vec<Arg<'_>> = batch.iter().map(Arg::from).collect();
            for row in self.pool.fetch_all(&sql, &args).await? {
                known.push(row.text("object_key")?);
            }
        }
        Ok(known)
    }
}
