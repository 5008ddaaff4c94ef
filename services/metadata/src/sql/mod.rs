//! The metadata store on SQL: one implementation of every role for SQLite (embedded, one
//! file) and PostgreSQL (shared by many nodes, or by a metadata service). The statements
//! and rules are written once; what truly differs lives in [`sqlite`] and [`postgres`]:
//! migrations, how a write transaction starts (SQLite's in-process writer lock,
//! PostgreSQL's lease-epoch check), and the set-based statements PostgreSQL runs for a
//! segment commit (locking every touched partition in one order, one insert for all
//! chunks) where SQLite runs one cheap statement per row.

mod catalog;
mod cluster;
mod compaction;
pub(crate) mod db;
mod log;
mod postgres;
mod sqlite;
mod transactions;

use std::sync::Arc;
use std::sync::atomic::AtomicI64;

use tokio::sync::Mutex;

use crate::clock::{Clock, system_clock};
use crate::error::{MetadataError, Result};
use crate::model::Topic;
use crate::rows::{TOPIC_COLUMNS, topic_from_row};
use crate::watch::Watchers;
use db::{Pool, Tx, args};

pub use postgres::PgLease;
pub(crate) use sqlite::MAX_PARTITIONS;

/// The metadata store on SQLite or PostgreSQL.
#[derive(Debug)]
pub struct SqlStore {
    pool: Pool,
    backend: Backend,
    watchers: Watchers,
    /// Creation times, heartbeat expiry, when segments stopped being referenced.
    clock: Arc<dyn Clock>,
}

/// The embedded store: [`SqlStore::open`] on a SQLite file.
pub type SqliteStore = SqlStore;
/// The shared store: [`SqlStore::connect`] to a PostgreSQL database.
pub type PostgresStore = SqlStore;

/// What one database needs beyond its pool.
#[derive(Debug)]
enum Backend {
    /// Writers are serialised in-process (SQLite has one writer anyway); readers run
    /// concurrently thanks to WAL.
    Sqlite { write: Mutex<()> },
    /// The lease epoch every write checks, or [`postgres::NO_FENCE`].
    Postgres { fence: AtomicI64 },
}

impl SqlStore {
    fn new(pool: Pool, backend: Backend) -> Self {
        Self {
            pool,
            backend,
            watchers: Watchers::default(),
            clock: system_clock(),
        }
    }

    /// Takes the time from `clock` instead of the system (tests).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// Closes the pool (on SQLite, checkpointing the WAL).
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Starts a write transaction: on SQLite under the writer lock and `BEGIN IMMEDIATE`
    /// (so it never has to upgrade a read lock), on PostgreSQL after checking the lease
    /// epoch when a fence is set.
    async fn begin_write(&self) -> Result<Tx<'_>> {
        match (&self.pool, &self.backend) {
            (Pool::Sqlite(pool), Backend::Sqlite { write }) => {
                let guard = write.lock().await;
                Ok(Tx::Sqlite(pool.begin_with("BEGIN IMMEDIATE").await?, guard))
            }
            (Pool::Postgres(pool), Backend::Postgres { fence }) => {
                postgres::begin_fenced(pool, fence).await
            }
            _ => Err(MetadataError::Corrupt {
                reason: "a store's pool and backend disagree".into(),
            }),
        }
    }

    /// Row locks where the database has them (` FOR UPDATE`), nothing on SQLite, whose
    /// writer lock already orders every write.
    fn for_update(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite { .. } => "",
            Backend::Postgres { .. } => " FOR UPDATE",
        }
    }

    async fn find_topic(&self, name: &str) -> Result<Option<Topic>> {
        let row = self
            .pool
            .fetch_optional(
                &format!("SELECT {TOPIC_COLUMNS} FROM topics WHERE name = $1"),
                args![name],
            )
            .await?;
        row.as_ref().map(topic_from_row).transpose()
    }

    async fn get_topic(&self, name: &str) -> Result<Topic> {
        self.find_topic(name)
            .await?
            .ok_or_else(|| MetadataError::UnknownTopic {
                topic: name.to_string(),
            })
    }

    /// The id of `topic`, checking it has `partition`.
    async fn topic_id(&self, topic: &str, partition: i32) -> Result<String> {
        let t = self.get_topic(topic).await?;
        if partition < 0 || partition >= t.partitions {
            return Err(MetadataError::UnknownPartition {
                topic: topic.to_string(),
                partition,
            });
        }
        Ok(t.id.to_string())
    }
}

/// A statement's `$n, $n+1, ...` placeholders for `count` arguments from `first`.
fn placeholders(first: usize, count: usize) -> String {
    (first..first + count)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}
