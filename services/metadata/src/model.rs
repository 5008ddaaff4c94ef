use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::Result;

pub use crate::topic_config::{TimestampType, TopicConfig};

/// A topic as the metadata service knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Topic {
    /// Stable for the topic's whole life; a topic re-created under the same name gets a new id.
    pub id: Uuid,
    pub name: String,
    pub partitions: i32,
    pub config: TopicConfig,
    pub created_at_ms: i64,
}

/// The offset range of one partition: records live at `log_start_offset..high_watermark`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionOffsets {
    pub partition: i32,
    pub log_start_offset: i64,
    /// The offset the next committed record will get.
    pub high_watermark: i64,
    /// The first offset of the oldest open transaction in the partition, else the high
    /// watermark: read_committed consumers read up to it.
    pub last_stable_offset: i64,
}

/// One chunk of a segment to commit: the records of one (topic, partition) pair.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkCommit {
    pub topic: String,
    pub partition: i32,
    pub record_count: u32,
    pub row_group: u32,
    pub byte_start: u64,
    pub byte_len: u64,
    pub min_timestamp_ms: i64,
    pub max_timestamp_ms: i64,
    /// Set when the chunk is one batch of an idempotent producer: its sequence numbers
    /// are checked in the commit transaction.
    pub producer: Option<ProducerBatch>,
    /// What kind of batch the chunk is (a transaction's records, or its marker).
    #[serde(default)]
    pub kind: BatchKind,
}

/// What a chunk's batch is, as Kafka's batch attributes say it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum BatchKind {
    /// Records outside any transaction.
    #[default]
    Plain,
    /// Records of a transaction (Kafka's transactional bit).
    Transactional,
    /// A transaction's commit or abort marker (Kafka's control batch, transactional too).
    Marker,
}

impl BatchKind {
    /// The number the index stores.
    pub fn code(self) -> i64 {
        match self {
            Self::Plain => 0,
            Self::Transactional => 1,
            Self::Marker => 2,
        }
    }

    pub fn from_code(code: i64) -> Option<Self> {
        match code {
            0 => Some(Self::Plain),
            1 => Some(Self::Transactional),
            2 => Some(Self::Marker),
            _ => None,
        }
    }
}

/// Identity and first sequence number of an idempotent producer's batch. The batch's
/// records carry sequences `base_sequence..base_sequence + record_count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ProducerBatch {
    pub producer_id: i64,
    pub epoch: i16,
    pub base_sequence: i32,
}

/// What a commit did with one chunk.
#[derive(Debug, Serialize, Deserialize)]
pub enum ChunkOutcome {
    /// Committed: its records got `base_offset..base_offset + record_count`.
    Committed { base_offset: i64 },
    /// An idempotent producer's batch that was already committed (a retry): nothing was
    /// added; its records kept the offsets they got the first time.
    Duplicate { base_offset: i64 },
    /// Refused (sequence gap, fenced or unknown producer); nothing of it is visible.
    Rejected(#[serde(serialize_with = "portable_error")] crate::error::MetadataError),
}

/// Serialises an error as it can cross the network (see
/// [`MetadataError::into_portable`](crate::MetadataError::into_portable)).
fn portable_error<S: serde::Serializer>(
    error: &crate::error::MetadataError,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    use crate::error::MetadataError;
    match error {
        MetadataError::Unavailable { .. } | MetadataError::Database { .. } => {
            MetadataError::Service {
                kind: error.kind(),
                message: error.to_string(),
            }
            .serialize(serializer)
        }
        other => other.serialize(serializer),
    }
}

/// What a partition remembers of one producer that wrote to it (DescribeProducers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProducerState {
    pub producer_id: i64,
    /// The epoch of its last batch here.
    pub epoch: i16,
    /// The sequence number of the last record of its last batch here.
    pub last_sequence: i32,
    /// Where that batch starts.
    pub last_base_offset: i64,
    /// The first offset here of its open transaction, if it has one.
    #[serde(default)]
    pub txn_start_offset: Option<i64>,
}

/// Where a transactional id stands (decision 0008).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransactionState {
    pub transactional_id: String,
    pub producer_id: i64,
    pub epoch: i16,
    /// Whether a transaction is open (partitions or offsets were added and it has not
    /// ended).
    pub open: bool,
    /// When the open transaction began (its first AddPartitions or AddOffsets), in ms.
    pub started_at_ms: Option<i64>,
    /// The producer's `transaction.timeout.ms`.
    pub timeout_ms: i64,
    /// The partitions the open transaction added, sorted.
    pub partitions: Vec<(String, i32)>,
    /// The consumer groups whose offsets it commits, sorted.
    pub groups: Vec<String>,
    pub updated_at_ms: i64,
}

/// How a transaction ends: the producer ending it and whether it commits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransactionEnd {
    pub transactional_id: String,
    pub producer: ProducerIdentity,
    pub commit: bool,
}

/// An aborted transaction's records in a partition: producer `producer_id`'s
/// transactional batches from `first_offset` up to its abort marker at `last_offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AbortedTransaction {
    pub producer_id: i64,
    pub first_offset: i64,
    pub last_offset: i64,
}

/// A producer id and epoch handed out to an idempotent producer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProducerIdentity {
    pub producer_id: i64,
    pub epoch: i16,
}

/// A segment object that ingest has written and now commits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentCommit {
    /// Object key under the store's prefix.
    pub key: String,
    pub size: u64,
    pub footer_len: u64,
    /// CRC-32C of the footer bytes; readers check it before decoding the footer.
    #[serde(default)]
    pub footer_crc: Option<u32>,
    pub chunks: Vec<ChunkCommit>,
}

/// The object a chunk lives in.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SegmentRef {
    pub key: String,
    pub size: u64,
    pub footer_len: u64,
    /// CRC-32C of the footer bytes (the last `footer_len` bytes); `None` for objects
    /// indexed before it was recorded.
    #[serde(default)]
    pub footer_crc: Option<u32>,
}

/// One entry of the segment index: offsets `base_offset..base_offset + record_count` of a
/// partition live in row group `row_group` of `segment`, at `byte_start..+byte_len`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkEntry {
    pub partition: i32,
    pub base_offset: i64,
    pub record_count: u32,
    pub segment: SegmentRef,
    pub row_group: u32,
    pub byte_start: u64,
    pub byte_len: u64,
    pub min_timestamp_ms: i64,
    pub max_timestamp_ms: i64,
    /// The producer batch the chunk holds (producer id, epoch, first sequence), for
    /// chunks of idempotent and transactional producers committed since the index kept it.
    #[serde(default)]
    pub producer: Option<ProducerBatch>,
    #[serde(default)]
    pub kind: BatchKind,
}

impl ChunkEntry {
    /// One past the last offset in this chunk.
    pub fn end_offset(&self) -> i64 {
        self.base_offset + i64::from(self.record_count)
    }
}

/// What a node does. A node runs any set of roles; `silt dev` runs them all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Serves the metadata API and the group coordinator.
    Metadata,
    /// Accepts records (the Kafka and HTTP doors' produce side).
    Ingest,
    /// Serves fetches.
    Reader,
    /// Merges segments into the lake layout, applies retention, collects garbage.
    Compactor,
}

impl Role {
    /// Every role, in the order a node starts them.
    pub const ALL: [Role; 4] = [Role::Metadata, Role::Ingest, Role::Reader, Role::Compactor];

    pub fn name(self) -> &'static str {
        match self {
            Self::Metadata => "metadata",
            Self::Ingest => "ingest",
            Self::Reader => "reader",
            Self::Compactor => "compactor",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|r| r.name() == s.trim())
            .ok_or_else(|| {
                let known: Vec<&str> = Self::ALL.iter().map(|r| r.name()).collect();
                format!("unknown role '{s}'; known: {}", known.join(", "))
            })
    }
}

/// A Silt node as the cluster knows it: where Kafka clients and HTTP callers reach it,
/// and what it does. Nodes announce themselves by heartbeat and leave the list when they
/// stop.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// The node's Kafka broker id.
    pub node_id: i32,
    /// Advertised Kafka address.
    pub kafka_host: String,
    pub kafka_port: u16,
    /// Base URL of the node's HTTP API.
    pub http_url: String,
    /// Roles the node runs (ingest, reader, compactor).
    pub roles: Vec<Role>,
    /// Availability zone or rack, if known (Kafka's `broker.rack`).
    pub rack: Option<String>,
}

impl NodeInfo {
    /// Whether the node runs `role`.
    pub fn has_role(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }
}

/// A consumer group's committed position in one partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupOffset {
    pub topic: String,
    pub partition: i32,
    /// The next offset the group will read.
    pub offset: i64,
    pub metadata: Option<String>,
    pub commit_time_ms: i64,
}
