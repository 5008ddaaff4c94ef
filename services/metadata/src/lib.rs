//! The metadata service: the single source of truth for what is committed.
//!
//! It holds topics and their partitions, sequences offsets when ingest commits a segment,
//! keeps the segment index (which offsets live in which object, at which row group and
//! byte range), committed consumer-group offsets, and wakes readers when a partition's
//! high watermark moves. [`MetadataStore`] is the API every role uses; [`SqliteStore`] is
//! the embedded implementation. A PostgreSQL store and a network client implement the
//! same trait. This crate knows nothing of the segment format or object stores.

mod api;
mod error;
mod model;
mod names;
mod rows;
mod security;
mod sequence;
mod sql;
mod store;
mod watch;

pub use error::{ErrorKind, MetadataError, Result};
pub use model::{
    ChunkCommit, ChunkEntry, ChunkOutcome, GroupOffset, NodeInfo, PartitionOffsets, ProducerBatch,
    ProducerIdentity, SegmentCommit, SegmentRef, TimestampType, Topic, TopicConfig,
};
pub use names::{MAX_TOPIC_NAME_LEN, validate_group_id, validate_topic_name};
pub use security::{
    ANY_HOST, AclBinding, AclFilter, AclOperation, AclPermission, CLUSTER_RESOURCE, PatternType,
    ResourceType, ScramCredential, ScramMechanism, WILDCARD,
};
pub use sql::{PgLease, PostgresStore, SqlStore, SqliteStore};
pub use store::{
    CatalogStore, CompactionStore, GroupOffsetStore, LogStore, MetadataStore, NodeStore,
    ProducerStore, SecurityStore, Watch,
};
pub use watch::{WatchEvent, Watchers};
