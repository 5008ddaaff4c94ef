//! What is SQLite's own: the schema's migrations (counted in `PRAGMA user_version`),
//! opening the file (WAL, fsync on every commit), and the multi-row statements of a
//! segment commit.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use tokio::sync::Mutex;

use super::db::{Arg, Pool, Tx};
use super::log::ChunkRows;
use super::{Backend, SqlStore};
use crate::error::{MetadataError, Result};
use crate::rows::{RowRead, i32_of};

/// Most partitions a topic may have.
pub(crate) const MAX_PARTITIONS: i32 = 100_000;

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
    // 7: transactional ids: the producer each one names, and its transaction timeout
    r#"
CREATE TABLE transactional_ids (
    transactional_id TEXT PRIMARY KEY,
    producer_id INTEGER NOT NULL,
    epoch INTEGER NOT NULL,
    timeout_ms INTEGER NOT NULL,
    updated_at_ms INTEGER NOT NULL
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
ALTER TABLE transactional_ids ADD COLUMN started_at_ms INTEGER;
CREATE TABLE transaction_partitions (
    transactional_id TEXT NOT NULL REFERENCES transactional_ids(transactional_id),
    topic_id TEXT NOT NULL,
    partition INTEGER NOT NULL,
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
    partition INTEGER NOT NULL,
    committed_offset INTEGER NOT NULL,
    metadata TEXT,
    PRIMARY KEY (transactional_id, group_id, topic, partition)
);
CREATE TABLE open_transactions (
    topic_id TEXT NOT NULL,
    partition INTEGER NOT NULL,
    producer_id INTEGER NOT NULL,
    first_offset INTEGER NOT NULL,
    PRIMARY KEY (topic_id, partition, producer_id),
    FOREIGN KEY (topic_id, partition) REFERENCES partitions(topic_id, partition) ON DELETE CASCADE
);
CREATE TABLE aborted_transactions (
    topic_id TEXT NOT NULL,
    partition INTEGER NOT NULL,
    producer_id INTEGER NOT NULL,
    first_offset INTEGER NOT NULL,
    last_offset INTEGER NOT NULL,
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
impl SqlStore {
    /// Opens (creating if missing) the SQLite store at `path` and runs pending migrations.
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
        migrate(&pool).await?;
        Ok(Self::new(
            Pool::Sqlite(pool),
            Backend::Sqlite {
                write: Mutex::new(()),
            },
        ))
    }
}

impl SqlStore {
    /// Writes a consistent copy of the SQLite store at `db` to `to`, which must not exist,
    /// while a node may be using it: `VACUUM INTO` reads one snapshot of the database
    /// (committed transactions only) and writes it as a compact single file.
    pub async fn backup_sqlite(db: &Path, to: &Path) -> Result<()> {
        use sqlx::ConnectOptions;
        if !db.exists() {
            return Err(MetadataError::InvalidRequest {
                reason: format!("no metadata at {}", db.display()),
            });
        }
        if to.exists() {
            return Err(MetadataError::InvalidRequest {
                reason: format!("{} exists: a backup is written to a new file", to.display()),
            });
        }
        let target = to.to_str().ok_or_else(|| MetadataError::InvalidRequest {
            reason: format!("{} is not a UTF-8 path", to.display()),
        })?;
        let mut conn = SqliteConnectOptions::from_str("sqlite://")?
            .filename(db)
            .create_if_missing(false)
            .busy_timeout(Duration::from_secs(10))
            .connect()
            .await?;
        sqlx::query("VACUUM INTO ?")
            .bind(target)
            .execute(&mut conn)
            .await?;
        sqlx::Connection::close(conn).await?;
        Ok(())
    }
}

async fn migrate(pool: &sqlx::SqlitePool) -> Result<()> {
    let mut conn = pool.acquire().await?;
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

/// Rows per multi-row statement: well below SQLite's 32,766 bound variables.
const ROWS_PER_STATEMENT: usize = 1000;

/// `(?, ?, ...), (?, ?, ...)`: `rows` groups of `width` placeholders from `$1`.
fn value_groups(rows: usize, width: usize) -> String {
    (0..rows)
        .map(|r| format!("({})", super::placeholders(r * width + 1, width)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Reads the next offset of each partition, a thousand per statement (the writer lock
/// already keeps every other commit out).
pub(super) async fn lock_partitions(
    tx: &mut Tx<'_>,
    partitions: &[(&str, i32)],
) -> Result<Vec<(String, i32, i64)>> {
    let mut out = Vec::with_capacity(partitions.len());
    for batch in partitions.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "SELECT topic_id, partition, next_offset FROM partitions \
             WHERE (topic_id, partition) IN (VALUES {})",
            value_groups(batch.len(), 2)
        );
        let args: Vec<Arg<'_>> = batch
            .iter()
            .flat_map(|(t, p)| [Arg::Text(t), Arg::from(*p)])
            .collect();
        for row in tx.fetch_all(&sql, &args).await? {
            out.push((
                row.text("topic_id")?,
                i32_of(&row, "partition")?,
                row.int("next_offset")?,
            ));
        }
    }
    Ok(out)
}

pub(super) async fn set_next_offsets(tx: &mut Tx<'_>, next: &[(&str, i32, i64)]) -> Result<()> {
    for batch in next.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "UPDATE partitions SET next_offset = v.column3 FROM (VALUES {}) AS v \
             WHERE partitions.topic_id = v.column1 AND partitions.partition = v.column2",
            value_groups(batch.len(), 3)
        );
        let args: Vec<Arg<'_>> = batch
            .iter()
            .flat_map(|(t, p, n)| [Arg::Text(t), Arg::from(*p), Arg::from(*n)])
            .collect();
        tx.execute(&sql, &args).await?;
    }
    Ok(())
}

pub(super) async fn insert_chunks(tx: &mut Tx<'_>, rows: &ChunkRows) -> Result<()> {
    let indexes: Vec<usize> = (0..rows.len()).collect();
    for batch in indexes.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "INSERT INTO chunks (topic_id, partition, base_offset, record_count, segment_id, row_group, \
             byte_start, byte_len, min_timestamp_ms, max_timestamp_ms, producer_id, producer_epoch, \
             base_sequence, batch_kind) VALUES {}",
            value_groups(batch.len(), 14)
        );
        let args: Vec<Arg<'_>> = batch
            .iter()
            .flat_map(|&i| {
                [
                    Arg::Text(&rows.topic_id[i]),
                    Arg::Int(rows.partition[i]),
                    Arg::Int(rows.base_offset[i]),
                    Arg::Int(rows.record_count[i]),
                    Arg::Int(rows.segment_id[i]),
                    Arg::Int(rows.row_group[i]),
                    Arg::Int(rows.byte_start[i]),
                    Arg::Int(rows.byte_len[i]),
                    Arg::Int(rows.min_timestamp_ms[i]),
                    Arg::Int(rows.max_timestamp_ms[i]),
                    Arg::OptInt(rows.producer_id[i]),
                    Arg::OptInt(rows.producer_epoch[i]),
                    Arg::OptInt(rows.base_sequence[i]),
                    Arg::Int(rows.batch_kind[i]),
                ]
            })
            .collect();
        tx.execute(&sql, &args).await?;
    }
    Ok(())
}
