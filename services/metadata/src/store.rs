use async_trait::async_trait;
use std::time::Duration;

use tokio::sync::{broadcast, watch};

use crate::error::Result;
use crate::model::{
    ChunkEntry, ChunkOutcome, GroupOffset, NodeInfo, PartitionOffsets, ProducerIdentity,
    SegmentCommit, Topic, TopicConfig,
};
use crate::security::{AclBinding, ScramCredential, ScramMechanism};
use crate::watch::WatchEvent;

/// The metadata service API, used by every role: in-process over the embedded SQLite
/// store, or (later) through a network client to a shared service.
#[async_trait]
pub trait MetadataStore: Send + Sync + 'static {
    /// Creates a topic with `partitions` partitions, all empty.
    async fn create_topic(&self, name: &str, partitions: i32, config: TopicConfig)
    -> Result<Topic>;

    /// Deletes a topic and its index entries. Its objects are left for garbage collection.
    async fn delete_topic(&self, name: &str) -> Result<()>;

    /// Replaces a topic's config.
    async fn set_topic_config(&self, name: &str, config: TopicConfig) -> Result<Topic>;

    /// Grows a topic to `partitions` partitions (never shrinks it).
    async fn add_partitions(&self, name: &str, partitions: i32) -> Result<Topic>;

    /// The topic named `name`, or `UnknownTopic`.
    async fn topic(&self, name: &str) -> Result<Topic>;

    /// All topics, sorted by name.
    async fn topics(&self) -> Result<Vec<Topic>>;

    /// Log start offset and high watermark of every partition of `topic`, by partition.
    async fn partition_offsets(&self, topic: &str) -> Result<Vec<PartitionOffsets>>;

    /// Log start offset and high watermark of one partition.
    async fn partition_offset(&self, topic: &str, partition: i32) -> Result<PartitionOffsets>;

    /// Commits a segment: in one atomic transaction, assigns each chunk the next offsets of
    /// its partition and records it in the index. Chunks of idempotent producers have their
    /// sequence checked in the same transaction: a retried batch is answered with its
    /// original offsets, a gap or a fenced epoch refuses that chunk alone. Returns one
    /// outcome per chunk, in order. Fails as a whole (nothing visible) if any chunk's topic
    /// or partition does not exist.
    async fn commit_segment(&self, segment: &SegmentCommit) -> Result<Vec<ChunkOutcome>>;

    /// Hands out a new producer id with epoch 0 (an idempotent producer's identity).
    async fn init_producer_id(&self) -> Result<ProducerIdentity>;

    /// Index entries of a partition in offset order, starting with the one that holds
    /// `offset` (or the first one after it), at most `limit`.
    async fn chunks_from(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
        limit: u32,
    ) -> Result<Vec<ChunkEntry>>;

    /// The first index entry of a partition (in offset order, at or after the log start)
    /// holding a record with timestamp >= `timestamp_ms`.
    async fn chunk_for_timestamp(
        &self,
        topic: &str,
        partition: i32,
        timestamp_ms: i64,
    ) -> Result<Option<ChunkEntry>>;

    /// Stores a group's committed offsets (all or nothing).
    async fn commit_group_offsets(&self, group: &str, offsets: &[GroupOffset]) -> Result<()>;

    /// A group's committed offsets, by topic and partition. Empty for an unknown group.
    async fn group_offsets(&self, group: &str) -> Result<Vec<GroupOffset>>;

    /// Deletes a group's committed offsets: all of them, or those of the given partitions.
    async fn delete_group_offsets(
        &self,
        group: &str,
        partitions: Option<&[(String, i32)]>,
    ) -> Result<()>;

    /// Ids of the groups that have committed offsets, sorted.
    async fn groups(&self) -> Result<Vec<String>>;

    /// Index entries of a partition still in raw (ingest) segments written before
    /// `before_ms`, in offset order from the lowest, at most `limit`: what the compactor
    /// may merge. Stops at the first entry that is not such a one.
    async fn raw_chunks(
        &self,
        topic: &str,
        partition: i32,
        before_ms: i64,
        limit: u32,
    ) -> Result<Vec<ChunkEntry>>;

    /// Swaps index entries for the entries of one lake object, in one transaction:
    /// `replaced` must be the partition's current entries for exactly the offsets `new`
    /// covers (contiguous, same range), else nothing changes and `Conflict`-kind
    /// `InvalidRequest` is returned. Readers see the old entries or the new, never both or
    /// neither.
    async fn replace_chunks(
        &self,
        topic: &str,
        partition: i32,
        replaced: &[ChunkEntry],
        new: &[ChunkEntry],
    ) -> Result<()>;

    /// Moves a partition's log start forward to `offset` (never back, never past the high
    /// watermark) and drops the index entries wholly below it (retention, DeleteRecords).
    async fn advance_log_start(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
    ) -> Result<PartitionOffsets>;

    /// Notes, from now, every segment no index entry refers to any more, and returns the
    /// object keys of those unreferenced for at least `grace` (safe to delete: reads that
    /// began while they were referenced are over), at most `limit`.
    async fn unreferenced_segments(&self, grace: Duration, limit: u32) -> Result<Vec<String>>;

    /// Forgets segments whose objects were deleted.
    async fn forget_segments(&self, keys: &[String]) -> Result<()>;

    /// Which of `keys` are segments the index knows (the others are orphans).
    async fn known_segments(&self, keys: &[String]) -> Result<Vec<String>>;

    /// Announces (or renews) a live node; it stays in [`MetadataStore::live_nodes`] for
    /// `ttl` unless renewed.
    async fn heartbeat_node(&self, node: &NodeInfo, ttl: Duration) -> Result<()>;

    /// Removes a node from the live list at once (it is shutting down).
    async fn remove_node(&self, node_id: i32) -> Result<()>;

    /// Nodes whose last heartbeat has not expired, by node id.
    async fn live_nodes(&self) -> Result<Vec<NodeInfo>>;

    /// Stores a user's SCRAM credential for its mechanism, replacing an earlier one.
    async fn set_scram_credential(&self, credential: &ScramCredential) -> Result<()>;

    /// Deletes a user's credential for `mechanism`; false if there was none.
    async fn delete_scram_credential(&self, user: &str, mechanism: ScramMechanism) -> Result<bool>;

    /// A user's credential for `mechanism`, if any.
    async fn scram_credential(
        &self,
        user: &str,
        mechanism: ScramMechanism,
    ) -> Result<Option<ScramCredential>>;

    /// Every stored credential, by user and mechanism.
    async fn scram_credentials(&self) -> Result<Vec<ScramCredential>>;

    /// Adds ACL bindings (one already stored is left as it is). Each is validated first;
    /// an invalid one adds nothing.
    async fn create_acls(&self, bindings: &[AclBinding]) -> Result<()>;

    /// Removes exactly these bindings (those not stored are ignored); returns how many
    /// were removed.
    async fn delete_acls(&self, bindings: &[AclBinding]) -> Result<u64>;

    /// Every stored ACL binding.
    async fn acls(&self) -> Result<Vec<AclBinding>>;

    /// The cluster-wide secret named `name`: `proposed` becomes it if there is none yet
    /// (the first caller's value wins, atomically), and every later call returns it.
    async fn cluster_secret(&self, name: &str, proposed: &[u8]) -> Result<Vec<u8>>;

    /// Every high-watermark change and topic deletion from now on (what the metadata
    /// service streams to remote readers).
    fn watch_feed(&self) -> broadcast::Receiver<WatchEvent>;

    /// A receiver that changes whenever the high watermark of `topic`/`partition` moves.
    /// Subscribe first, then read the offsets, then wait: no commit is missed in between.
    fn watch(&self, topic: &str, partition: i32) -> watch::Receiver<i64>;
}
