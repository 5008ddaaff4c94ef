//! The PostgreSQL metadata store, for several nodes sharing one metadata database (or a
//! metadata service whose state lives there). Same trait and behaviour as the SQLite
//! store, proven by the same conformance suite. Offsets stay dense under concurrent
//! commits from many nodes: a commit locks its partitions' rows (in a fixed order, so two
//! commits cannot deadlock) before it assigns offsets.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgConnection, PgPool, PgPoolOptions};
use tokio::sync::{broadcast, watch};
use uuid::Uuid;

use crate::error::{MetadataError, Result};
use crate::model::{
    ChunkCommit, ChunkEntry, ChunkOutcome, GroupOffset, NodeInfo, PartitionOffsets, ProducerBatch,
    ProducerIdentity, SegmentCommit, Topic, TopicConfig,
};
use crate::names::{validate_group_id, validate_topic_name};
use crate::rows::{
    CHUNK_COLUMNS, RowRead, TOPIC_COLUMNS, chunk_from_row, group_offset_from_row, i32_of, now_ms,
    to_i64, topic_from_row,
};
use crate::security::{
    AclBinding, AclRow, CredentialRow, ScramCredential, ScramMechanism, acl_from_row,
    credential_from_row, validate_credential,
};
use crate::sequence::{
    PRODUCER_BATCHES_KEPT, RememberedBatch, SequenceCheck, check_swap, judge, last_sequence,
    not_in_segment, same_entries,
};
use crate::sqlite::MAX_PARTITIONS;
use crate::store::{
    CatalogStore, CompactionStore, GroupOffsetStore, LogStore, NodeStore, ProducerStore,
    SecurityStore, Watch,
};
use crate::watch::{WatchEvent, Watchers};

/// Schema migrations, applied in order; `silt_schema_version` records how many ran.
/// Integers are BIGINT and ids TEXT, as in the SQLite schema.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE topics (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    partitions BIGINT NOT NULL,
    config TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL
);
CREATE TABLE partitions (
    topic_id TEXT NOT NULL REFERENCES topics(id) ON DELETE CASCADE,
    partition BIGINT NOT NULL,
    next_offset BIGINT NOT NULL DEFAULT 0,
    log_start_offset BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (topic_id, partition)
);
CREATE TABLE segments (
    id BIGSERIAL PRIMARY KEY,
    object_key TEXT NOT NULL UNIQUE,
    size BIGINT NOT NULL,
    footer_len BIGINT NOT NULL,
    created_at_ms BIGINT NOT NULL
);
CREATE TABLE chunks (
    topic_id TEXT NOT NULL,
    partition BIGINT NOT NULL,
    base_offset BIGINT NOT NULL,
    record_count BIGINT NOT NULL,
    segment_id BIGINT NOT NULL REFERENCES segments(id),
    row_group BIGINT NOT NULL,
    byte_start BIGINT NOT NULL,
    byte_len BIGINT NOT NULL,
    min_timestamp_ms BIGINT NOT NULL,
    max_timestamp_ms BIGINT NOT NULL,
    PRIMARY KEY (topic_id, partition, base_offset),
    FOREIGN KEY (topic_id, partition) REFERENCES partitions(topic_id, partition) ON DELETE CASCADE
);
CREATE INDEX chunks_by_segment ON chunks(segment_id);
CREATE TABLE group_offsets (
    group_id TEXT NOT NULL,
    topic TEXT NOT NULL,
    partition BIGINT NOT NULL,
    committed_offset BIGINT NOT NULL,
    metadata TEXT,
    commit_time_ms BIGINT NOT NULL,
    PRIMARY KEY (group_id, topic, partition)
);
CREATE TABLE producers (
    producer_id BIGSERIAL PRIMARY KEY,
    epoch BIGINT NOT NULL,
    created_at_ms BIGINT NOT NULL
);
CREATE TABLE producer_batches (
    id BIGSERIAL PRIMARY KEY,
    producer_id BIGINT NOT NULL,
    topic_id TEXT NOT NULL,
    partition BIGINT NOT NULL,
    epoch BIGINT NOT NULL,
    first_seq BIGINT NOT NULL,
    last_seq BIGINT NOT NULL,
    base_offset BIGINT NOT NULL,
    FOREIGN KEY (topic_id, partition) REFERENCES partitions(topic_id, partition) ON DELETE CASCADE
);
CREATE INDEX producer_batches_by_partition ON producer_batches(producer_id, topic_id, partition, id);
"#,
    // 2: live nodes (renewed by heartbeat) and the metadata-service lease epoch (fencing)
    r#"
CREATE TABLE nodes (
    node_id BIGINT PRIMARY KEY,
    info TEXT NOT NULL,
    expires_at_ms BIGINT NOT NULL
);
CREATE TABLE silt_lease (
    id INT PRIMARY KEY,
    epoch BIGINT NOT NULL,
    holder TEXT NOT NULL,
    acquired_at_ms BIGINT NOT NULL
);
INSERT INTO silt_lease (id, epoch, holder, acquired_at_ms) VALUES (1, 0, '', 0);
"#,
    // 3: compaction: lake objects, and when a segment stopped being referenced (GC)
    r#"
ALTER TABLE segments ADD COLUMN kind TEXT NOT NULL DEFAULT 'raw';
ALTER TABLE segments ADD COLUMN unreferenced_at_ms BIGINT;
CREATE INDEX segments_unreferenced ON segments(unreferenced_at_ms);
"#,
    // 4: a checksum of each object's footer (the footer holds the chunks' checksums)
    r#"
ALTER TABLE segments ADD COLUMN footer_crc BIGINT;
"#, // 5: security: users' SCRAM credentials (salted hashes only) and ACL bindings
    r#"
CREATE TABLE scram_credentials (
    user_name TEXT NOT NULL,
    mechanism TEXT NOT NULL,
    iterations BIGINT NOT NULL,
    salt BYTEA NOT NULL,
    stored_key BYTEA NOT NULL,
    server_key BYTEA NOT NULL,
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
    secret BYTEA NOT NULL
);
"#,
];

/// Any constant: the advisory lock that serialises migrations of concurrent nodes.
const MIGRATION_LOCK: i64 = 0x5117_0001;

/// Any constant: the advisory lock whose holder is the active metadata process.
const LEASE_LOCK: i64 = 0x5117_0002;

/// No fencing: the store is used directly, not by a lease-holding metadata service.
const NO_FENCE: i64 = i64::MIN;

/// The [`MetadataStore`] on PostgreSQL.
#[derive(Debug)]
pub struct PostgresStore {
    pool: PgPool,
    watchers: Watchers,
    /// The lease epoch every write checks, or [`NO_FENCE`].
    fence: AtomicI64,
}

/// The metadata-service lease, held as long as its connection lives.
#[derive(Debug)]
pub struct PgLease {
    conn: PgConnection,
    epoch: i64,
}

impl PgLease {
    /// The epoch this holder fences writes with.
    pub fn epoch(&self) -> i64 {
        self.epoch
    }

    /// Checks the lease connection is alive (the lock goes with it).
    pub async fn check(&mut self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&mut self.conn).await?;
        Ok(())
    }

    /// Gives the lease up.
    pub async fn release(self) {
        let _ = sqlx::Connection::close(self.conn).await;
    }
}

impl PostgresStore {
    /// Connects to `url` (`postgres://user@host:port/db`) and runs pending migrations.
    pub async fn connect(url: &str) -> Result<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(10))
            .connect(url)
            .await?;
        let store = Self {
            pool,
            watchers: Watchers::default(),
            fence: AtomicI64::new(NO_FENCE),
        };
        store.migrate().await?;
        Ok(store)
    }

    async fn migrate(&self) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(MIGRATION_LOCK)
            .execute(&mut *tx)
            .await?;
        sqlx::raw_sql("CREATE TABLE IF NOT EXISTS silt_schema_version (version BIGINT NOT NULL)")
            .execute(&mut *tx)
            .await?;
        let version: Option<i64> = sqlx::query_scalar("SELECT version FROM silt_schema_version")
            .fetch_optional(&mut *tx)
            .await?;
        let version = version.unwrap_or(0);
        let known = MIGRATIONS.len() as i64;
        if version > known {
            return Err(MetadataError::Corrupt {
                reason: format!("schema version {version} is newer than this build ({known})"),
            });
        }
        for sql in MIGRATIONS.iter().skip(version as usize) {
            sqlx::raw_sql(sql).execute(&mut *tx).await?;
        }
        sqlx::query("DELETE FROM silt_schema_version")
            .execute(&mut *tx)
            .await?;
        sqlx::query("INSERT INTO silt_schema_version (version) VALUES ($1)")
            .bind(known)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Makes every write of this store check the lease epoch (see [`PgLease`]): once
    /// another metadata process has taken the lease, writes fail with `NotActive`.
    pub fn fence_with(&self, epoch: i64) {
        self.fence.store(epoch, Ordering::SeqCst);
    }

    /// Starts a write transaction. With a fence set, it first share-locks the lease row and
    /// checks its epoch: a new lease holder bumps the epoch with an update that waits for
    /// every such transaction to end, so no write of a deposed holder lands after that.
    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Postgres>> {
        let mut tx = self.pool.begin().await?;
        let fence = self.fence.load(Ordering::SeqCst);
        if fence != NO_FENCE {
            let epoch: i64 =
                sqlx::query_scalar("SELECT epoch FROM silt_lease WHERE id = 1 FOR SHARE")
                    .fetch_one(&mut *tx)
                    .await?;
            if epoch != fence {
                return Err(MetadataError::NotActive { epoch });
            }
        }
        Ok(tx)
    }

    /// Tries to take the metadata-service lease: a PostgreSQL session advisory lock held
    /// on a connection of its own. On success the lease epoch is bumped (fencing the
    /// previous holder's writes) and this store's writes are fenced with the new epoch.
    /// `None` when another process holds it.
    pub async fn try_lease(&self, url: &str, holder: &str) -> Result<Option<PgLease>> {
        let mut conn = <PgConnection as sqlx::Connection>::connect(url).await?;
        let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(LEASE_LOCK)
            .fetch_one(&mut conn)
            .await?;
        if !locked {
            let _ = sqlx::Connection::close(conn).await;
            return Ok(None);
        }
        let epoch: i64 = sqlx::query_scalar(
            "UPDATE silt_lease SET epoch = epoch + 1, holder = $1, acquired_at_ms = $2 WHERE id = 1 RETURNING epoch",
        )
        .bind(holder)
        .bind(now_ms())
        .fetch_one(&mut conn)
        .await?;
        self.fence_with(epoch);
        Ok(Some(PgLease { conn, epoch }))
    }

    pub async fn close(&self) {
        self.pool.close().await;
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

fn offsets_from_row(row: &impl RowRead) -> Result<PartitionOffsets> {
    Ok(PartitionOffsets {
        partition: i32_of(row, "partition")?,
        log_start_offset: row.int("log_start_offset")?,
        high_watermark: row.int("next_offset")?,
    })
}

/// A segment committed before (a retried commit whose answer was lost): answers each
/// chunk as the first commit did, changing nothing.
async fn replay_commit(
    tx: &mut PgConnection,
    segment_id: i64,
    segment: &SegmentCommit,
    topic_ids: &HashMap<&str, String>,
) -> Result<Vec<ChunkOutcome>> {
    let mut outcomes = Vec::with_capacity(segment.chunks.len());
    for chunk in &segment.chunks {
        let topic_id = &topic_ids[chunk.topic.as_str()];
        let base: Option<i64> = sqlx::query_scalar(
            "SELECT base_offset FROM chunks WHERE segment_id = $1 AND topic_id = $2 AND partition = $3 AND row_group = $4",
        )
        .bind(segment_id)
        .bind(topic_id)
        .bind(i64::from(chunk.partition))
        .bind(i64::from(chunk.row_group))
        .fetch_optional(&mut *tx)
        .await?;
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
    tx: &mut PgConnection,
    topic_id: &str,
    chunk: &ChunkCommit,
    producer: &ProducerBatch,
) -> Result<SequenceCheck> {
    let current: Option<i64> =
        sqlx::query_scalar("SELECT epoch FROM producers WHERE producer_id = $1")
            .bind(producer.producer_id)
            .fetch_optional(&mut *tx)
            .await?;
    let rows = sqlx::query(
        "SELECT first_seq, last_seq, base_offset FROM producer_batches \
         WHERE producer_id = $1 AND topic_id = $2 AND partition = $3 AND epoch = $4 ORDER BY id",
    )
    .bind(producer.producer_id)
    .bind(topic_id)
    .bind(i64::from(chunk.partition))
    .bind(i64::from(producer.epoch))
    .fetch_all(&mut *tx)
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

/// Index entries of one commit, as columns for one multi-row insert.
#[derive(Default)]
struct ChunkRows {
    topic_id: Vec<String>,
    partition: Vec<i64>,
    base_offset: Vec<i64>,
    record_count: Vec<i64>,
    segment_id: Vec<i64>,
    row_group: Vec<i64>,
    byte_start: Vec<i64>,
    byte_len: Vec<i64>,
    min_timestamp_ms: Vec<i64>,
    max_timestamp_ms: Vec<i64>,
}

impl ChunkRows {
    fn is_empty(&self) -> bool {
        self.topic_id.is_empty()
    }

    fn push(
        &mut self,
        topic_id: &str,
        chunk: &ChunkCommit,
        base: i64,
        segment_id: i64,
    ) -> Result<()> {
        self.topic_id.push(topic_id.to_string());
        self.partition.push(i64::from(chunk.partition));
        self.base_offset.push(base);
        self.record_count.push(i64::from(chunk.record_count));
        self.segment_id.push(segment_id);
        self.row_group.push(i64::from(chunk.row_group));
        self.byte_start
            .push(to_i64(chunk.byte_start, "byte_start")?);
        self.byte_len.push(to_i64(chunk.byte_len, "byte_len")?);
        self.min_timestamp_ms.push(chunk.min_timestamp_ms);
        self.max_timestamp_ms.push(chunk.max_timestamp_ms);
        Ok(())
    }

    async fn insert(self, tx: &mut PgConnection) -> Result<()> {
        sqlx::query(
            "INSERT INTO chunks (topic_id, partition, base_offset, record_count, segment_id, row_group, \
             byte_start, byte_len, min_timestamp_ms, max_timestamp_ms) \
             SELECT * FROM UNNEST($1::text[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[], \
             $6::bigint[], $7::bigint[], $8::bigint[], $9::bigint[], $10::bigint[])",
        )
        .bind(self.topic_id)
        .bind(self.partition)
        .bind(self.base_offset)
        .bind(self.record_count)
        .bind(self.segment_id)
        .bind(self.row_group)
        .bind(self.byte_start)
        .bind(self.byte_len)
        .bind(self.min_timestamp_ms)
        .bind(self.max_timestamp_ms)
        .execute(&mut *tx)
        .await?;
        Ok(())
    }
}

async fn record_batch(
    tx: &mut PgConnection,
    topic_id: &str,
    chunk: &ChunkCommit,
    producer: &ProducerBatch,
    base_offset: i64,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO producer_batches (producer_id, topic_id, partition, epoch, first_seq, last_seq, base_offset) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(producer.producer_id)
    .bind(topic_id)
    .bind(i64::from(chunk.partition))
    .bind(i64::from(producer.epoch))
    .bind(i64::from(producer.base_sequence))
    .bind(i64::from(last_sequence(chunk, producer)))
    .bind(base_offset)
    .execute(&mut *tx)
    .await?;
    // A batch of a newer epoch makes it the producer's current one (see `judge`).
    sqlx::query("UPDATE producers SET epoch = $2 WHERE producer_id = $1 AND epoch < $2")
        .bind(producer.producer_id)
        .bind(i64::from(producer.epoch))
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "DELETE FROM producer_batches WHERE producer_id = $1 AND topic_id = $2 AND partition = $3 AND id NOT IN \
         (SELECT id FROM producer_batches WHERE producer_id = $1 AND topic_id = $2 AND partition = $3 \
          ORDER BY id DESC LIMIT $4)",
    )
    .bind(producer.producer_id)
    .bind(topic_id)
    .bind(i64::from(chunk.partition))
    .bind(PRODUCER_BATCHES_KEPT)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

#[async_trait]
impl CatalogStore for PostgresStore {
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
        let id = topic.id.to_string();
        let mut tx = self.begin_write().await?;
        let inserted = sqlx::query(
            "INSERT INTO topics (id, name, partitions, config, created_at_ms) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(&id)
        .bind(name)
        .bind(i64::from(partitions))
        .bind(config_json)
        .bind(topic.created_at_ms)
        .execute(&mut *tx)
        .await?;
        if inserted.rows_affected() == 0 {
            return Err(MetadataError::TopicExists {
                topic: name.to_string(),
            });
        }
        sqlx::query(
            "INSERT INTO partitions (topic_id, partition) SELECT $1, generate_series(0, $2 - 1)",
        )
        .bind(&id)
        .bind(i64::from(partitions))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(topic)
    }

    async fn delete_topic(&self, name: &str) -> Result<()> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query("DELETE FROM topics WHERE name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(MetadataError::UnknownTopic {
                topic: name.to_string(),
            });
        }
        tx.commit().await?;
        self.watchers.remove_topic(name);
        Ok(())
    }

    async fn set_topic_config(&self, name: &str, config: TopicConfig) -> Result<Topic> {
        let json = serde_json::to_string(&config).map_err(|e| MetadataError::InvalidRequest {
            reason: e.to_string(),
        })?;
        let mut tx = self.begin_write().await?;
        let done = sqlx::query("UPDATE topics SET config = $1 WHERE name = $2")
            .bind(json)
            .bind(name)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(MetadataError::UnknownTopic {
                topic: name.to_string(),
            });
        }
        tx.commit().await?;
        self.topic(name).await
    }

    async fn add_partitions(&self, name: &str, partitions: i32) -> Result<Topic> {
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(&format!(
            "SELECT {TOPIC_COLUMNS} FROM topics WHERE name = $1 FOR UPDATE"
        ))
        .bind(name)
        .fetch_optional(&mut *tx)
        .await?;
        let topic = match row {
            Some(row) => topic_from_row(&row)?,
            None => {
                return Err(MetadataError::UnknownTopic {
                    topic: name.to_string(),
                });
            }
        };
        if partitions <= topic.partitions || partitions > MAX_PARTITIONS {
            return Err(MetadataError::InvalidPartitionCount {
                partitions,
                max: MAX_PARTITIONS,
            });
        }
        let id = topic.id.to_string();
        sqlx::query("UPDATE topics SET partitions = $1 WHERE id = $2")
            .bind(i64::from(partitions))
            .bind(&id)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO partitions (topic_id, partition) SELECT $1, generate_series($2, $3 - 1)",
        )
        .bind(&id)
        .bind(i64::from(topic.partitions))
        .bind(i64::from(partitions))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Topic {
            partitions,
            ..topic
        })
    }

    async fn topic(&self, name: &str) -> Result<Topic> {
        let row = sqlx::query(&format!(
            "SELECT {TOPIC_COLUMNS} FROM topics WHERE name = $1"
        ))
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        match row {
            Some(row) => topic_from_row(&row),
            None => Err(MetadataError::UnknownTopic {
                topic: name.to_string(),
            }),
        }
    }

    async fn topics(&self) -> Result<Vec<Topic>> {
        let rows = sqlx::query(&format!("SELECT {TOPIC_COLUMNS} FROM topics ORDER BY name"))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(topic_from_row).collect()
    }
}

#[async_trait]
impl LogStore for PostgresStore {
    async fn partition_offsets(&self, topic: &str) -> Result<Vec<PartitionOffsets>> {
        let t = self.topic(topic).await?;
        let rows = sqlx::query(
            "SELECT partition, log_start_offset, next_offset FROM partitions WHERE topic_id = $1 ORDER BY partition",
        )
        .bind(t.id.to_string())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(offsets_from_row).collect()
    }

    async fn partition_offset(&self, topic: &str, partition: i32) -> Result<PartitionOffsets> {
        let row = sqlx::query(
            "SELECT p.partition, p.log_start_offset, p.next_offset FROM partitions p JOIN topics t ON t.id = p.topic_id \
             WHERE t.name = $1 AND p.partition = $2",
        )
        .bind(topic)
        .bind(i64::from(partition))
        .fetch_optional(&self.pool)
        .await?;
        match row {
            Some(r) => offsets_from_row(&r),
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
        if let Some(c) = segment.chunks.iter().find(|c| c.record_count == 0) {
            return Err(MetadataError::InvalidRequest {
                reason: format!("empty chunk for {}/{}", c.topic, c.partition),
            });
        }
        let mut tx = self.begin_write().await?;
        // A few set-based statements whatever the chunk count: resolve topic ids, lock
        // every touched partition (in one order, so concurrent commits never deadlock) and
        // read its next offset, then write all offsets and index entries at once.
        let names: Vec<&str> = {
            let set: BTreeSet<&str> = segment.chunks.iter().map(|c| c.topic.as_str()).collect();
            set.into_iter().collect()
        };
        let rows: Vec<(String, String)> =
            sqlx::query_as("SELECT name, id FROM topics WHERE name = ANY($1)")
                .bind(&names)
                .fetch_all(&mut *tx)
                .await?;
        let topic_ids: HashMap<&str, String> = names
            .iter()
            .filter_map(|n| {
                rows.iter()
                    .find(|(name, _)| name == n)
                    .map(|(_, id)| (*n, id.clone()))
            })
            .collect();
        if let Some(missing) = names.iter().find(|n| !topic_ids.contains_key(**n)) {
            return Err(MetadataError::UnknownTopic {
                topic: (*missing).to_string(),
            });
        }
        let touched: BTreeSet<(&str, i32)> = segment
            .chunks
            .iter()
            .map(|c| (topic_ids[c.topic.as_str()].as_str(), c.partition))
            .collect();
        let (lock_topics, lock_partitions): (Vec<&str>, Vec<i64>) =
            touched.iter().map(|(t, p)| (*t, i64::from(*p))).unzip();
        let locked: Vec<(String, i64, i64)> = sqlx::query_as(
            "SELECT p.topic_id, p.partition, p.next_offset FROM partitions p \
             JOIN UNNEST($1::text[], $2::bigint[]) AS w(topic_id, partition) \
               ON p.topic_id = w.topic_id AND p.partition = w.partition \
             ORDER BY p.topic_id, p.partition FOR UPDATE OF p",
        )
        .bind(&lock_topics)
        .bind(&lock_partitions)
        .fetch_all(&mut *tx)
        .await?;
        let mut next: HashMap<(String, i32), i64> = locked
            .into_iter()
            .map(|(t, p, n)| ((t, p as i32), n))
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
        let existing: Option<i64> =
            sqlx::query_scalar("SELECT id FROM segments WHERE object_key = $1")
                .bind(&segment.key)
                .fetch_optional(&mut *tx)
                .await?;
        if let Some(segment_id) = existing {
            let outcomes = replay_commit(&mut tx, segment_id, segment, &topic_ids).await?;
            tx.commit().await?;
            return Ok(outcomes);
        }
        let segment_id: i64 = sqlx::query_scalar(
            "INSERT INTO segments (object_key, size, footer_len, footer_crc, created_at_ms) VALUES ($1, $2, $3, $4, $5) RETURNING id",
        )
        .bind(&segment.key)
        .bind(to_i64(segment.size, "size")?)
        .bind(to_i64(segment.footer_len, "footer_len")?)
        .bind(segment.footer_crc.map(i64::from))
        .bind(now_ms())
        .fetch_one(&mut *tx)
        .await?;

        let mut outcomes = Vec::with_capacity(segment.chunks.len());
        let mut rows = ChunkRows::default();
        let mut high_watermarks: HashMap<(&str, i32), i64> = HashMap::new();
        for chunk in &segment.chunks {
            let topic_id = &topic_ids[chunk.topic.as_str()];
            if let Some(producer) = &chunk.producer {
                match check_sequence(&mut tx, topic_id, chunk, producer).await? {
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
            rows.push(topic_id, chunk, base, segment_id)?;
            if let Some(producer) = &chunk.producer {
                // Recorded at once: a later batch of the same producer in this segment is
                // checked against it.
                record_batch(&mut tx, topic_id, chunk, producer, base).await?;
            }
            outcomes.push(ChunkOutcome::Committed { base_offset: base });
            high_watermarks.insert((chunk.topic.as_str(), chunk.partition), *offset);
        }
        if !rows.is_empty() {
            let (topics, partitions, offsets): (Vec<&str>, Vec<i64>, Vec<i64>) = next
                .iter()
                .map(|((t, p), n)| (t.as_str(), i64::from(*p), *n))
                .fold(
                    (Vec::new(), Vec::new(), Vec::new()),
                    |mut acc, (t, p, n)| {
                        acc.0.push(t);
                        acc.1.push(p);
                        acc.2.push(n);
                        acc
                    },
                );
            sqlx::query(
                "UPDATE partitions p SET next_offset = w.next_offset \
                 FROM UNNEST($1::text[], $2::bigint[], $3::bigint[]) AS w(topic_id, partition, next_offset) \
                 WHERE p.topic_id = w.topic_id AND p.partition = w.partition",
            )
            .bind(&topics)
            .bind(&partitions)
            .bind(&offsets)
            .execute(&mut *tx)
            .await?;
            rows.insert(&mut tx).await?;
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
             WHERE c.topic_id = $1 AND c.partition = $2 AND c.base_offset >= COALESCE( \
               (SELECT MAX(base_offset) FROM chunks WHERE topic_id = $1 AND partition = $2 AND base_offset <= $3), 0) \
             AND c.base_offset + c.record_count > $3 \
             ORDER BY c.base_offset LIMIT $4"
        );
        let rows = sqlx::query(&sql)
            .bind(&topic_id)
            .bind(i64::from(partition))
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
             WHERE c.topic_id = $1 AND c.partition = $2 AND c.max_timestamp_ms >= $3 \
             AND c.base_offset + c.record_count > p.log_start_offset \
             ORDER BY c.base_offset LIMIT 1"
        );
        let row = sqlx::query(&sql)
            .bind(&topic_id)
            .bind(i64::from(partition))
            .bind(timestamp_ms)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(chunk_from_row).transpose()
    }
}

#[async_trait]
impl CompactionStore for PostgresStore {
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
             WHERE c.topic_id = $1 AND c.partition = $2 AND s.kind = 'raw' \
             ORDER BY c.base_offset LIMIT $3"
        );
        let rows = sqlx::query(&sql)
            .bind(&topic_id)
            .bind(i64::from(partition))
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
        let mut tx = self.begin_write().await?;
        // The partition row lock orders this swap with commits and retention.
        sqlx::query("SELECT 1 FROM partitions WHERE topic_id = $1 AND partition = $2 FOR UPDATE")
            .bind(&topic_id)
            .bind(i64::from(partition))
            .execute(&mut *tx)
            .await?;
        let current: Vec<(i64, i64, String)> = sqlx::query_as(
            "SELECT c.base_offset, c.record_count, s.object_key FROM chunks c \
             JOIN segments s ON s.id = c.segment_id \
             WHERE c.topic_id = $1 AND c.partition = $2 AND c.base_offset >= $3 AND c.base_offset < $4 \
             ORDER BY c.base_offset",
        )
        .bind(&topic_id)
        .bind(i64::from(partition))
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
            "DELETE FROM chunks WHERE topic_id = $1 AND partition = $2 AND base_offset >= $3 AND base_offset < $4",
        )
        .bind(&topic_id)
        .bind(i64::from(partition))
        .bind(start)
        .bind(end)
        .execute(&mut *tx)
        .await?;
        let lake = &new[0].segment;
        let segment_id: i64 = sqlx::query_scalar(
            "INSERT INTO segments (object_key, size, footer_len, footer_crc, created_at_ms, kind) VALUES ($1, $2, $3, $4, $5, 'lake') \
             ON CONFLICT (object_key) DO UPDATE SET size = excluded.size, footer_len = excluded.footer_len, \
             footer_crc = excluded.footer_crc, unreferenced_at_ms = NULL RETURNING id",
        )
        .bind(&lake.key)
        .bind(to_i64(lake.size, "size")?)
        .bind(to_i64(lake.footer_len, "footer_len")?)
        .bind(lake.footer_crc.map(i64::from))
        .bind(now_ms())
        .fetch_one(&mut *tx)
        .await?;
        let mut rows = ChunkRows::default();
        for entry in new {
            let chunk = ChunkCommit {
                topic: topic.to_string(),
                partition,
                record_count: entry.record_count,
                row_group: entry.row_group,
                byte_start: entry.byte_start,
                byte_len: entry.byte_len,
                min_timestamp_ms: entry.min_timestamp_ms,
                max_timestamp_ms: entry.max_timestamp_ms,
                producer: None,
            };
            rows.push(&topic_id, &chunk, entry.base_offset, segment_id)?;
        }
        rows.insert(&mut tx).await?;
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
        let (log_start, next): (i64, i64) = sqlx::query_as(
            "SELECT log_start_offset, next_offset FROM partitions WHERE topic_id = $1 AND partition = $2 FOR UPDATE",
        )
        .bind(&topic_id)
        .bind(i64::from(partition))
        .fetch_one(&mut *tx)
        .await?;
        let start = offset.clamp(log_start, next);
        sqlx::query(
            "UPDATE partitions SET log_start_offset = $1 WHERE topic_id = $2 AND partition = $3",
        )
        .bind(start)
        .bind(&topic_id)
        .bind(i64::from(partition))
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "DELETE FROM chunks WHERE topic_id = $1 AND partition = $2 AND base_offset + record_count <= $3",
        )
        .bind(&topic_id)
        .bind(i64::from(partition))
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
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "UPDATE segments SET unreferenced_at_ms = $1 WHERE unreferenced_at_ms IS NULL \
             AND NOT EXISTS (SELECT 1 FROM chunks c WHERE c.segment_id = segments.id)",
        )
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(sqlx::query_scalar(
            "SELECT object_key FROM segments WHERE unreferenced_at_ms IS NOT NULL AND unreferenced_at_ms <= $1 \
             ORDER BY id LIMIT $2",
        )
        .bind(now - grace.as_millis() as i64)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?)
    }

    async fn forget_segments(&self, keys: &[String]) -> Result<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "DELETE FROM segments WHERE object_key = ANY($1) \
             AND NOT EXISTS (SELECT 1 FROM chunks c WHERE c.segment_id = segments.id)",
        )
        .bind(keys)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn known_segments(&self, keys: &[String]) -> Result<Vec<String>> {
        Ok(
            sqlx::query_scalar("SELECT object_key FROM segments WHERE object_key = ANY($1)")
                .bind(keys)
                .fetch_all(&self.pool)
                .await?,
        )
    }
}

#[async_trait]
impl GroupOffsetStore for PostgresStore {
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
        let mut tx = self.begin_write().await?;
        for o in offsets {
            sqlx::query(
                "INSERT INTO group_offsets (group_id, topic, partition, committed_offset, metadata, commit_time_ms) \
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (group_id, topic, partition) DO UPDATE SET \
                 committed_offset = EXCLUDED.committed_offset, metadata = EXCLUDED.metadata, \
                 commit_time_ms = EXCLUDED.commit_time_ms",
            )
            .bind(group)
            .bind(&o.topic)
            .bind(i64::from(o.partition))
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
             WHERE group_id = $1 ORDER BY topic, partition",
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
        let mut tx = self.begin_write().await?;
        match partitions {
            None => {
                sqlx::query("DELETE FROM group_offsets WHERE group_id = $1")
                    .bind(group)
                    .execute(&mut *tx)
                    .await?;
            }
            Some(partitions) => {
                for (topic, partition) in partitions {
                    sqlx::query("DELETE FROM group_offsets WHERE group_id = $1 AND topic = $2 AND partition = $3")
                        .bind(group)
                        .bind(topic)
                        .bind(i64::from(*partition))
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
impl ProducerStore for PostgresStore {
    async fn init_producer_id(&self) -> Result<ProducerIdentity> {
        let mut tx = self.begin_write().await?;
        let producer_id: i64 = sqlx::query_scalar(
            "INSERT INTO producers (epoch, created_at_ms) VALUES (0, $1) RETURNING producer_id",
        )
        .bind(now_ms())
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(ProducerIdentity {
            producer_id,
            epoch: 0,
        })
    }
}

#[async_trait]
impl NodeStore for PostgresStore {
    async fn heartbeat_node(&self, node: &NodeInfo, ttl: Duration) -> Result<()> {
        let info = serde_json::to_string(node).map_err(|e| MetadataError::InvalidRequest {
            reason: format!("node info: {e}"),
        })?;
        let expires = now_ms() + ttl.as_millis() as i64;
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO nodes (node_id, info, expires_at_ms) VALUES ($1, $2, $3) \
             ON CONFLICT (node_id) DO UPDATE SET info = excluded.info, expires_at_ms = excluded.expires_at_ms",
        )
        .bind(i64::from(node.node_id))
        .bind(info)
        .bind(expires)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn remove_node(&self, node_id: i32) -> Result<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query("DELETE FROM nodes WHERE node_id = $1")
            .bind(i64::from(node_id))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn live_nodes(&self) -> Result<Vec<NodeInfo>> {
        let infos: Vec<String> =
            sqlx::query_scalar("SELECT info FROM nodes WHERE expires_at_ms > $1 ORDER BY node_id")
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
impl SecurityStore for PostgresStore {
    async fn set_scram_credential(&self, credential: &ScramCredential) -> Result<()> {
        validate_credential(credential)?;
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO scram_credentials \
             (user_name, mechanism, iterations, salt, stored_key, server_key) \
             VALUES ($1, $2, $3, $4, $5, $6) \
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
        let mut tx = self.begin_write().await?;
        let done =
            sqlx::query("DELETE FROM scram_credentials WHERE user_name = $1 AND mechanism = $2")
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
             FROM scram_credentials WHERE user_name = $1 AND mechanism = $2",
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
        let mut tx = self.begin_write().await?;
        for b in bindings {
            bind_acl(b, sqlx::query(
                "INSERT INTO acls (principal, host, resource_type, resource_name, pattern_type, \
                 operation, permission) VALUES ($1, $2, $3, $4, $5, $6, $7) \
                 ON CONFLICT DO NOTHING",
            ))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn delete_acls(&self, bindings: &[AclBinding]) -> Result<u64> {
        let mut tx = self.begin_write().await?;
        let mut removed = 0;
        for b in bindings {
            removed += bind_acl(
                b,
                sqlx::query(
                    "DELETE FROM acls WHERE principal = $1 AND host = $2 AND resource_type = $3 \
                 AND resource_name = $4 AND pattern_type = $5 AND operation = $6 \
                 AND permission = $7",
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
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO cluster_secrets (name, secret) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(proposed)
        .execute(&mut *tx)
        .await?;
        let secret: Vec<u8> =
            sqlx::query_scalar("SELECT secret FROM cluster_secrets WHERE name = $1")
                .bind(name)
                .fetch_one(&mut *tx)
                .await?;
        tx.commit().await?;
        Ok(secret)
    }
}

impl Watch for PostgresStore {
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
    query: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
    query
        .bind(&b.principal)
        .bind(&b.host)
        .bind(b.resource_type.name())
        .bind(&b.resource_name)
        .bind(b.pattern_type.name())
        .bind(b.operation.name())
        .bind(b.permission.name())
}
