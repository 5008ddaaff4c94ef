//! The metadata API as one table: every call, the role trait it belongs to, its
//! arguments, its answer, and whether it may be retried after a lost answer.
//!
//! [`metadata_api!`](crate::metadata_api) hands the table to a macro of the caller's
//! choosing. This crate turns it into the role traits ([`crate::store`]); the metadata
//! service turns the same table into its wire requests and answers, its client and its
//! server dispatch. Adding a call therefore means: a row here, its implementations in the
//! stores, and a conformance check — nothing else.
//!
//! Syntax of a role and its rows:
//!
//! ```text
//! Role[: Supertrait] {
//!     /// docs
//!     retry|once fn name(arg: Type [as WireType], ...) -> Answer => WireVariant;
//! }
//! ```
//!
//! `retry` marks a call that has the effect of one call when sent twice (reads, upserts,
//! segment commits keyed by object): the client may resend it when an answer is lost or
//! the store was briefly away. `once` calls are never resent blindly. A borrowed argument
//! names the owned type that carries it over the network (`name: &str as String`).

/// Invokes `$callback! { ... }` with the whole metadata API table.
#[macro_export]
macro_rules! metadata_api {
    ($callback:ident) => {
        $callback! {
            /// Topics: their names, partition counts and configs.
            CatalogStore {
                /// Creates a topic with `partitions` partitions, all empty.
                once fn create_topic(name: &str as String, partitions: i32, config: $crate::TopicConfig) -> $crate::Topic => CreateTopic;
                /// Deletes a topic and its index entries. Its objects are left for garbage
                /// collection.
                once fn delete_topic(name: &str as String) -> () => DeleteTopic;
                /// Replaces a topic's config.
                retry fn set_topic_config(name: &str as String, config: $crate::TopicConfig) -> $crate::Topic => SetTopicConfig;
                /// Grows a topic to `partitions` partitions (never shrinks it).
                once fn add_partitions(name: &str as String, partitions: i32) -> $crate::Topic => AddPartitions;
                /// The topic named `name`, or `UnknownTopic`.
                retry fn topic(name: &str as String) -> $crate::Topic => Topic;
                /// All topics, sorted by name.
                retry fn topics() -> Vec<$crate::Topic> => Topics;
            }
            /// The log: committing segments, the index of offsets, log starts and high
            /// watermarks (watching them is [`Watch`](crate::Watch)'s part).
            LogStore: Watch {
                /// Log start offset and high watermark of every partition of `topic`, by
                /// partition.
                retry fn partition_offsets(topic: &str as String) -> Vec<$crate::PartitionOffsets> => PartitionOffsets;
                /// Log start offset and high watermark of one partition.
                retry fn partition_offset(topic: &str as String, partition: i32) -> $crate::PartitionOffsets => PartitionOffset;
                /// Commits a segment: in one atomic transaction, assigns each chunk the next
                /// offsets of its partition and records it in the index. Chunks of
                /// idempotent producers have their sequence checked in the same
                /// transaction: a retried batch is answered with its original offsets, a
                /// gap or a fenced epoch refuses that chunk alone. Returns one outcome per
                /// chunk, in order. Fails as a whole (nothing visible) if any chunk's topic
                /// or partition does not exist. Committing an object key again answers as
                /// the first commit did, so a retry is safe.
                retry fn commit_segment(segment: &$crate::SegmentCommit as $crate::SegmentCommit) -> Vec<$crate::ChunkOutcome> => CommitSegment;
                /// Index entries of a partition in offset order, starting with the one
                /// that holds `offset` (or the first one after it), at most `limit`.
                retry fn chunks_from(topic: &str as String, partition: i32, offset: i64, limit: u32) -> Vec<$crate::ChunkEntry> => ChunksFrom;
                /// The first index entry of a partition (in offset order, at or after the
                /// log start) holding a record with timestamp >= `timestamp_ms`.
                retry fn chunk_for_timestamp(topic: &str as String, partition: i32, timestamp_ms: i64) -> Option<$crate::ChunkEntry> => ChunkForTimestamp;
                /// Bytes of stored data (index entries' byte ranges, raw and lake) of every
                /// partition of `topic`, by partition: what DescribeLogDirs reports.
                retry fn partition_sizes(topic: &str as String) -> Vec<(i32, u64)> => PartitionSizes;
                /// Aborted transactions of a partition whose range overlaps
                /// `from..to`, oldest first (Fetch's aborted-transaction list).
                retry fn aborted_transactions(topic: &str as String, partition: i32, from: i64, to: i64) -> Vec<$crate::AbortedTransaction> => AbortedTransactions;
            }
            /// What the compactor changes: raw chunks merged into lake objects, log starts
            /// moved by retention, objects nothing refers to any more.
            CompactionStore: LogStore {
                /// Index entries of a partition still in raw (ingest) segments written
                /// before `before_ms`, ending after `from`, in offset order, at most `limit`:
                /// what the compactor may merge. Plain records, and transactions' records
                /// and markers below the last stable offset (their transactions have ended).
                /// Stops at the first entry written at or after `before_ms`.
                retry fn raw_chunks(topic: &str as String, partition: i32, from: i64, before_ms: i64, limit: u32) -> Vec<$crate::ChunkEntry> => RawChunks;
                /// Swaps index entries for the entries of one lake object, in one
                /// transaction: `replaced` must be the partition's current entries for a
                /// run of offsets (contiguous), `new` the lake object's entries inside it
                /// (in order, with gaps where aborted records were dropped; none if every
                /// record was), clear of the run's transaction markers, which stay. Else
                /// nothing changes and `Stale` is returned. Readers see the old entries or
                /// the new, never both or neither.
                once fn replace_chunks(topic: &str as String, partition: i32, replaced: &[$crate::ChunkEntry] as Vec<$crate::ChunkEntry>, new: &[$crate::ChunkEntry] as Vec<$crate::ChunkEntry>) -> () => ReplaceChunks;
                /// Moves a partition's log start forward to `offset` (never back, never past
                /// the high watermark) and drops the index entries wholly below it
                /// (retention, DeleteRecords).
                retry fn advance_log_start(topic: &str as String, partition: i32, offset: i64) -> $crate::PartitionOffsets => AdvanceLogStart;
                /// Notes, from now, every segment no index entry refers to any more, and
                /// returns the object keys of those unreferenced for at least `grace` (safe
                /// to delete: reads that began while they were referenced are over), at
                /// most `limit`.
                retry fn unreferenced_segments(grace: std::time::Duration, limit: u32) -> Vec<String> => UnreferencedSegments;
                /// Forgets segments whose objects were deleted.
                retry fn forget_segments(keys: &[String] as Vec<String>) -> () => ForgetSegments;
                /// Which of `keys` are segments the index knows (the others are orphans).
                retry fn known_segments(keys: &[String] as Vec<String>) -> Vec<String> => KnownSegments;
            }
            /// Consumer groups' committed offsets (the coordinator's durable state).
            GroupOffsetStore {
                /// Stores a group's committed offsets (all or nothing). A negative offset
                /// (kafkajs's `resetOffsets` commits -2 for "earliest") clears the
                /// partition's committed offset: clients read a negative one as none and
                /// start from their reset policy.
                retry fn commit_group_offsets(group: &str as String, offsets: &[$crate::GroupOffset] as Vec<$crate::GroupOffset>) -> () => CommitGroupOffsets;
                /// A group's committed offsets, by topic and partition. Empty for an
                /// unknown group.
                retry fn group_offsets(group: &str as String) -> Vec<$crate::GroupOffset> => GroupOffsets;
                /// Deletes a group's committed offsets: all of them, or those of the given
                /// partitions.
                retry fn delete_group_offsets(group: &str as String, partitions: Option<&[(String, i32)]> as Option<Vec<(String, i32)>>) -> () => DeleteGroupOffsets;
                /// Ids of the groups that have committed offsets, sorted.
                retry fn groups() -> Vec<String> => Groups;
            }
            /// Producer identities (idempotence; transactions build on them).
            ProducerStore {
                /// Hands out a new producer id with epoch 0 (an idempotent producer's
                /// identity). A lost answer only wastes an id, so it may be retried.
                retry fn init_producer_id() -> $crate::ProducerIdentity => InitProducerId;
                /// The identity of the producer of transactional id `transactional_id`,
                /// whose transactions time out after `timeout`: the first time a new
                /// producer id at epoch 0, then the same id at the next epoch, which fences
                /// every older epoch (a new id at epoch 0 once the epochs run out). An open
                /// transaction stays open: the caller aborts it with the new identity
                /// (`end_transaction`) before handing that out, as Kafka's coordinator
                /// does. Not resent: a lost answer must not bump the epoch twice.
                /// The producers that wrote to a partition and whose batches it still
                /// remembers (for duplicate detection), by producer id, each with its
                /// last batch.
                retry fn partition_producers(topic: &str as String, partition: i32) -> Vec<$crate::ProducerState> => PartitionProducers;
                once fn init_transactional_producer(transactional_id: &str as String, timeout: std::time::Duration) -> $crate::ProducerIdentity => InitTransactionalProducer;
            }
            /// Kafka transactions: the coordinator's state and the ends of transactions
            /// (decision 0008).
            TransactionStore {
                /// Where transactional id `transactional_id` stands, if it was ever
                /// initialised.
                retry fn transaction(transactional_id: &str as String) -> Option<$crate::TransactionState> => Transaction;
                /// Adds `partitions` to `producer`'s transaction, opening one if none is
                /// open. Refused for an older epoch (fenced), another producer id, or a
                /// missing partition. Adding twice is adding once.
                retry fn add_partitions_to_transaction(transactional_id: &str as String, producer: $crate::ProducerIdentity, partitions: &[(String, i32)] as Vec<(String, i32)>) -> () => AddPartitionsToTransaction;
                /// Adds consumer group `group` to `producer`'s transaction (its offsets
                /// then commit with it), opening one if none is open.
                retry fn add_offsets_to_transaction(transactional_id: &str as String, producer: $crate::ProducerIdentity, group: &str as String) -> () => AddOffsetsToTransaction;
                /// Offsets of `group` that become the group's committed offsets when the
                /// transaction commits (and are dropped if it aborts). The group must have
                /// been added.
                retry fn txn_offset_commit(transactional_id: &str as String, producer: $crate::ProducerIdentity, group: &str as String, offsets: &[$crate::GroupOffset] as Vec<$crate::GroupOffset>) -> () => TxnOffsetCommit;
                /// Ends `end.producer`'s open transaction: commits `markers` (one marker
                /// chunk per partition of the transaction) and, in the same metadata
                /// transaction, writes the pending group offsets (commit) or records the
                /// aborted ranges (abort), and closes it. A resent call with the same
                /// markers object answers as the first and changes nothing.
                retry fn end_transaction(end: &$crate::TransactionEnd as $crate::TransactionEnd, markers: &$crate::SegmentCommit as $crate::SegmentCommit) -> Vec<$crate::ChunkOutcome> => EndTransaction;
                /// Every transactional id with its state (ListTransactions; timeouts).
                retry fn transactions() -> Vec<$crate::TransactionState> => Transactions;
                /// Fences the producer of a transaction that outlived its timeout: if
                /// `transactional_id`'s transaction opened at `started_at_ms` is still open,
                /// moves the id to its next epoch (checked and bumped in one metadata
                /// transaction, so a producer that ended it and opened another meanwhile is
                /// left alone) and answers the new identity, which then aborts it. Not
                /// resent: a lost answer must not bump twice.
                once fn fence_expired_transaction(transactional_id: &str as String, started_at_ms: i64) -> Option<$crate::ProducerIdentity> => FenceExpiredTransaction;
            }
            /// The live nodes of the cluster, renewed by heartbeat.
            NodeStore {
                /// Announces (or renews) a live node; it stays in `live_nodes` for `ttl`
                /// unless renewed.
                retry fn heartbeat_node(node: &$crate::NodeInfo as $crate::NodeInfo, ttl: std::time::Duration) -> () => HeartbeatNode;
                /// Removes a node from the live list at once (it is shutting down).
                retry fn remove_node(node_id: i32) -> () => RemoveNode;
                /// Nodes whose last heartbeat has not expired, by node id.
                retry fn live_nodes() -> Vec<$crate::NodeInfo> => LiveNodes;
            }
            /// Users' SCRAM credentials, ACL bindings and cluster-wide secrets.
            SecurityStore {
                /// Stores a user's SCRAM credential for its mechanism, replacing an earlier
                /// one.
                retry fn set_scram_credential(credential: &$crate::ScramCredential as $crate::ScramCredential) -> () => SetScramCredential;
                /// Deletes a user's credential for `mechanism`; false if there was none.
                retry fn delete_scram_credential(user: &str as String, mechanism: $crate::ScramMechanism) -> bool => DeleteScramCredential;
                /// A user's credential for `mechanism`, if any.
                retry fn scram_credential(user: &str as String, mechanism: $crate::ScramMechanism) -> Option<$crate::ScramCredential> => ScramCredential;
                /// Every stored credential, by user and mechanism.
                retry fn scram_credentials() -> Vec<$crate::ScramCredential> => ScramCredentials;
                /// Adds ACL bindings (one already stored is left as it is). Each is
                /// validated first; an invalid one adds nothing.
                retry fn create_acls(bindings: &[$crate::AclBinding] as Vec<$crate::AclBinding>) -> () => CreateAcls;
                /// Removes exactly these bindings (those not stored are ignored); returns
                /// how many were removed.
                retry fn delete_acls(bindings: &[$crate::AclBinding] as Vec<$crate::AclBinding>) -> u64 => DeleteAcls;
                /// Every stored ACL binding.
                retry fn acls() -> Vec<$crate::AclBinding> => Acls;
                /// The cluster-wide secret named `name`: `proposed` becomes it if there is
                /// none yet (the first caller's value wins, atomically), and every later
                /// call returns it.
                retry fn cluster_secret(name: &str as String, proposed: &[u8] as Vec<u8>) -> Vec<u8> => ClusterSecret;
            }
        }
    };
}
