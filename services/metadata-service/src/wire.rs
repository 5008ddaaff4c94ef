//! What crosses the network: one request enum, one response enum, and the frames of the
//! change feed, all encoded as MessagePack with named fields (compact, and tolerant of
//! fields added later). Decision record 0004 explains the choice.

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use silt_groups::{
    ConsumerHeartbeat, ConsumerHeartbeatResponse, GroupDescription, GroupError, GroupSummary,
    JoinRequest, JoinResponse, SyncRequest,
};
use silt_metadata::{
    AclBinding, ChunkEntry, ChunkOutcome, GroupOffset, MetadataError, NodeInfo, PartitionOffsets,
    ProducerIdentity, ScramCredential, ScramMechanism, SegmentCommit, Topic, TopicConfig,
    WatchEvent,
};

/// Path of the request endpoint.
pub const RPC_PATH: &str = "/rpc/v1";
/// Path of the change feed.
pub const FEED_PATH: &str = "/feed/v1";
/// Path of the health endpoint (JSON: whether this process is the active one).
pub const HEALTH_PATH: &str = "/health";

#[derive(Debug, Serialize, Deserialize)]
pub enum Request {
    CreateTopic {
        name: String,
        partitions: i32,
        config: TopicConfig,
    },
    DeleteTopic {
        name: String,
    },
    SetTopicConfig {
        name: String,
        config: TopicConfig,
    },
    AddPartitions {
        name: String,
        partitions: i32,
    },
    Topic {
        name: String,
    },
    Topics,
    PartitionOffsets {
        topic: String,
    },
    PartitionOffset {
        topic: String,
        partition: i32,
    },
    CommitSegment(SegmentCommit),
    InitProducerId,
    ChunksFrom {
        topic: String,
        partition: i32,
        offset: i64,
        limit: u32,
    },
    ChunkForTimestamp {
        topic: String,
        partition: i32,
        timestamp_ms: i64,
    },
    CommitGroupOffsets {
        group: String,
        offsets: Vec<GroupOffset>,
    },
    GroupOffsets {
        group: String,
    },
    DeleteGroupOffsets {
        group: String,
        partitions: Option<Vec<(String, i32)>>,
    },
    Groups,
    RawChunks {
        topic: String,
        partition: i32,
        before_ms: i64,
        limit: u32,
    },
    ReplaceChunks {
        topic: String,
        partition: i32,
        replaced: Vec<ChunkEntry>,
        new: Vec<ChunkEntry>,
    },
    AdvanceLogStart {
        topic: String,
        partition: i32,
        offset: i64,
    },
    UnreferencedSegments {
        grace_ms: u64,
        limit: u32,
    },
    ForgetSegments {
        keys: Vec<String>,
    },
    KnownSegments {
        keys: Vec<String>,
    },
    HeartbeatNode {
        node: NodeInfo,
        ttl_ms: u64,
    },
    RemoveNode {
        node_id: i32,
    },
    LiveNodes,
    // The group coordinator (it runs in the active metadata process).
    Join(JoinRequest),
    Sync(SyncRequest),
    Heartbeat {
        group_id: String,
        member_id: String,
        instance: Option<String>,
        generation: i32,
    },
    Leave {
        group_id: String,
        members: Vec<(String, Option<String>)>,
    },
    CommitOffsets {
        group_id: String,
        member_id: String,
        instance: Option<String>,
        generation: i32,
        offsets: Vec<GroupOffset>,
    },
    FetchOffsets {
        group_id: String,
    },
    ListGroups,
    DescribeGroup {
        group_id: String,
    },
    DeleteGroup {
        group_id: String,
    },
    DeleteOffsets {
        group_id: String,
        partitions: Vec<(String, i32)>,
    },
    ConsumerHeartbeat(ConsumerHeartbeat),
    SetScramCredential(ScramCredential),
    DeleteScramCredential {
        user: String,
        mechanism: ScramMechanism,
    },
    ScramCredential {
        user: String,
        mechanism: ScramMechanism,
    },
    ScramCredentials,
    CreateAcls(Vec<AclBinding>),
    DeleteAcls(Vec<AclBinding>),
    Acls,
    ClusterSecret {
        name: String,
        proposed: Vec<u8>,
    },
}

impl Request {
    /// Whether sending the request twice has the effect of sending it once, so the client
    /// may retry it when it cannot tell whether the first attempt arrived. Segment commits
    /// are: the store answers a commit of an object key it already holds as the first time.
    pub fn is_idempotent(&self) -> bool {
        match self {
            Self::Topic { .. }
            | Self::Topics
            | Self::PartitionOffsets { .. }
            | Self::PartitionOffset { .. }
            | Self::CommitSegment(_)
            | Self::InitProducerId
            | Self::ChunksFrom { .. }
            | Self::ChunkForTimestamp { .. }
            | Self::CommitGroupOffsets { .. }
            | Self::GroupOffsets { .. }
            | Self::DeleteGroupOffsets { .. }
            | Self::Groups
            | Self::SetTopicConfig { .. }
            | Self::RawChunks { .. }
            | Self::AdvanceLogStart { .. }
            | Self::UnreferencedSegments { .. }
            | Self::ForgetSegments { .. }
            | Self::KnownSegments { .. }
            | Self::HeartbeatNode { .. }
            | Self::RemoveNode { .. }
            | Self::LiveNodes
            | Self::FetchOffsets { .. }
            | Self::ListGroups
            | Self::DescribeGroup { .. }
            | Self::SetScramCredential(_)
            | Self::DeleteScramCredential { .. }
            | Self::ScramCredential { .. }
            | Self::ScramCredentials
            | Self::CreateAcls(_)
            | Self::DeleteAcls(_)
            | Self::Acls
            | Self::ClusterSecret { .. } => true,
            Self::CreateTopic { .. }
            | Self::DeleteTopic { .. }
            | Self::AddPartitions { .. }
            | Self::ReplaceChunks { .. }
            | Self::Join(_)
            | Self::Sync(_)
            | Self::Heartbeat { .. }
            | Self::Leave { .. }
            | Self::CommitOffsets { .. }
            | Self::DeleteGroup { .. }
            | Self::DeleteOffsets { .. }
            | Self::ConsumerHeartbeat(_) => false,
        }
    }

    /// Whether this is a group-coordinator request (answered with group errors).
    pub fn is_group(&self) -> bool {
        matches!(
            self,
            Self::Join(_)
                | Self::Sync(_)
                | Self::Heartbeat { .. }
                | Self::Leave { .. }
                | Self::CommitOffsets { .. }
                | Self::FetchOffsets { .. }
                | Self::ListGroups
                | Self::DescribeGroup { .. }
                | Self::DeleteGroup { .. }
                | Self::DeleteOffsets { .. }
                | Self::ConsumerHeartbeat(_)
        )
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub enum Response {
    Done,
    Topic(Topic),
    Topics(Vec<Topic>),
    Offsets(Vec<PartitionOffsets>),
    Offset(PartitionOffsets),
    Outcomes(Vec<ChunkOutcome>),
    Producer(ProducerIdentity),
    Chunks(Vec<ChunkEntry>),
    Chunk(Option<ChunkEntry>),
    GroupOffsets(Vec<GroupOffset>),
    Groups(Vec<String>),
    Keys(Vec<String>),
    Nodes(Vec<NodeInfo>),
    Join(JoinResponse),
    Sync(Result<Bytes, GroupError>),
    GroupDone(Result<(), GroupError>),
    Left(Vec<Result<(), GroupError>>),
    FetchedOffsets(Result<Vec<GroupOffset>, GroupError>),
    GroupList(Result<Vec<GroupSummary>, GroupError>),
    Described(Result<GroupDescription, GroupError>),
    ConsumerHeartbeat(Result<ConsumerHeartbeatResponse, GroupError>),
    Removed(bool),
    Count(u64),
    Credential(Option<ScramCredential>),
    Credentials(Vec<ScramCredential>),
    Acls(Vec<AclBinding>),
    Secret(Vec<u8>),
}

/// The body of every answer from the request endpoint.
pub type Answer = Result<Response, MetadataError>;

/// One frame of the change feed.
#[derive(Debug, Serialize, Deserialize)]
pub enum FeedFrame {
    /// First frame: the lease epoch of the process that serves the feed.
    Hello {
        epoch: i64,
    },
    Event(WatchEvent),
    /// Changes were dropped (the subscriber fell behind): wake every waiter.
    Resync,
    /// Sent every second so a silent connection is noticed.
    Tick,
}

/// A decoding or encoding failure.
#[derive(Debug, thiserror::Error)]
#[error("metadata wire format: {0}")]
pub struct WireError(String);

pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, WireError> {
    rmp_serde::to_vec_named(value).map_err(|e| WireError(e.to_string()))
}

pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, WireError> {
    rmp_serde::from_slice(bytes).map_err(|e| WireError(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use silt_metadata::ChunkCommit;

    #[test]
    fn requests_and_answers_survive_the_round_trip() {
        let commit = SegmentCommit {
            key: "segments/x.parquet".into(),
            size: 10,
            footer_len: 4,
            footer_crc: None,
            chunks: vec![ChunkCommit {
                topic: "t".into(),
                partition: 3,
                record_count: 7,
                row_group: 0,
                byte_start: 4,
                byte_len: 6,
                min_timestamp_ms: -1,
                max_timestamp_ms: i64::MAX,
                producer: None,
            }],
        };
        let bytes = encode(&Request::CommitSegment(commit.clone())).expect("encodes");
        match decode::<Request>(&bytes).expect("decodes") {
            Request::CommitSegment(c) => assert_eq!(c, commit),
            other => panic!("{other:?}"),
        }
        // A config with unset fields (skipped when serialised) still decodes.
        let config = TopicConfig {
            retention_ms: Some(5),
            ..TopicConfig::default()
        };
        let bytes = encode(&Request::CreateTopic {
            name: "t".into(),
            partitions: 2,
            config: config.clone(),
        })
        .expect("encodes");
        match decode::<Request>(&bytes).expect("decodes") {
            Request::CreateTopic { config: c, .. } => assert_eq!(c, config),
            other => panic!("{other:?}"),
        }
        let answer: Answer = Err(MetadataError::UnknownTopic { topic: "t".into() });
        let bytes = encode(&answer).expect("encodes");
        let back: Answer = decode(&bytes).expect("decodes");
        assert!(matches!(back, Err(MetadataError::UnknownTopic { topic }) if topic == "t"));
        let answer: Answer = Ok(Response::Outcomes(vec![
            ChunkOutcome::Committed { base_offset: 9 },
            ChunkOutcome::Rejected(MetadataError::ProducerFenced {
                producer_id: 1,
                epoch: 2,
                current: 3,
            }),
        ]));
        let back: Answer = decode(&encode(&answer).expect("encodes")).expect("decodes");
        match back {
            Ok(Response::Outcomes(o)) => {
                assert!(matches!(o[0], ChunkOutcome::Committed { base_offset: 9 }));
                assert!(matches!(
                    o[1],
                    ChunkOutcome::Rejected(MetadataError::ProducerFenced { current: 3, .. })
                ));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(decode::<Request>(b"\xff\x00garbage").is_err());
        assert!(decode::<Request>(b"").is_err());
    }
}
