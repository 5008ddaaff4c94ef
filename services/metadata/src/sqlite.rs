//! The embedded metadata store: one SQLite file, in WAL mode, fsync on every commit.

use std::collections::HashMap;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};
use tokio::sync::{Mutex, broadcast, watch};
use uuid::Uuid;

use crate::error::{MetadataError, Result};
use crate::model::{
    ChunkCommit, ChunkEntry, ChunkOutcome, GroupOffset, NodeInfo, PartitionOffsets, ProducerBatch,
    ProducerIdentity, SegmentCommit, Topic, TopicConfig,
};
use crate::names::{validate_group_id, validate_topic_name};
use crate::rows::{
    CHUNK_COLUMNS, RowRead, chunk_from_row, group_offset_from_row, now_ms, to_i64, topic_from_row,
};
use crate::security::{
    AclBinding, AclRow, CredentialRow, ScramCredential, ScramMechanism, acl_from_row,
    credential_from_row, validate_credential,
};
use crate::sequence::{
    PRODUCER_BATCHES_KEPT, RememberedBatch, SequenceCheck, check_swap, judge, last_sequence,
    not_in_segment, same_entries,
};
use crate::store::{
    CatalogStore, CompactionStore, GroupOffsetStore, LogStore, NodeStore, ProducerStore,
    SecurityStore, Watch,
};
use crate::watch::{WatchEvent, Watchers};

/// Most partitions a topic may have.
pub const MAX_PARTITIONS: i32 = 100_000;

/// Versioned schema migrations; `PRAGMA user_version` records how many have run.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE topics (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    partitions INTEGER NOT NULL,
    config TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL
);
CREATE TABLE partitions (
    topic_id TEXT NOT NULL REFERENCES topics(id) ON DELETE CASCADE,
    partition INTEGER NOT NULL,
    next_offset INTEGER NOT NULL DEFAULT 0,
    log_start_offset INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (topic_id, partition)
) WITHOUT ROWID;
CREATE TABLE segments (
    id INTEGER PRIMARY KEY,
    object_key TEXT NOT NULL UNIQUE,
    size INTEGER NOT NULL,
    footer_len INTEGER NOT NULL,
    created_at_ms INTEGER NOT NULL
);
CREATE TABLE chunks (
    topic_id TEXT NOT NULL,
    partition INTEGER NOT NULL,
    base_offset INTEGER NOT NULL,
    record_count INTEGER NOT NULL,
    segment_id INTEGER NOT NULL REFERENCES segments(id),
    row_group INTEGER NOT NULL,
    byte_start INTEGER NOT NULL,
    byte_len INTEGER NOT NULL,
    min_timestamp_ms INTEGER NOT NULL,
    max_timestamp_ms INTEGER NOT NULL,
    PRIMARY KEY (topic_id, partition, base_offset),
    FOREIGN KEY (topic_id, partition) REFERENCES partitions(topic_id, partition) ON DELETE CASCADE
) WITHOUT ROWID;
CREATE INDEX chunks_by_segment ON chunks(segment_id);
CREATE TABLE group_offsets (
    group_id TEXT NOT NULL,
    topic TEXT NOT NULL,
    partition INTEGER NOT NULL,
    committed_offset INTEGER NOT NULL,
    metadata TEXT,
    commit_time_ms INTEGER NOT NULL,
    PRIMARY KEY (group_id, topic, partition)
) WITHOUT ROWID;
"#,
    r#"
CREATE TABLE producers (
    producer_id INTEGER PRIMARY KEY AUTOINCREMENT,
    epoch INTEGER NOT NULL,
    created_at_ms INTEGER NOT NULL
);
CREATE TABLE producer_batches (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    producer_id INTEGER NOT NULL,
    topic_id TEXT NOT NULL,
    partition INTEGER NOT NULL,
    epoch INTEGER NOT NULL,
    first_seq INTEGER NOT NULL,
    last_seq INTEGER NOT NULL,
    base_offset INTEGER NOT NULL,
    FOREIGN KEY (topic_id, partition) REFERENCES partitions(topic_id, partition) ON DELETE CASCADE
);
CREATE INDEX producer_batches_by_partition ON producer_batches(producer_id, topic_id, partition, id);
"#,
    // 2: live nodes (renewed by heartbeat)
    r#"
CREATE TABLE nodes (
    node_id INTEGER PRIMARY KEY,
    info TEXT NOT NULL,
    expires_at_ms INTEGER NOT NULL
);
"#,
    // 3: compaction: lake objects, and when a segment stopped being referenced (GC)
    r#"
ALTER TABLE segments ADD COLUMN kind TEXT NOT NULL DEFAULT 'raw';
ALTER TABLE segments ADD COLUMN unreferenced_at_ms INTEGER;
CREATE INDEX segments_unreferenced ON segments(unreferenced_at_ms);
"#,
    // 4: a checksum of each object's footer (the footer holds the chunks' checksums)
    r#"
ALTER TABLE segments ADD COLUMN footer_crc INTEGER;
"#, // 5: security: users' SCRAM credentials (salted hashes only) and ACL bindings
    r#"
CREATE TABLE scram_credentials (
    user_name TEXT NOT NULL,
    mechanism TEXT NOT NULL,
    iterations INTEGER NOT NULL,
    salt BLOB NOT NULL,
    stored_key BLOB NOT NULL,
    server_key BLOB NOT NULL,
    PRIMARY KEY (user_name, mechanism)
);
CREATE TABLE acls (
    principal TEXT NOT NULL,
    host TEXT NOT NULL,
    resource_type TEXT NOT NULL,
    resource_name TEXT NOT NULL,
    pattern_type TEXT NOT NULL,
    operation TEXT NOT NULL,
    permission TEXT NOT NULL,
    PRIMARY KEY (principal, host, resource_type, resource_name, pattern_type, operation, permission)
);
"#,
    // 6: cluster-wide secrets (the key of SCRAM stand-ins for unknown users)
    r#"
CREATE TABLE cluster_secrets (
    name TEXT PRIMARY KEY,
    secret BLOB NOT NULL
);
"#,
];

/// The embedded [`MetadataStore`] on a SQLite file. Writers are serialised in-process
/// (SQLite has one writer anyway); readers run concurrently thanks to WAL.
#[derive(Debug)]
pub struct SqliteStore {
    pool: SqlitePool,
    write: Mutex<()>,
    watchers: Watchers,
}

impl SqliteStore {
    /// Opens (creating if missing) the store at `path` and runs pending migrations.
    pub async fn open(path: &Path) -> Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| MetadataError::InvalidRequest {
                reason: format!("cannot create {}: {e}", dir.display()),
            })?;
        }
        let options = SqliteConnectOptions::from_str("sqlite://")?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await?;
        let store = Self {
            pool,
            write: Mutex::new(()),
            watchers: Watchers::default(),
        };
        store.migrate().await?;
        Ok(store)
    }

    async fn migrate(&self) -> Result<()> {
        let _guard = self.write.lock().await;
        let mut conn = self.pool.acquire().await?;
        let version: i64 = sqlx::query_scalar("PRAGMA user_version")
            .fetch_one(&mut *conn)
            .await?;
        let known = MIGRATIONS.len() as i64;
        if version > known {
            return Err(MetadataError::Corrupt {
                reason: format!("schema version {version} is newer than this build ({known})"),
            });
        }
        for (index, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            let mut tx = sqlx::Connection::begin(&mut *conn).await?;
            sqlx::raw_sql(sql).execute(&mut *tx).await?;
            sqlx::raw_sql(&format!("PRAGMA user_version = {}", index + 1))
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        }
        Ok(())
    }

    /// Closes the pool (checkpointing the WAL).
    pub async fn close(&self) {
        self.pool.close().await;
    }

    async fn topic_row(&self, name: &str) -> Result<Option<Topic>> {
        let row = sqlx::query(
            "SELECT id, name, partitions, config, created_at_ms FROM topics WHERE name = ?",
        )
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| topic_from_row(&r)).transpose()
    }

    async fn topic_id(&self, topic: &str, partition: i32) -> Result<String> {
        let t = self.topic(topic).await?;
        if partition < 0 || partition >= t.partitions {
            return Err(MetadataError::UnknownPartition {
                topic: topic.to_string(),
                partition,
            });
        }
        Ok(t.id.to_string())
    }
}

/// A segment committed before (a retried commit whose answer was lost): answers each
/// chunk as the first commit did, changing nothing.
async fn replay_commit(
    tx: &mut sqlx::SqliteConnection,
    segment_id: i64,
    segment: &SegmentCommit,
) -> Result<Vec<ChunkOutcome>> {
    let mut outcomes = Vec::with_capacity(segment.chunks.len());
    for chunk in &segment.chunks {
        let topic_id: Option<String> = sqlx::query_scalar("SELECT id FROM topics WHERE name = ?")
            .bind(&chunk.topic)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(topic_id) = topic_id else {
            outcomes.push(ChunkOutcome::Rejected(MetadataError::UnknownTopic {
                topic: chunk.topic.clone(),
            }));
            continue;
        };
        let base: Option<i64> = sqlx::query_scalar(
            "SELECT base_offset FROM chunks WHERE segment_id = ? AND topic_id = ? AND partition = ? AND row_group = ?",
        )
        .bind(segment_id)
        .bind(&topic_id)
        .bind(chunk.partition)
        .bind(i64::from(chunk.row_group))
        .fetch_optional(&mut *tx)
        .await?;
        let outcome = match (base, &chunk.producer) {
            (Some(base_offset), _) => ChunkOutcome::Committed { base_offset },
            (None, Some(producer)) => match check_sequence(tx, &topic_id, chunk, producer).await? {
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
    tx: &mut sqlx::SqliteConnection,
    topic_id: &str,
    chunk: &ChunkCommit,
    producer: &ProducerBatch,
) -> Result<SequenceCheck> {
    let current: Option<i64> =
        sqlx::query_scalar("SELECT epoch FROM producers WHERE producer_id = ?")
            .bind(producer.producer_id)
            .fetch_optional(&mut *tx)
            .await?;
    let rows = sqlx::query(
        "SELECT first_seq, last_seq, base_offset FROM producer_batches \
         WHERE producer_id = ? AND topic_id = ? AND partition = ? AND epoch = ? ORDER BY id",
    )
    .bind(producer.producer_id)
    .bind(topic_id)
    .bind(chunk.partition)
    .bind(i64::from(producer.epoch))
    .fetch_all(&mut *tx)
    .await?;
    let recent = rows
        .iter()
        .map(|r| {
            Ok(RememberedBatch {
                first_seq: r.try_get("first_seq")?,
                last_seq: r.try_get("last_seq")?,
                base_offset: r.try_get("base_offset")?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(judge(chunk, producer, current, &recent))
}

async fn record_batch(
    tx: &mut sqlx::SqliteConnection,
    topic_id: &str,
    chunk: &ChunkCommit,
    producer: &ProducerBatch,
    base_offset: i64,
) -> Result<()> {
    let last_seq = last_sequence(chunk, producer);
    sqlx::query(
        "INSERT INTO producer_batches (producer_id, topic_id, partition, epoch, first_seq, last_seq, base_offset) \
         VALUES (?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(producer.producer_id)
    .bind(topic_id)
    .bind(chunk.partition)
    .bind(i64::from(producer.epoch))
    .bind(producer.base_sequence)
    .bind(last_seq)
    .bind(base_offset)
    .execute(&mut *tx)
    .await?;
    // A batch of a newer epoch makes it the producer's current one (see `judge`).
    sqlx::query("UPDATE producers SET epoch = ?2 WHERE producer_id = ?1 AND epoch < ?2")
        .bind(producer.producer_id)
        .bind(i64::from(producer.epoch))
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "DELETE FROM producer_batches WHERE producer_id = ?1 AND topic_id = ?2 AND partition = ?3 AND id NOT IN \
         (SELECT id FROM producer_batches WHERE producer_id = ?1 AND topic_id = ?2 AND partition = ?3 \
          ORDER BY id DESC LIMIT ?4)",
    )
    .bind(producer.producer_id)
    .bind(topic_id)
    .bind(chunk.partition)
    .bind(PRODUCER_BATCHES_KEPT)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

#[async_trait]
impl CatalogStore for SqliteStore {
    async fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        config: TopicConfig,
    ) -> Result<Topic> {
        validate_topic_name(name)?;
        if !(1..=MAX_PARTITIONS).contains(&partitions) {
            return Err(MetadataError::InvalidPartitionCount {
                partitions,
                max: MAX_PARTITIONS,
            });
        }
        let topic = Topic {
            id: Uuid::now_v7(),
            name: name.to_string(),
            partitions,
            config,
            created_at_ms: now_ms(),
        };
        let config_json =
            serde_json::to_string(&topic.config).map_err(|e| MetadataError::InvalidRequest {
                reason: e.to_string(),
            })?;
        let _guard = self.write.lock().await;
        let mut tx = self.pool.begin().await?;
        let exists = sqlx::query("SELECT 1 FROM topics WHERE name = ?")
            .bind(name)
            .fetch_optional(&mut *tx)
            .await?;
        if exists.is_some() {
            return Err(MetadataError::TopicExists {
                topic: name.to_string(),
            });
        }
        let id = topic.id.to_string();
        sqlx::query("INSERT INTO topics (id, name, partitions, config, created_at_ms) VALUES (?, ?, ?, ?, ?)")
            .bind(&id)
            .bind(name)
            .bind(partitions)
            .bind(config_json)
            .bind(topic.created_at_ms)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "WITH RECURSIVE p(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM p WHERE n + 1 < ?) \
             INSERT INTO partitions (topic_id, partition) SELECT ?, n FROM p",
        )
        .bind(partitions)
        .bind(&id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(topic)
    }

    async fn delete_topic(&self, name: &str) -> Result<()> {
        let _guard = self.write.lock().await;
        let done = sqlx::query("DELETE FROM topics WHERE name = ?")
            .bind(name)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(MetadataError::UnknownTopic {
                topic: name.to_string(),
            });
        }
        self.watchers.remove_topic(name);
        Ok(())
    }

    async fn set_topic_config(&self, name: &str, config: TopicConfig) -> Result<Topic> {
        let json = serde_json::to_string(&config).map_err(|e| MetadataError::InvalidRequest {
            reason: e.to_string(),
        })?;
        let _guard = self.write.lock().await;
        let done = sqlx::query("UPDATE topics SET config = ? WHERE name = ?")
            .bind(json)
            .bind(name)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(MetadataError::UnknownTopic {
                topic: name.to_string(),
            });
        }
        self.topic(name).await
    }

    async fn add_partitions(&self, name: &str, partitions: i32) -> Result<Topic> {
        let _guard = self.write.lock().await;
        let topic = self.topic(name).await?;
        if partitions <= topic.partitions || partitions > MAX_PARTITIONS {
            return Err(MetadataError::InvalidPartitionCount {
                partitions,
                max: MAX_PARTITIONS,
            });
        }
        let id = topic.id.to_string();
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE topics SET partitions = ? WHERE id = ?")
            .bind(partitions)
            .bind(&id)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "WITH RECURSIVE p(n) AS (SELECT ? UNION ALL SELECT n + 1 FROM p WHERE n + 1 < ?) \
             INSERT INTO partitions (topic_id, partition) SELECT ?, n FROM p",
        )
        .bind(topic.partitions)
        .bind(partitions)
        .bind(&id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Topic {
            partitions,
            ..topic
        })
    }

    async fn topic(&self, name: &str) -> Result<Topic> {
        self.topic_row(name)
            .await?
            .ok_or_else(|| MetadataError::UnknownTopic {
                topic: name.to_string(),
            })
    }

    async fn topics(&self) -> Result<Vec<Topic>> {
        let rows = sqlx::query(
            "SELECT id, name, partitions, config, created_at_ms FROM topics ORDER BY name",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(topic_from_row).collect()
    }
}

#[async_trait]
impl LogStore for SqliteStore {
    async fn partition_offsets(&self, topic: &str) -> Result<Vec<PartitionOffsets>> {
        let t = self.topic(topic).await?;
        let rows = sqlx::query(
            "SELECT partition, log_start_offset, next_offset FROM partitions WHERE topic_id = ? ORDER BY partition",
        )
        .bind(t.id.to_string())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(PartitionOffsets {
                    partition: r.try_get("partition")?,
                    log_start_offset: r.try_get("log_start_offset")?,
                    high_watermark: r.try_get("next_offset")?,
                })
            })
            .collect()
    }

    async fn partition_offset(&self, topic: &str, partition: i32) -> Result<PartitionOffsets> {
        let row = sqlx::query(
            "SELECT p.log_start_offset, p.next_offset FROM partitions p JOIN topics t ON t.id = p.topic_id \
             WHERE t.name = ? AND p.partition = ?",
        )
        .bind(topic)
        .bind(partition)
        .fetch_optional(&self.pool)
        .await?;
        match row {
            Some(r) => Ok(PartitionOffsets {
                partition,
                log_start_offset: r.try_get("log_start_offset")?,
                high_watermark: r.try_get("next_offset")?,
            }),
            // Tell a missing topic from a missing partition.
            None => {
                self.topic(topic).await?;
                Err(MetadataError::UnknownPartition {
                    topic: topic.to_string(),
                    partition,
                })
            }
        }
    }

    async fn commit_segment(&self, segment: &SegmentCommit) -> Result<Vec<ChunkOutcome>> {
        if segment.chunks.is_empty() {
            return Err(MetadataError::InvalidRequest {
                reason: "a segment commit needs at least one chunk".into(),
            });
        }
        let _guard = self.write.lock().await;
        let mut tx = self.pool.begin().await?;
        // Write first, so the transaction takes the write lock at once (a read first could
        // not upgrade while another connection writes).
        let inserted: Option<i64> = sqlx::query_scalar(
            "INSERT INTO segments (object_key, size, footer_len, footer_crc, created_at_ms) VALUES (?, ?, ?, ?, ?) \
             ON CONFLICT (object_key) DO NOTHING RETURNING id",
        )
        .bind(&segment.key)
        .bind(to_i64(segment.size, "size")?)
        .bind(to_i64(segment.footer_len, "footer_len")?)
        .bind(segment.footer_crc.map(i64::from))
        .bind(now_ms())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(segment_id) = inserted else {
            let existing: i64 = sqlx::query_scalar("SELECT id FROM segments WHERE object_key = ?")
                .bind(&segment.key)
                .fetch_one(&mut *tx)
                .await?;
            return replay_commit(&mut tx, existing, segment).await;
        };

        let mut topic_ids: HashMap<&str, String> = HashMap::new();
        let mut outcomes = Vec::with_capacity(segment.chunks.len());
        let mut high_watermarks: HashMap<(&str, i32), i64> = HashMap::new();
        for chunk in &segment.chunks {
            if chunk.record_count == 0 {
                return Err(MetadataError::InvalidRequest {
                    reason: format!("empty chunk for {}/{}", chunk.topic, chunk.partition),
                });
            }
            let topic_id = match topic_ids.get(chunk.topic.as_str()) {
                Some(id) => id.clone(),
                None => {
                    let id: Option<String> =
                        sqlx::query_scalar("SELECT id FROM topics WHERE name = ?")
                            .bind(&chunk.topic)
                            .fetch_optional(&mut *tx)
                            .await?;
                    let id = id.ok_or_else(|| MetadataError::UnknownTopic {
                        topic: chunk.topic.clone(),
                    })?;
                    topic_ids.insert(&chunk.topic, id.clone());
                    id
                }
            };
            if let Some(producer) = &chunk.producer {
                let exists =
                    sqlx::query("SELECT 1 FROM partitions WHERE topic_id = ? AND partition = ?")
                        .bind(&topic_id)
                        .bind(chunk.partition)
                        .fetch_optional(&mut *tx)
                        .await?;
                if exists.is_none() {
                    return Err(MetadataError::UnknownPartition {
                        topic: chunk.topic.clone(),
                        partition: chunk.partition,
                    });
                }
                match check_sequence(&mut tx, &topic_id, chunk, producer).await? {
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
            let count = i64::from(chunk.record_count);
            let next: Option<i64> = sqlx::query_scalar(
                "UPDATE partitions SET next_offset = next_offset + ? \
                 WHERE topic_id = ? AND partition = ? RETURNING next_offset",
            )
            .bind(count)
            .bind(&topic_id)
            .bind(chunk.partition)
            .fetch_optional(&mut *tx)
            .await?;
            let next = next.ok_or_else(|| MetadataError::UnknownPartition {
                topic: chunk.topic.clone(),
                partition: chunk.partition,
            })?;
            let base = next - count;
            sqlx::query(
                "INSERT INTO chunks (topic_id, partition, base_offset, record_count, segment_id, row_group, \
                 byte_start, byte_len, min_timestamp_ms, max_timestamp_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(&topic_id)
            .bind(chunk.partition)
            .bind(base)
            .bind(count)
            .bind(segment_id)
            .bind(i64::from(chunk.row_group))
            .bind(to_i64(chunk.byte_start, "byte_start")?)
            .bind(to_i64(chunk.byte_len, "byte_len")?)
            .bind(chunk.min_timestamp_ms)
            .bind(chunk.max_timestamp_ms)
            .execute(&mut *tx)
            .await?;
            if let Some(producer) = &chunk.producer {
                record_batch(&mut tx, &topic_id, chunk, producer, base).await?;
            }
            outcomes.push(ChunkOutcome::Committed { base_offset: base });
            high_watermarks.insert((chunk.topic.as_str(), chunk.partition), next);
        }
        tx.commit().await?;
        for ((topic, partition), hwm) in high_watermarks {
            self.watchers.publish(topic, partition, hwm);
        }
        Ok(outcomes)
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
             WHERE c.topic_id = ?1 AND c.partition = ?2 AND c.base_offset >= COALESCE( \
               (SELECT MAX(base_offset) FROM chunks WHERE topic_id = ?1 AND partition = ?2 AND base_offset <= ?3), 0) \
             AND c.base_offset + c.record_count > ?3 \
             ORDER BY c.base_offset LIMIT ?4"
        );
        let rows = sqlx::query(&sql)
            .bind(&topic_id)
            .bind(partition)
            .bind(offset)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
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
             WHERE c.topic_id = ? AND c.partition = ? AND c.max_timestamp_ms >= ? \
             AND c.base_offset + c.record_count > p.log_start_offset \
             ORDER BY c.base_offset LIMIT 1"
        );
        let row = sqlx::query(&sql)
            .bind(&topic_id)
            .bind(partition)
            .bind(timestamp_ms)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(chunk_from_row).transpose()
    }
}

#[async_trait]
impl CompactionStore for SqliteStore {
    async fn raw_chunks(
        &self,
        topic: &str,
        partition: i32,
        before_ms: i64,
        limit: u32,
    ) -> Result<Vec<ChunkEntry>> {
        let topic_id = self.topic_id(topic, partition).await?;
        let sql = format!(
            "SELECT {CHUNK_COLUMNS}, s.created_at_ms AS segment_created_ms FROM chunks c \
             JOIN segments s ON s.id = c.segment_id \
             WHERE c.topic_id = ?1 AND c.partition = ?2 AND s.kind = 'raw' \
             ORDER BY c.base_offset LIMIT ?3"
        );
        let rows = sqlx::query(&sql)
            .bind(&topic_id)
            .bind(partition)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
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
        let _guard = self.write.lock().await;
        let mut tx = self.pool.begin().await?;
        let current: Vec<(i64, i64, String)> = sqlx::query_as(
            "SELECT c.base_offset, c.record_count, s.object_key FROM chunks c \
             JOIN segments s ON s.id = c.segment_id \
             WHERE c.topic_id = ? AND c.partition = ? AND c.base_offset >= ? AND c.base_offset < ? \
             ORDER BY c.base_offset",
        )
        .bind(&topic_id)
        .bind(partition)
        .bind(start)
        .bind(end)
        .fetch_all(&mut *tx)
        .await?;
        if !same_entries(&current, replaced) {
            return Err(MetadataError::Stale {
                reason: format!("the index of {topic}/{partition} changed during compaction"),
            });
        }
        sqlx::query(
            "DELETE FROM chunks WHERE topic_id = ? AND partition = ? AND base_offset >= ? AND base_offset < ?",
        )
        .bind(&topic_id)
        .bind(partition)
        .bind(start)
        .bind(end)
        .execute(&mut *tx)
        .await?;
        let lake = &new[0].segment;
        sqlx::query(
            "INSERT INTO segments (object_key, size, footer_len, footer_crc, created_at_ms, kind) VALUES (?, ?, ?, ?, ?, 'lake') \
             ON CONFLICT (object_key) DO UPDATE SET size = excluded.size, footer_len = excluded.footer_len, \
             footer_crc = excluded.footer_crc, unreferenced_at_ms = NULL",
        )
        .bind(&lake.key)
        .bind(to_i64(lake.size, "size")?)
        .bind(to_i64(lake.footer_len, "footer_len")?)
        .bind(lake.footer_crc.map(i64::from))
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        let segment_id: i64 = sqlx::query_scalar("SELECT id FROM segments WHERE object_key = ?")
            .bind(&lake.key)
            .fetch_one(&mut *tx)
            .await?;
        for entry in new {
            sqlx::query(
                "INSERT INTO chunks (topic_id, partition, base_offset, record_count, segment_id, row_group, \
                 byte_start, byte_len, min_timestamp_ms, max_timestamp_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(&topic_id)
            .bind(partition)
            .bind(entry.base_offset)
            .bind(i64::from(entry.record_count))
            .bind(segment_id)
            .bind(i64::from(entry.row_group))
            .bind(to_i64(entry.byte_start, "byte_start")?)
            .bind(to_i64(entry.byte_len, "byte_len")?)
            .bind(entry.min_timestamp_ms)
            .bind(entry.max_timestamp_ms)
            .execute(&mut *tx)
            .await?;
        }
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
        let _guard = self.write.lock().await;
        let mut tx = self.pool.begin().await?;
        let (log_start, next): (i64, i64) = sqlx::query_as(
            "SELECT log_start_offset, next_offset FROM partitions WHERE topic_id = ? AND partition = ?",
        )
        .bind(&topic_id)
        .bind(partition)
        .fetch_one(&mut *tx)
        .await?;
        let start = offset.clamp(log_start, next);
        sqlx::query(
            "UPDATE partitions SET log_start_offset = ? WHERE topic_id = ? AND partition = ?",
        )
        .bind(start)
        .bind(&topic_id)
        .bind(partition)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "DELETE FROM chunks WHERE topic_id = ? AND partition = ? AND base_offset + record_count <= ?",
        )
        .bind(&topic_id)
        .bind(partition)
        .bind(start)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(PartitionOffsets {
            partition,
            log_start_offset: start,
            high_watermark: next,
        })
    }

    async fn unreferenced_segments(&self, grace: Duration, limit: u32) -> Result<Vec<String>> {
        let now = now_ms();
        {
            let _guard = self.write.lock().await;
            sqlx::query(
                "UPDATE segments SET unreferenced_at_ms = ? WHERE unreferenced_at_ms IS NULL \
                 AND NOT EXISTS (SELECT 1 FROM chunks c WHERE c.segment_id = segments.id)",
            )
            .bind(now)
            .execute(&self.pool)
            .await?;
        }
        Ok(sqlx::query_scalar(
            "SELECT object_key FROM segments WHERE unreferenced_at_ms IS NOT NULL AND unreferenced_at_ms <= ? \
             ORDER BY id LIMIT ?",
        )
        .bind(now - grace.as_millis() as i64)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?)
    }

    async fn forget_segments(&self, keys: &[String]) -> Result<()> {
        let _guard = self.write.lock().await;
        let mut tx = self.pool.begin().await?;
        for key in keys {
            sqlx::query(
                "DELETE FROM segments WHERE object_key = ? \
                 AND NOT EXISTS (SELECT 1 FROM chunks c WHERE c.segment_id = segments.id)",
            )
            .bind(key)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn known_segments(&self, keys: &[String]) -> Result<Vec<String>> {
        let mut known = Vec::new();
        for batch in keys.chunks(500) {
            let marks = vec!["?"; batch.len()].join(", ");
            let sql = format!("SELECT object_key FROM segments WHERE object_key IN ({marks})");
            let mut query = sqlx::query_scalar::<_, String>(&sql);
            for key in batch {
                query = query.bind(key);
            }
            known.extend(query.fetch_all(&self.pool).await?);
        }
        Ok(known)
    }
}

#[async_trait]
impl GroupOffsetStore for SqliteStore {
    async fn commit_group_offsets(&self, group: &str, offsets: &[GroupOffset]) -> Result<()> {
        validate_group_id(group)?;
        if let Some(bad) = offsets.iter().find(|o| o.offset < 0) {
            return Err(MetadataError::InvalidRequest {
                reason: format!(
                    "negative offset {} for {}/{}",
                    bad.offset, bad.topic, bad.partition
                ),
            });
        }
        let _guard = self.write.lock().await;
        let mut tx = self.pool.begin().await?;
        for o in offsets {
            sqlx::query(
                "INSERT INTO group_offsets (group_id, topic, partition, committed_offset, metadata, commit_time_ms) \
                 VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (group_id, topic, partition) DO UPDATE SET \
                 committed_offset = excluded.committed_offset, metadata = excluded.metadata, \
                 commit_time_ms = excluded.commit_time_ms",
            )
            .bind(group)
            .bind(&o.topic)
            .bind(o.partition)
            .bind(o.offset)
            .bind(&o.metadata)
            .bind(o.commit_time_ms)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn group_offsets(&self, group: &str) -> Result<Vec<GroupOffset>> {
        let rows = sqlx::query(
            "SELECT topic, partition, committed_offset, metadata, commit_time_ms FROM group_offsets \
             WHERE group_id = ? ORDER BY topic, partition",
        )
        .bind(group)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(group_offset_from_row).collect()
    }

    async fn delete_group_offsets(
        &self,
        group: &str,
        partitions: Option<&[(String, i32)]>,
    ) -> Result<()> {
        let _guard = self.write.lock().await;
        let mut tx = self.pool.begin().await?;
        match partitions {
            None => {
                sqlx::query("DELETE FROM group_offsets WHERE group_id = ?")
                    .bind(group)
                    .execute(&mut *tx)
                    .await?;
            }
            Some(partitions) => {
                for (topic, partition) in partitions {
                    sqlx::query("DELETE FROM group_offsets WHERE group_id = ? AND topic = ? AND partition = ?")
                        .bind(group)
                        .bind(topic)
                        .bind(partition)
                        .execute(&mut *tx)
                        .await?;
                }
            }
        }
        tx.commit().await?;
        Ok(())
    }

    async fn groups(&self) -> Result<Vec<String>> {
        Ok(
            sqlx::query_scalar("SELECT DISTINCT group_id FROM group_offsets ORDER BY group_id")
                .fetch_all(&self.pool)
                .await?,
        )
    }
}

#[async_trait]
impl ProducerStore for SqliteStore {
    async fn init_producer_id(&self) -> Result<ProducerIdentity> {
        let _guard = self.write.lock().await;
        let producer_id: i64 = sqlx::query_scalar(
            "INSERT INTO producers (epoch, created_at_ms) VALUES (0, ?) RETURNING producer_id",
        )
        .bind(now_ms())
        .fetch_one(&self.pool)
        .await?;
        Ok(ProducerIdentity {
            producer_id,
            epoch: 0,
        })
    }
}

#[async_trait]
impl NodeStore for SqliteStore {
    async fn heartbeat_node(&self, node: &NodeInfo, ttl: Duration) -> Result<()> {
        let info = serde_json::to_string(node).map_err(|e| MetadataError::InvalidRequest {
            reason: format!("node info: {e}"),
        })?;
        let expires = now_ms() + ttl.as_millis() as i64;
        let _guard = self.write.lock().await;
        sqlx::query(
            "INSERT INTO nodes (node_id, info, expires_at_ms) VALUES (?, ?, ?) \
             ON CONFLICT (node_id) DO UPDATE SET info = excluded.info, expires_at_ms = excluded.expires_at_ms",
        )
        .bind(i64::from(node.node_id))
        .bind(info)
        .bind(expires)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn remove_node(&self, node_id: i32) -> Result<()> {
        let _guard = self.write.lock().await;
        sqlx::query("DELETE FROM nodes WHERE node_id = ?")
            .bind(i64::from(node_id))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn live_nodes(&self) -> Result<Vec<NodeInfo>> {
        let infos: Vec<String> =
            sqlx::query_scalar("SELECT info FROM nodes WHERE expires_at_ms > ? ORDER BY node_id")
                .bind(now_ms())
                .fetch_all(&self.pool)
                .await?;
        infos
            .iter()
            .map(|info| {
                serde_json::from_str(info).map_err(|e| MetadataError::Corrupt {
                    reason: format!("node info: {e}"),
                })
            })
            .collect()
    }
}

#[async_trait]
impl SecurityStore for SqliteStore {
    async fn set_scram_credential(&self, credential: &ScramCredential) -> Result<()> {
        validate_credential(credential)?;
        let _guard = self.write.lock().await;
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO scram_credentials \
             (user_name, mechanism, iterations, salt, stored_key, server_key) \
             VALUES (?, ?, ?, ?, ?, ?) \
             ON CONFLICT (user_name, mechanism) DO UPDATE SET iterations = excluded.iterations, \
             salt = excluded.salt, stored_key = excluded.stored_key, \
             server_key = excluded.server_key",
        )
        .bind(&credential.user)
        .bind(credential.mechanism.name())
        .bind(i64::from(credential.iterations))
        .bind(&credential.salt)
        .bind(&credential.stored_key)
        .bind(&credential.server_key)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn delete_scram_credential(&self, user: &str, mechanism: ScramMechanism) -> Result<bool> {
        let _guard = self.write.lock().await;
        let mut tx = self.pool.begin().await?;
        let done =
            sqlx::query("DELETE FROM scram_credentials WHERE user_name = ? AND mechanism = ?")
                .bind(user)
                .bind(mechanism.name())
                .execute(&mut *tx)
                .await?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }

    async fn scram_credential(
        &self,
        user: &str,
        mechanism: ScramMechanism,
    ) -> Result<Option<ScramCredential>> {
        let row: Option<CredentialRow> = sqlx::query_as(
            "SELECT user_name, mechanism, iterations, salt, stored_key, server_key \
             FROM scram_credentials WHERE user_name = ? AND mechanism = ?",
        )
        .bind(user)
        .bind(mechanism.name())
        .fetch_optional(&self.pool)
        .await?;
        row.map(credential_from_row).transpose()
    }

    async fn scram_credentials(&self) -> Result<Vec<ScramCredential>> {
        let rows: Vec<CredentialRow> = sqlx::query_as(
            "SELECT user_name, mechanism, iterations, salt, stored_key, server_key \
             FROM scram_credentials ORDER BY user_name, mechanism",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(credential_from_row).collect()
    }

    async fn create_acls(&self, bindings: &[AclBinding]) -> Result<()> {
        for b in bindings {
            b.validate()?;
        }
        let _guard = self.write.lock().await;
        let mut tx = self.pool.begin().await?;
        for b in bindings {
            bind_acl(b, sqlx::query(
                "INSERT INTO acls (principal, host, resource_type, resource_name, pattern_type, \
                 operation, permission) VALUES (?, ?, ?, ?, ?, ?, ?) \
                 ON CONFLICT DO NOTHING",
            ))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn delete_acls(&self, bindings: &[AclBinding]) -> Result<u64> {
        let _guard = self.write.lock().await;
        let mut tx = self.pool.begin().await?;
        let mut removed = 0;
        for b in bindings {
            removed += bind_acl(
                b,
                sqlx::query(
                    "DELETE FROM acls WHERE principal = ? AND host = ? AND resource_type = ? \
                 AND resource_name = ? AND pattern_type = ? AND operation = ? \
                 AND permission = ?",
                ),
            )
            .execute(&mut *tx)
            .await?
            .rows_affected();
        }
        tx.commit().await?;
        Ok(removed)
    }

    async fn acls(&self) -> Result<Vec<AclBinding>> {
        let rows: Vec<AclRow> = sqlx::query_as(
            "SELECT principal, host, resource_type, resource_name, pattern_type, operation, \
             permission FROM acls ORDER BY resource_type, resource_name, principal, operation",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(acl_from_row).collect()
    }

    async fn cluster_secret(&self, name: &str, proposed: &[u8]) -> Result<Vec<u8>> {
        if proposed.is_empty() {
            return Err(MetadataError::InvalidRequest {
                reason: "a cluster secret is not empty".into(),
            });
        }
        let _guard = self.write.lock().await;
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO cluster_secrets (name, secret) VALUES (?, ?) ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(proposed)
        .execute(&mut *tx)
        .await?;
        let secret: Vec<u8> =
            sqlx::query_scalar("SELECT secret FROM cluster_secrets WHERE name = ?")
                .bind(name)
                .fetch_one(&mut *tx)
                .await?;
        tx.commit().await?;
        Ok(secret)
    }
}

impl Watch for SqliteStore {
    fn watch_feed(&self) -> broadcast::Receiver<WatchEvent> {
        self.watchers.feed()
    }

    fn watch(&self, topic: &str, partition: i32) -> watch::Receiver<i64> {
        self.watchers.subscribe(topic, partition)
    }
}

/// Binds an ACL binding's seven columns, in table order.
fn bind_acl<'q>(
    b: &'q AclBinding,
    query: sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>>,
) -> sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>> {
    query
        .bind(&b.principal)
        .bind(&b.host)
        .bind(b.resource_type.name())
        .bind(&b.resource_name)
        .bind(b.pattern_type.name())
        .bind(b.operation.name())
        .bind(b.permission.name())
}
