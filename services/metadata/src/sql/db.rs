//! The little the shared SQL needs from a driver, over SQLite and PostgreSQL alike: bind
//! arguments, run a statement, read rows. Statements use `$1`-style placeholders, which
//! both drivers understand; both schemas keep integers as 64-bit and ids as text.

use sqlx::postgres::{PgPool, PgRow};
use sqlx::sqlite::{SqlitePool, SqliteRow};
use sqlx::{Postgres, Sqlite, Transaction};
use tokio::sync::MutexGuard;

use crate::error::Result;
use crate::rows::RowRead;

/// An argument of a statement.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Arg<'a> {
    Int(i64),
    OptInt(Option<i64>),
    Text(&'a str),
    OptText(Option<&'a str>),
    Bytes(&'a [u8]),
}

impl From<i64> for Arg<'_> {
    fn from(v: i64) -> Self {
        Self::Int(v)
    }
}

impl From<i32> for Arg<'_> {
    fn from(v: i32) -> Self {
        Self::Int(i64::from(v))
    }
}

impl From<u32> for Arg<'_> {
    fn from(v: u32) -> Self {
        Self::Int(i64::from(v))
    }
}

impl From<Option<i64>> for Arg<'_> {
    fn from(v: Option<i64>) -> Self {
        Self::OptInt(v)
    }
}

impl<'a> From<&'a str> for Arg<'a> {
    fn from(v: &'a str) -> Self {
        Self::Text(v)
    }
}

impl<'a> From<&'a String> for Arg<'a> {
    fn from(v: &'a String) -> Self {
        Self::Text(v)
    }
}

impl<'a> From<&'a Option<String>> for Arg<'a> {
    fn from(v: &'a Option<String>) -> Self {
        Self::OptText(v.as_deref())
    }
}

impl<'a> From<&'a [u8]> for Arg<'a> {
    fn from(v: &'a [u8]) -> Self {
        Self::Bytes(v)
    }
}

impl<'a> From<&'a Vec<u8>> for Arg<'a> {
    fn from(v: &'a Vec<u8>) -> Self {
        Self::Bytes(v)
    }
}

/// The arguments of a statement, in placeholder order: `args![a, b, c]`.
macro_rules! args {
    ($($arg:expr),* $(,)?) => {
        &[$($crate::sql::db::Arg::from($arg)),*][..]
    };
}
pub(crate) use args;

macro_rules! bind_all {
    ($query:expr, $args:expr) => {{
        let mut query = $query;
        for arg in $args {
            query = match *arg {
                Arg::Int(v) => query.bind(v),
                Arg::OptInt(v) => query.bind(v),
                Arg::Text(v) => query.bind(v),
                Arg::OptText(v) => query.bind(v),
                Arg::Bytes(v) => query.bind(v),
            };
        }
        query
    }};
}

/// A row of either driver.
pub(crate) enum Row {
    Sqlite(SqliteRow),
    Postgres(PgRow),
}

impl RowRead for Row {
    fn int(&self, column: &str) -> Result<i64> {
        match self {
            Self::Sqlite(r) => r.int(column),
            Self::Postgres(r) => r.int(column),
        }
    }
    fn text(&self, column: &str) -> Result<String> {
        match self {
            Self::Sqlite(r) => r.text(column),
            Self::Postgres(r) => r.text(column),
        }
    }
    fn opt_text(&self, column: &str) -> Result<Option<String>> {
        match self {
            Self::Sqlite(r) => r.opt_text(column),
            Self::Postgres(r) => r.opt_text(column),
        }
    }
    fn opt_int(&self, column: &str) -> Result<Option<i64>> {
        match self {
            Self::Sqlite(r) => r.opt_int(column),
            Self::Postgres(r) => r.opt_int(column),
        }
    }
    fn bytes(&self, column: &str) -> Result<Vec<u8>> {
        match self {
            Self::Sqlite(r) => r.bytes(column),
            Self::Postgres(r) => r.bytes(column),
        }
    }
}

/// A connection pool of either driver: statements outside a transaction (reads).
#[derive(Debug, Clone)]
pub(crate) enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// A write transaction of either driver. A SQLite one holds the store's writer lock until
/// it ends.
pub(crate) enum Tx<'a> {
    Sqlite(Transaction<'static, Sqlite>, MutexGuard<'a, ()>),
    Postgres(Transaction<'static, Postgres>),
}

impl Pool {
    pub(crate) async fn fetch_all(&self, sql: &str, args: &[Arg<'_>]) -> Result<Vec<Row>> {
        Ok(match self {
            Self::Sqlite(pool) => bind_all!(sqlx::query(sql), args)
                .fetch_all(pool)
                .await?
                .into_iter()
                .map(Row::Sqlite)
                .collect(),
            Self::Postgres(pool) => bind_all!(sqlx::query(sql), args)
                .fetch_all(pool)
                .await?
                .into_iter()
                .map(Row::Postgres)
                .collect(),
        })
    }

    pub(crate) async fn fetch_optional(&self, sql: &str, args: &[Arg<'_>]) -> Result<Option<Row>> {
        Ok(match self {
            Self::Sqlite(pool) => bind_all!(sqlx::query(sql), args)
                .fetch_optional(pool)
                .await?
                .map(Row::Sqlite),
            Self::Postgres(pool) => bind_all!(sqlx::query(sql), args)
                .fetch_optional(pool)
                .await?
                .map(Row::Postgres),
        })
    }

    pub(crate) async fn close(&self) {
        match self {
            Self::Sqlite(pool) => pool.close().await,
            Self::Postgres(pool) => pool.close().await,
        }
    }
}

impl Tx<'_> {
    pub(crate) async fn execute(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<u64> {
        Ok(match self {
            Self::Sqlite(tx, _) => bind_all!(sqlx::query(sql), args)
                .execute(&mut **tx)
                .await?
                .rows_affected(),
            Self::Postgres(tx) => bind_all!(sqlx::query(sql), args)
                .execute(&mut **tx)
                .await?
                .rows_affected(),
        })
    }

    pub(crate) async fn fetch_all(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<Vec<Row>> {
        Ok(match self {
            Self::Sqlite(tx, _) => bind_all!(sqlx::query(sql), args)
                .fetch_all(&mut **tx)
                .await?
                .into_iter()
                .map(Row::Sqlite)
                .collect(),
            Self::Postgres(tx) => bind_all!(sqlx::query(sql), args)
                .fetch_all(&mut **tx)
                .await?
                .into_iter()
                .map(Row::Postgres)
                .collect(),
        })
    }

    pub(crate) async fn fetch_optional(
        &mut self,
        sql: &str,
        args: &[Arg<'_>],
    ) -> Result<Option<Row>> {
        Ok(match self {
            Self::Sqlite(tx, _) => bind_all!(sqlx::query(sql), args)
                .fetch_optional(&mut **tx)
                .await?
                .map(Row::Sqlite),
            Self::Postgres(tx) => bind_all!(sqlx::query(sql), args)
                .fetch_optional(&mut **tx)
                .await?
                .map(Row::Postgres),
        })
    }

    /// The first row, which must exist.
    pub(crate) async fn fetch_one(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<Row> {
        self.fetch_optional(sql, args)
            .await?
            .ok_or_else(|| crate::error::MetadataError::Corrupt {
                reason: format!("no row for: {sql}"),
            })
    }

    pub(crate) async fn commit(self) -> Result<()> {
        match self {
            Self::Sqlite(tx, _guard) => tx.commit().await?,
            Self::Postgres(tx) => tx.commit().await?,
        }
        Ok(())
    }
}
