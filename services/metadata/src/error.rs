use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Coarse error classes for callers at the service boundary: whether to retry, fix the
/// request, or give up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorKind {
    /// Transient: the store could not be reached or was busy. Retry.
    Unavailable,
    /// The request is wrong (bad name, bad config). Do not retry as is.
    Invalid,
    /// The request conflicts with current state (topic already exists).
    Conflict,
    /// The named thing does not exist.
    NotFound,
    /// A bug or corrupt state.
    Internal,
}

impl ErrorKind {
    /// The kind in lower case, as metrics label it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Unavailable => "unavailable",
            Self::Invalid => "invalid",
            Self::Conflict => "conflict",
            Self::NotFound => "not_found",
            Self::Internal => "internal",
        }
    }
}

/// Every error crosses the network as itself (the metadata-service client returns the
/// variant the store returned), except the two that wrap a database driver error: those
/// travel as [`MetadataError::Service`] with their kind and message.
#[derive(Debug, Error, Serialize, Deserialize)]
pub enum MetadataError {
    #[error("topic '{topic}' already exists")]
    TopicExists { topic: String },
    #[error("topic '{topic}' does not exist")]
    UnknownTopic { topic: String },
    #[error("topic '{topic}' has no partition {partition}")]
    UnknownPartition { topic: String, partition: i32 },
    #[error("invalid topic name '{name}': {reason}")]
    InvalidTopicName {
        name: String,
        reason: Cow<'static, str>,
    },
    #[error("invalid group id: {reason}")]
    InvalidGroupId { reason: Cow<'static, str> },
    #[error("invalid partition count {partitions}: must be between 1 and {max}")]
    InvalidPartitionCount { partitions: i32, max: i32 },
    #[error("{reason}")]
    InvalidConfig { key: String, reason: String },
    #[error("invalid request: {reason}")]
    InvalidRequest { reason: String },
    #[error(
        "producer {producer_id} sent sequence {got} for {topic}/{partition}; {expected} was expected"
    )]
    OutOfOrderSequence {
        producer_id: i64,
        topic: String,
        partition: i32,
        expected: i32,
        got: i32,
    },
    #[error("producer {producer_id} epoch {epoch} is fenced by epoch {current}")]
    ProducerFenced {
        producer_id: i64,
        epoch: i16,
        current: i16,
    },
    #[error("unknown producer id {producer_id}")]
    UnknownProducerId { producer_id: i64 },
    /// A transactional request that does not fit the transaction's state (records for a
    /// partition not added, an end without an open transaction, another producer id).
    #[error("invalid transaction state: {reason}")]
    InvalidTxnState { reason: String },
    #[error("metadata store unavailable: {source}")]
    #[serde(skip)]
    Unavailable {
        #[source]
        source: sqlx::Error,
    },
    #[error("metadata store error: {source}")]
    #[serde(skip)]
    Database {
        #[source]
        source: sqlx::Error,
    },
    #[error("metadata is corrupt: {reason}")]
    Corrupt { reason: String },
    /// The state changed under a multi-step operation (a compaction raced retention):
    /// nothing was done; start again from fresh state.
    #[error("stale request: {reason}")]
    Stale { reason: String },
    /// This metadata process lost (or never held) the lease: another one is active.
    #[error("this metadata process is not the active one (epoch {epoch})")]
    NotActive { epoch: i64 },
    /// The metadata service failed or could not be reached; `kind` says whether to retry.
    #[error("metadata service: {message}")]
    Service { kind: ErrorKind, message: String },
}

impl MetadataError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::TopicExists { .. } => ErrorKind::Conflict,
            Self::UnknownTopic { .. } | Self::UnknownPartition { .. } => ErrorKind::NotFound,
            Self::InvalidTopicName { .. }
            | Self::InvalidGroupId { .. }
            | Self::InvalidPartitionCount { .. }
            | Self::InvalidConfig { .. }
            | Self::InvalidRequest { .. }
            | Self::OutOfOrderSequence { .. }
            | Self::UnknownProducerId { .. }
            | Self::InvalidTxnState { .. } => ErrorKind::Invalid,
            Self::ProducerFenced { .. } => ErrorKind::Conflict,
            Self::Unavailable { .. } => ErrorKind::Unavailable,
            Self::Database { .. } | Self::Corrupt { .. } => ErrorKind::Internal,
            Self::NotActive { .. } => ErrorKind::Unavailable,
            Self::Stale { .. } => ErrorKind::Conflict,
            Self::Service { kind, .. } => *kind,
        }
    }

    /// Whether retrying the same request may succeed.
    pub fn is_retriable(&self) -> bool {
        self.kind() == ErrorKind::Unavailable
    }

    /// The error as it can cross the network: driver errors become
    /// [`MetadataError::Service`] with their kind and message, the rest stay as they are.
    pub fn into_portable(self) -> Self {
        match self {
            Self::Unavailable { .. } | Self::Database { .. } => Self::Service {
                kind: self.kind(),
                message: self.to_string(),
            },
            other => other,
        }
    }
}

impl From<sqlx::Error> for MetadataError {
    fn from(source: sqlx::Error) -> Self {
        let transient = match &source {
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::WorkerCrashed => true,
            sqlx::Error::Database(db) => {
                let code = db.code();
                let code = code.as_deref().unwrap_or("");
                // PostgreSQL: connection exceptions (08xxx), the server shutting down or
                // starting (57P01-57P03), serialization failures and deadlocks (40001,
                // 40P01), too many connections (53300). SQLite: locked or busy.
                code.starts_with("08")
                    || matches!(
                        code,
                        "57P01" | "57P02" | "57P03" | "40001" | "40P01" | "53300"
                    )
                    || db.message().contains("locked")
                    || db.message().contains("busy")
            }
            _ => false,
        };
        if transient {
            Self::Unavailable { source }
        } else {
            Self::Database { source }
        }
    }
}

pub type Result<T, E = MetadataError> = std::result::Result<T, E>;
