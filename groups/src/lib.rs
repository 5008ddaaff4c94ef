//! The consumer-group coordinator (Kafka's classic group protocol).
//!
//! Members of a group join, the coordinator picks a leader and a protocol all members
//! support, the leader computes the assignment (assignment stays on the client, so the
//! coordinator is protocol-generic: range, roundrobin and cooperative-sticky all work) and
//! hands it out through SyncGroup; heartbeats keep members alive, and members that stop
//! heartbeating are removed after their session timeout. Generations,
//! REBALANCE_IN_PROGRESS, ILLEGAL_GENERATION, UNKNOWN_MEMBER_ID, the member-id round trip of
//! KIP-394 and static membership (KIP-345) behave as in Kafka.
//!
//! Membership lives in memory on the coordinating node and is rebuilt by clients
//! rejoining after a restart, as after a Kafka coordinator failover; committed offsets are
//! durable in the metadata service. Used by the Kafka door (the protocol) and the HTTP door
//! (describing groups). Depends on `silt-metadata`.

mod consumer;
mod coordinator;
mod error;
mod service;
mod state;

pub use consumer::{
    HeartbeatRequest as ConsumerHeartbeat, HeartbeatResponse as ConsumerHeartbeatResponse,
    TopicInfo, TopicPartitions,
};
pub use coordinator::{
    Coordinator, GroupConfig, GroupDescription, GroupSummary, JoinRequest, JoinResponse,
    MemberDescription, SyncRequest,
};
pub use error::GroupError;
pub use service::GroupService;
pub use state::GroupState;
