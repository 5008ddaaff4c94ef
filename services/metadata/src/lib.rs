//! The metadata service: the single source of truth for what is committed.
//!
//! It holds topics and their partitions, sequences offsets when ingest commits a segment,
//! keeps the segment index (which offsets live in which object, at which row group and
//! byte range), committed consumer-group offsets, producer identities, live nodes, users
//! and ACLs, and wakes readers when a partition's high watermark moves.
//!
//! The API is a set of role traits ([`CatalogStore`], [`LogStore`], [`CompactionStore`],
//! [`GroupOffsetStore`], [`ProducerStore`], [`NodeStore`], [`SecurityStore`], [`Watch`];
//! [`MetadataStore`] is all of them), generated from the one table in [`metadata_api!`],
//! which the metadata service also turns into its wire protocol. [`SqlStore`] implements
//! every role on SQLite (embedded) or PostgreSQL (shared); the network client in
//! `silt-metadata-service` implements them too. Depends on sqlx (SQLite, PostgreSQL),
//! serde and tokio only; it knows nothing of the segment format, object stores or any
//! other Silt crate.

mod api;
mod clock;
mod counted;
mod error;
mod model;
mod names;
mod rows;
mod security;
mod sequence;
mod sql;
mod store;
mod topic_config;
mod watch;

pub use clock::{Clock, ManualClock, SystemClock, system_clock};
pub use counted::Counted;
pub use error::{ErrorKind, MetadataError, Result};
pub use model::{
    AbortedTransaction, BatchKind, ChunkCommit, ChunkEntry, ChunkOutcome, GroupOffset, NodeInfo,
    PartitionOffsets, ProducerBatch, ProducerIdentity, ProducerState, Role, SegmentCommit,
    SegmentRef, TimestampType, Topic, TopicConfig, TransactionEnd, TransactionState,
};
pub use names::{MAX_TOPIC_NAME_LEN, validate_group_id, validate_topic_name};
pub use security::{
    ANY_HOST, AclBinding, AclFilter, AclOperation, AclPermission, CLUSTER_RESOURCE, PatternType,
    ResourceType, ScramCredential, ScramMechanism, WILDCARD,
};
pub use sql::{PgLease, PostgresStore, SqlStore, SqliteStore};
pub use store::{
    CatalogStore, CompactionStore, GroupOffsetStore, LogStore, MetadataStore, NodeStore,
    ProducerStore, SecurityStore, TransactionStore, Watch,
};
pub use topic_config::{
    ConfigDef, ConfigSource, ConfigType, DescribedConfig, Effect, TOPIC_CONFIGS,
    TopicConfigDefaults, Valid, config_def,
};
pub use watch::{WatchEvent, Watchers};
