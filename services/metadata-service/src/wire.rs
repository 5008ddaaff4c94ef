//! What crosses the network: one request enum (store calls, generated from the API table
//! in `silt_metadata::api`, and group-coordinator calls), one response enum, and the
//! frames of the change feed, all encoded as MessagePack with named fields (compact, and tolerant of
//! fields added later). Decision record 0004 explains the choice.

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use silt_groups::{
    ConsumerHeartbeat, ConsumerHeartbeatResponse, GroupDescription, GroupError, GroupSummary,
    JoinRequest, JoinResponse, SyncRequest,
};
use silt_metadata::{
    GroupOffset, MetadataError, NodeInfo, ScramCredential, SegmentCommit, TransactionEnd,
    WatchEvent,
};

/// Path of the request endpoint.
pub const RPC_PATH: &str = "/rpc/v1";
/// Path of the change feed.
pub const FEED_PATH: &str = "/feed/v1";
/// Path of the health endpoint (JSON: whether this process is the active one).
pub const HEALTH_PATH: &str = "/health";

/// Defines the store's half of the wire from the API table: one request variant per call
/// (its arguments in their owned form), one answer variant holding the call's answer, and
/// whether the call may be resent.
macro_rules! define_store_wire {
    ($(
        $(#[$trait_doc:meta])*
        $role:ident $(: $sup:ident)? {
            $(
                $(#[$doc:meta])*
                $policy:ident fn $method:ident($($arg:ident: $ty:ty $(as $wire:ty)?),* $(,)?) -> $ret:ty => $variant:ident;
            )*
        }
    )*) => {
        /// A call of the metadata store's API.
        #[derive(Debug, Serialize, Deserialize)]
        pub enum StoreRequest {
            $($(
                $variant { $($arg: wire_type!($ty $(, $wire)?)),* },
            )*)*
        }

        /// The answer to a [`StoreRequest`], in the variant of the same name.
        #[derive(Debug, Serialize, Deserialize)]
        pub enum StoreResponse {
            $($(
                $variant($ret),
            )*)*
        }

        impl StoreRequest {
            /// The call's name, as the metrics label it.
            pub fn name(&self) -> &'static str {
                match self {
                    $($(
                        Self::$variant { .. } => stringify!($method),
                    )*)*
                }
            }

            /// Whether sending the request twice has the effect of sending it once, so the
            /// client may retry it when it cannot tell whether the first attempt arrived.
            pub fn is_idempotent(&self) -> bool {
                match self {
                    $($(
                        Self::$variant { .. } => retried!($policy),
                    )*)*
                }
            }
        }
    };
}

/// The wire type of an argument: the one named after `as`, else its own.
macro_rules! wire_type {
    ($ty:ty) => {
        $ty
    };
    ($ty:ty, $wire:ty) => {
        $wire
    };
}

/// Whether a call of this policy may be resent.
macro_rules! retried {
    (retry) => {
        true
    };
    (once) => {
        false
    };
}

silt_metadata::metadata_api!(define_store_wire);

/// A borrowed argument of a store call and the owned form that carries it.
pub trait WireArg<'a>: Sized {
    type Wire;
    fn to_wire(&self) -> Self::Wire;
    fn from_wire(wire: &'a Self::Wire) -> Self;
}

impl<'a> WireArg<'a> for &'a str {
    type Wire = String;
    fn to_wire(&self) -> String {
        (*self).to_owned()
    }
    fn from_wire(wire: &'a String) -> Self {
        wire
    }
}

impl<'a, T: Clone> WireArg<'a> for &'a [T] {
    type Wire = Vec<T>;
    fn to_wire(&self) -> Vec<T> {
        self.to_vec()
    }
    fn from_wire(wire: &'a Vec<T>) -> Self {
        wire
    }
}

impl<'a, T: Clone> WireArg<'a> for Option<&'a [T]> {
    type Wire = Option<Vec<T>>;
    fn to_wire(&self) -> Option<Vec<T>> {
        self.map(<[T]>::to_vec)
    }
    fn from_wire(wire: &'a Option<Vec<T>>) -> Self {
        wire.as_deref()
    }
}

/// Arguments passed by reference to a value that crosses as a copy of itself.
macro_rules! wire_by_clone {
    ($($ty:ty),*) => {$(
        impl<'a> WireArg<'a> for &'a $ty {
            type Wire = $ty;
            fn to_wire(&self) -> $ty {
                (*self).clone()
            }
            fn from_wire(wire: &'a $ty) -> Self {
                wire
            }
        }
    )*};
}

wire_by_clone!(SegmentCommit, NodeInfo, ScramCredential, TransactionEnd);

/// A group-coordinator call (answered with group errors, which travel inside the answer).
#[derive(Debug, Serialize, Deserialize)]
pub enum GroupRequest {
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
    /// Checks a transactional offset commit's member and generation (KIP-447).
    CheckTxnCommit {
        group_id: String,
        member_id: String,
        instance: Option<String>,
        generation: i32,
    },
}

impl GroupRequest {
    /// The call's name, as the metrics label it.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Join(_) => "join_group",
            Self::Sync(_) => "sync_group",
            Self::Heartbeat { .. } => "heartbeat",
            Self::Leave { .. } => "leave_group",
            Self::CommitOffsets { .. } => "commit_offsets",
            Self::FetchOffsets { .. } => "fetch_offsets",
            Self::ListGroups => "list_groups",
            Self::DescribeGroup { .. } => "describe_group",
            Self::DeleteGroup { .. } => "delete_group",
            Self::DeleteOffsets { .. } => "delete_offsets",
            Self::ConsumerHeartbeat(_) => "consumer_group_heartbeat",
            Self::CheckTxnCommit { .. } => "check_txn_commit",
        }
    }

    /// Whether sending the request twice has the effect of sending it once.
    pub fn is_idempotent(&self) -> bool {
        matches!(
            self,
            Self::FetchOffsets { .. }
                | Self::ListGroups
                | Self::DescribeGroup { .. }
                | Self::CheckTxnCommit { .. }
        )
    }
}

/// The answer to a [`GroupRequest`].
#[derive(Debug, Serialize, Deserialize)]
pub enum GroupResponse {
    Join(JoinResponse),
    Sync(Result<Bytes, GroupError>),
    Done(Result<(), GroupError>),
    Left(Vec<Result<(), GroupError>>),
    FetchedOffsets(Result<Vec<GroupOffset>, GroupError>),
    GroupList(Result<Vec<GroupSummary>, GroupError>),
    Described(Result<GroupDescription, GroupError>),
    ConsumerHeartbeat(Result<ConsumerHeartbeatResponse, GroupError>),
}

/// What the request endpoint takes.
#[derive(Debug, Serialize, Deserialize)]
pub enum Request {
    Store(StoreRequest),
    Group(GroupRequest),
}

impl Request {
    /// The call's name, as the metrics label it.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Store(request) => request.name(),
            Self::Group(request) => request.name(),
        }
    }

    /// Whether sending the request twice has the effect of sending it once, so the client
    /// may retry it when it cannot tell whether the first attempt arrived. Segment commits
    /// are: the store answers a commit of an object key it already holds as the first time.
    pub fn is_idempotent(&self) -> bool {
        match self {
            Self::Store(request) => request.is_idempotent(),
            Self::Group(request) => request.is_idempotent(),
        }
    }

    /// Whether this is a group-coordinator request (answered with group errors).
    pub fn is_group(&self) -> bool {
        matches!(self, Self::Group(_))
    }
}

/// What the request endpoint answers (inside [`Answer`]).
#[derive(Debug, Serialize, Deserialize)]
pub enum Response {
    Store(StoreResponse),
    Group(GroupResponse),
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
    use silt_metadata::{ChunkCommit, ChunkOutcome, TopicConfig};

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
                kind: silt_metadata::BatchKind::Plain,
            }],
        };
        let bytes = encode(&Request::Store(StoreRequest::CommitSegment {
            segment: commit.clone(),
        }))
        .expect("encodes");
        match decode::<Request>(&bytes).expect("decodes") {
            Request::Store(StoreRequest::CommitSegment { segment }) => assert_eq!(segment, commit),
            other => panic!("{other:?}"),
        }
        // A config with unset fields (skipped when serialised) still decodes.
        let config = TopicConfig {
            retention_ms: Some(5),
            ..TopicConfig::default()
        };
        let bytes = encode(&Request::Store(StoreRequest::CreateTopic {
            name: "t".into(),
            partitions: 2,
            config: config.clone(),
        }))
        .expect("encodes");
        match decode::<Request>(&bytes).expect("decodes") {
            Request::Store(StoreRequest::CreateTopic { config: c, .. }) => assert_eq!(c, config),
            other => panic!("{other:?}"),
        }
        let answer: Answer = Err(MetadataError::UnknownTopic { topic: "t".into() });
        let bytes = encode(&answer).expect("encodes");
        let back: Answer = decode(&bytes).expect("decodes");
        assert!(matches!(back, Err(MetadataError::UnknownTopic { topic }) if topic == "t"));
        let answer: Answer = Ok(Response::Store(StoreResponse::CommitSegment(vec![
            ChunkOutcome::Committed { base_offset: 9 },
            ChunkOutcome::Rejected(MetadataError::ProducerFenced {
                producer_id: 1,
                epoch: 2,
                current: 3,
            }),
        ])));
        let back: Answer = decode(&encode(&answer).expect("encodes")).expect("decodes");
        match back {
            Ok(Response::Store(StoreResponse::CommitSegment(o))) => {
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
