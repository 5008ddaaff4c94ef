//! Reading rows into the model, shared by the SQLite and PostgreSQL stores. Both schemas
//! store integers as 64-bit and ids as text, so one reader serves both.

use sqlx::Row;
use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;
use uuid::Uuid;

use crate::error::{MetadataError, Result};
use crate::model::{BatchKind, ChunkEntry, GroupOffset, ProducerBatch, SegmentRef, Topic};

pub(crate) trait RowRead {
    fn int(&self, column: &str) -> Result<i64>;
    fn text(&self, column: &str) -> Result<String>;
    fn opt_text(&self, column: &str) -> Result<Option<String>>;
    fn opt_int(&self, column: &str) -> Result<Option<i64>>;
    fn bytes(&self, column: &str) -> Result<Vec<u8>>;
}

macro_rules! row_read {
    ($row:ty) => {
        impl RowRead for $row {
            fn int(&self, column: &str) -> Result<i64> {
                Ok(self.try_get::<i64, _>(column)?)
            }
            fn text(&self, column: &str) -> Result<String> {
                Ok(self.try_get::<String, _>(column)?)
            }
            fn opt_text(&self, column: &str) -> Result<Option<String>> {
                Ok(self.try_get::<Option<String>, _>(column)?)
            }
            fn opt_int(&self, column: &str) -> Result<Option<i64>> {
                Ok(self.try_get::<Option<i64>, _>(column)?)
            }
            fn bytes(&self, column: &str) -> Result<Vec<u8>> {
                Ok(self.try_get::<Vec<u8>, _>(column)?)
            }
        }
    };
}

row_read!(SqliteRow);
row_read!(PgRow);

fn corrupt(reason: String) -> MetadataError {
    MetadataError::Corrupt { reason }
}

pub(crate) fn i32_of(row: &impl RowRead, column: &str) -> Result<i32> {
    i32::try_from(row.int(column)?).map_err(|_| corrupt(format!("{column} out of range")))
}

fn u64_of(row: &impl RowRead, column: &str) -> Result<u64> {
    u64::try_from(row.int(column)?).map_err(|_| corrupt(format!("negative {column}")))
}

fn u32_of(row: &impl RowRead, column: &str) -> Result<u32> {
    u32::try_from(row.int(column)?).map_err(|_| corrupt(format!("{column} out of range")))
}

/// Columns `topic_from_row` reads.
pub(crate) const TOPIC_COLUMNS: &str = "id, name, partitions, config, created_at_ms";

pub(crate) fn topic_from_row(row: &impl RowRead) -> Result<Topic> {
    let id = row.text("id")?;
    let config = row.text("config")?;
    Ok(Topic {
        id: Uuid::parse_str(&id).map_err(|e| corrupt(format!("topic id '{id}': {e}")))?,
        name: row.text("name")?,
        partitions: i32_of(row, "partitions")?,
        config: serde_json::from_str(&config).map_err(|e| corrupt(format!("topic config: {e}")))?,
        created_at_ms: row.int("created_at_ms")?,
    })
}

/// Columns `chunk_from_row` reads (chunks `c` joined with segments `s`).
pub(crate) const CHUNK_COLUMNS: &str = "c.partition, c.base_offset, c.record_count, c.row_group, c.byte_start, \
     c.byte_len, c.min_timestamp_ms, c.max_timestamp_ms, s.object_key, s.size, s.footer_len, s.footer_crc, \
     c.producer_id, c.producer_epoch, c.base_sequence, c.batch_kind";

pub(crate) fn chunk_from_row(row: &impl RowRead) -> Result<ChunkEntry> {
    Ok(ChunkEntry {
        partition: i32_of(row, "partition")?,
        base_offset: row.int("base_offset")?,
        record_count: u32_of(row, "record_count")?,
        segment: SegmentRef {
            key: row.text("object_key")?,
            size: u64_of(row, "size")?,
            footer_len: u64_of(row, "footer_len")?,
            footer_crc: row
                .opt_int("footer_crc")?
                .map(|crc| u32::try_from(crc).map_err(|_| corrupt(format!("footer_crc {crc}"))))
                .transpose()?,
        },
        row_group: u32_of(row, "row_group")?,
        byte_start: u64_of(row, "byte_start")?,
        byte_len: u64_of(row, "byte_len")?,
        min_timestamp_ms: row.int("min_timestamp_ms")?,
        max_timestamp_ms: row.int("max_timestamp_ms")?,
        producer: match (
            row.opt_int("producer_id")?,
            row.opt_int("producer_epoch")?,
            row.opt_int("base_sequence")?,
        ) {
            (Some(producer_id), Some(epoch), Some(base_sequence)) => Some(ProducerBatch {
                producer_id,
                epoch: i16::try_from(epoch).map_err(|_| corrupt(format!("epoch {epoch}")))?,
                base_sequence: i32::try_from(base_sequence)
                    .map_err(|_| corrupt(format!("base sequence {base_sequence}")))?,
            }),
            _ => None,
        },
        kind: {
            let code = row.int("batch_kind")?;
            BatchKind::from_code(code).ok_or_else(|| corrupt(format!("batch kind {code}")))?
        },
    })
}

pub(crate) fn group_offset_from_row(row: &impl RowRead) -> Result<GroupOffset> {
    Ok(GroupOffset {
        topic: row.text("topic")?,
        partition: i32_of(row, "partition")?,
        offset: row.int("committed_offset")?,
        metadata: row.opt_text("metadata")?,
        commit_time_ms: row.int("commit_time_ms")?,
    })
}

pub(crate) fn to_i64(v: u64, what: &str) -> Result<i64> {
    i64::try_from(v).map_err(|_| MetadataError::InvalidRequest {
        reason: format!("{what} {v} out of range"),
    })
}
