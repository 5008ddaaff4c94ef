use serde::{Deserialize, Serialize};
use silt_metadata::MetadataError;
use thiserror::Error;

/// Why a group request was refused; each maps to the Kafka error of the same name.
#[derive(Debug, Clone, Error, PartialEq, Eq, Serialize, Deserialize)]
pub enum GroupError {
    #[error("the member id is unknown to the group")]
    UnknownMemberId,
    #[error("generation {got} is not the group's generation {current}")]
    IllegalGeneration { got: i32, current: i32 },
    #[error("the group is rebalancing")]
    RebalanceInProgress,
    #[error("the member supports none of the group's protocols")]
    InconsistentGroupProtocol,
    #[error("session timeout {got_ms} ms is outside [{min_ms}, {max_ms}] ms")]
    InvalidSessionTimeout {
        got_ms: i32,
        min_ms: i32,
        max_ms: i32,
    },
    #[error("a member id is required: rejoin with the one given")]
    MemberIdRequired { member_id: String },
    #[error("another member uses this group.instance.id")]
    FencedInstanceId,
    #[error("the group does not exist")]
    GroupIdNotFound,
    #[error("the group still has members")]
    NonEmptyGroup,
    #[error("invalid group id")]
    InvalidGroupId,
    #[error("the member epoch is fenced: rejoin")]
    FencedMemberEpoch,
    #[error("the member epoch is stale: retry with the current one")]
    StaleMemberEpoch,
    #[error("another member still uses this instance id")]
    UnreleasedInstanceId,
    #[error("the server assignor is not supported (uniform, range)")]
    UnsupportedAssignor,
    #[error("the coordinator is shutting down")]
    CoordinatorNotAvailable,
    #[error("metadata: {0}")]
    Metadata(String),
    #[error("the principal may not use this group")]
    NotAuthorized,
    #[error("the principal may not describe topic {topic}")]
    TopicNotAuthorized { topic: String },
}

impl From<MetadataError> for GroupError {
    fn from(e: MetadataError) -> Self {
        match e {
            MetadataError::InvalidGroupId { .. } => Self::InvalidGroupId,
            other => Self::Metadata(other.to_string()),
        }
    }
}
