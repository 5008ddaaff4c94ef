//! What is PostgreSQL's own: the schema's migrations (counted in `silt_schema_version`,
//! serialised by an advisory lock), the metadata-service lease and the fencing of a
//! deposed holder's writes, and the set-based statements of a segment commit. Offsets
//! stay dense under concurrent commits from many nodes: a commit locks its partitions'
//! rows (in a fixed order, so two commits cannot deadlock) before it assigns offsets.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use sqlx::postgres::{PgConnection, PgPool, PgPoolOptions};

use super::db::{Pool, Tx};
use super::log::ChunkRows;
use super::{Backend, SqlStore};
use crate::error::{MetadataError, Result};

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
    // 7: transactional ids: the producer each one names, and its transaction timeout
    r#"
CREATE TABLE transactional_ids (
    transactional_id TEXT PRIMARY KEY,
    producer_id BIGINT NOT NULL,
    epoch BIGINT NOT NULL,
    timeout_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL
);
"#,
    // 8: chunks remember the producer batch they hold (transactions filter by it)
    r#"
ALTER TABLE chunks ADD COLUMN producer_id BIGINT;
ALTER TABLE chunks ADD COLUMN producer_epoch BIGINT;
ALTER TABLE chunks ADD COLUMN base_sequence BIGINT;
ALTER TABLE chunks ADD COLUMN batch_kind BIGINT NOT NULL DEFAULT 0;
"#,
    // 9: Kafka transactions: an id's open transaction, its partitions and groups, the
    // offsets it commits; per partition the open transactions (the LSO) and the aborted
    // ranges (decision 0008)
    r#"
ALTER TABLE transactional_ids ADD COLUMN started_at_ms BIGINT;
CREATE TABLE transaction_partitions (
    transactional_id TEXT NOT NULL REFERENCES transactional_ids(transactional_id),
    topic_id TEXT NOT NULL,
    partition BIGINT NOT NULL,
    PRIMARY KEY (transactional_id, topic_id, partition),
    FOREIGN KEY (topic_id, partition) REFERENCES partitions(topic_id, partition) ON DELETE CASCADE
);
CREATE TABLE transaction_groups (
    transactional_id TEXT NOT NULL REFERENCES transactional_ids(transactional_id),
    group_id TEXT NOT NULL,
    PRIMARY KEY (transactional_id, group_id)
);
CREATE TABLE transaction_offsets (
    transactional_id TEXT NOT NULL REFERENCES transactional_ids(transactional_id),
    group_id TEXT NOT NULL,
    topic TEXT NOT NULL,
    partition BIGINT NOT NULL,
    committed_offset BIGINT NOT NULL,
    metadata TEXT,
    PRIMARY KEY (transactional_id, group_id, topic, partition)
);
CREATE TABLE open_transactions (
    topic_id TEXT NOT NULL,
    partition BIGINT NOT NULL,
    producer_id BIGINT NOT NULL,
    first_offset BIGINT NOT NULL,
    PRIMARY KEY (topic_id, partition, producer_id),
    FOREIGN KEY (topic_id, partition) REFERENCES partitions(topic_id, partition) ON DELETE CASCADE
);
CREATE TABLE aborted_transactions (
    topic_id TEXT NOT NULL,
    partition BIGINT NOT NULL,
    producer_id BIGINT NOT NULL,
    first_offset BIGINT NOT NULL,
    last_offset BIGINT NOT NULL,
    PRIMARY KEY (topic_id, partition, last_offset),
    FOREIGN KEY (topic_id, partition) REFERENCES partitions(topic_id, partition) ON DELETE CASCADE
);
"#,
    // 10: the producer id that opened a transaction (an epoch bump may change the id),
    // and transactional ids found by producer id
    r#"
ALTER TABLE transactional_ids ADD COLUMN open_producer_id BIGINT;
CREATE INDEX transactional_ids_by_producer ON transactional_ids(producer_id);
"#,
];
/// Any constant: the advisory lock that serialises migrations of concurrent nodes.
const MIGRATION_LOCK: i64 = 0x5117_0001;

/// Any constant: the advisory lock whose holder is the active metadata process.
const LEASE_LOCK: i64 = 0x5117_0002;

/// No fencing: the store is used directly, not by a lease-holding metadata service.
pub(super) const NO_FENCE: i64 = i64::MIN;

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

impl SqlStore {
    /// Connects to PostgreSQL at `url` (`postgres://user@host:port/db`) and runs pending
    /// migrations.
    pub async fn connect(url: &str) -> Result<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(10))
            .connect(url)
            .await?;
        migrate(&pool).await?;
        Ok(Self::new(
            Pool::Postgres(pool),
            Backend::Postgres {
                fence: AtomicI64::new(NO_FENCE),
            },
        ))
    }

    /// Makes every write of this store check the lease epoch (see [`PgLease`]): once
    /// another metadata process has taken the lease, writes fail with `NotActive`.
    pub fn fence_with(&self, epoch: i64) {
        if let Backend::Postgres { fence } = &self.backend {
            fence.store(epoch, Ordering::SeqCst);
        }
    }

    /// Tries to take the metadata-service lease: a PostgreSQL session advisory lock held
    /// on a connection of its own. On success the lease epoch is bumped (fencing the
    /// previous holder's writes) and this store's writes are fenced with the new epoch.
    /// `None` when another process holds it.
    pub async fn try_lease(&self, url: &str, holder: &str) -> Result<Option<PgLease>> {
        if !matches!(self.backend, Backend::Postgres { .. }) {
            return Err(MetadataError::InvalidRequest {
                reason: "a metadata lease needs a PostgreSQL store".into(),
            });
        }
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
        .bind(self.now_ms())
        .fetch_one(&mut conn)
        .await?;
        self.fence_with(epoch);
        Ok(Some(PgLease { conn, epoch }))
    }
}

async fn migrate(pool: &PgPool) -> Result<()> {
    let mut tx = pool.begin().await?;
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

/// Starts a write transaction. With a fence set, it first share-locks the lease row and
/// checks its epoch: a new lease holder bumps the epoch with an update that waits for
/// every such transaction to end, so no write of a deposed holder lands after that.
pub(super) async fn begin_fenced<'a>(pool: &PgPool, fence: &AtomicI64) -> Result<Tx<'a>> {
    let mut tx = pool.begin().await?;
    let fence = fence.load(Ordering::SeqCst);
    if fence != NO_FENCE {
        let epoch: i64 = sqlx::query_scalar("SELECT epoch FROM silt_lease WHERE id = 1 FOR SHARE")
            .fetch_one(&mut *tx)
            .await?;
        if epoch != fence {
            return Err(MetadataError::NotActive { epoch });
        }
    }
    Ok(Tx::Postgres(tx))
}

fn postgres<'t>(tx: &'t mut Tx<'_>) -> Result<&'t mut PgConnection> {
    match tx {
        Tx::Postgres(tx) => Ok(&mut **tx),
        Tx::Sqlite(..) => Err(MetadataError::Corrupt {
            reason: "a PostgreSQL statement on a SQLite transaction".into(),
        }),
    }
}

/// Locks every touched partition's row, in one order so concurrent commits never
/// deadlock, and reads its next offset: one statement whatever the count.
pub(super) async fn lock_partitions(
    tx: &mut Tx<'_>,
    partitions: &[(&str, i32)],
) -> Result<Vec<(String, i32, i64)>> {
    let (topics, numbers): (Vec<&str>, Vec<i64>) =
        partitions.iter().map(|(t, p)| (*t, i64::from(*p))).unzip();
    let locked: Vec<(String, i64, i64)> = sqlx::query_as(
        "SELECT p.topic_id, p.partition, p.next_offset FROM partitions p \
         JOIN UNNEST($1::text[], $2::bigint[]) AS w(topic_id, partition) \
           ON p.topic_id = w.topic_id AND p.partition = w.partition \
         ORDER BY p.topic_id, p.partition FOR UPDATE OF p",
    )
    .bind(&topics)
    .bind(&numbers)
    .fetch_all(postgres(tx)?)
    .await?;
    Ok(locked
        .into_iter()
        .map(|(t, p, n)| (t, p as i32, n))
        .collect())
}

pub(super) async fn set_next_offsets(tx: &mut Tx<'_>, next: &[(&str, i32, i64)]) -> Result<()> {
    let mut topics = Vec::with_capacity(next.len());
    let mut partitions = Vec::with_capacity(next.len());
    let mut offsets = Vec::with_capacity(next.len());
    for (t, p, n) in next {
        topics.push(*t);
        partitions.push(i64::from(*p));
        offsets.push(*n);
    }
    sqlx::query(
        "UPDATE partitions p SET next_offset = w.next_offset \
         FROM UNNEST($1::text[], $2::bigint[], $3::bigint[]) AS w(topic_id, partition, next_offset) \
         WHERE p.topic_id = w.topic_id AND p.partition = w.partition",
    )
    .bind(&topics)
    .bind(&partitions)
    .bind(&offsets)
    .execute(postgres(tx)?)
    .await?;
    Ok(())
}

/// Inserts every index entry of a commit in one statement.
pub(super) async fn insert_chunks(tx: &mut Tx<'_>, rows: &ChunkRows) -> Result<()> {
    sqlx::query(
        "INSERT INTO chunks (topic_id, partition, base_offset, record_count, segment_id, row_group, \
         byte_start, byte_len, min_timestamp_ms, max_timestamp_ms, producer_id, producer_epoch, \
         base_sequence, batch_kind) \
         SELECT * FROM UNNEST($1::text[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[], \
         $6::bigint[], $7::bigint[], $8::bigint[], $9::bigint[], $10::bigint[], $11::bigint[], \
         $12::bigint[], $13::bigint[], $14::bigint[])",
    )
    .bind(&rows.topic_id)
    .bind(&rows.partition)
    .bind(&rows.base_offset)
    .bind(&rows.record_count)
    .bind(&rows.segment_id)
    .bind(&rows.row_group)
    .bind(&rows.byte_start)
    .bind(&rows.byte_len)
    .bind(&rows.min_timestamp_ms)
    .bind(&rows.max_timestamp_ms)
    .bind(&rows.producer_id)
    .bind(&rows.producer_epoch)
    .bind(&rows.base_sequence)
    .bind(&rows.batch_kind)
    .execute(postgres(tx)?)
    .await?;
    Ok(())
}
