//! The group API every front door uses: the in-process [`Coordinator`] or a client of the
//! coordinator running in the metadata service.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use silt_metadata::GroupOffset;

use crate::consumer::{HeartbeatRequest, HeartbeatResponse};
use crate::coordinator::{Coordinator, GroupDescription, GroupSummary};
use crate::error::GroupError;
use crate::state::{JoinRequest, JoinResponse, SyncRequest};

/// What the Kafka and HTTP doors ask of the group coordinator. Implemented by
/// [`Coordinator`] (in this process) and by the metadata-service client (the coordinator
/// of a cluster runs in the active metadata process, so every node sees the same groups).
#[async_trait]
pub trait GroupService: Send + Sync + 'static {
    /// JoinGroup; waits until the rebalance completes (or the member must rejoin).
    async fn join(&self, req: JoinRequest) -> JoinResponse;
    /// SyncGroup; waits for the leader's assignment.
    async fn sync(&self, req: SyncRequest) -> Result<Bytes, GroupError>;
    async fn heartbeat(
        &self,
        group_id: &str,
        member_id: &str,
        instance: Option<&str>,
        generation: i32,
    ) -> Result<(), GroupError>;
    /// Removes members; one result per (member id, instance id).
    async fn leave(
        &self,
        group_id: &str,
        members: &[(String, Option<String>)],
    ) -> Vec<Result<(), GroupError>>;
    async fn commit_offsets(
        &self,
        group_id: &str,
        member_id: &str,
        instance: Option<&str>,
        generation: i32,
        offsets: &[GroupOffset],
    ) -> Result<(), GroupError>;
    /// Checks a transactional offset commit's member and generation (KIP-447), storing
    /// nothing: see [`Coordinator::check_txn_commit`].
    async fn check_txn_commit(
        &self,
        group_id: &str,
        member_id: &str,
        instance: Option<&str>,
        generation: i32,
    ) -> Result<(), GroupError>;
    async fn fetch_offsets(&self, group_id: &str) -> Result<Vec<GroupOffset>, GroupError>;
    async fn list(&self) -> Result<Vec<GroupSummary>, GroupError>;
    async fn describe(&self, group_id: &str) -> Result<GroupDescription, GroupError>;
    async fn delete(&self, group_id: &str) -> Result<(), GroupError>;
    async fn delete_offsets(
        &self,
        group_id: &str,
        partitions: &[(String, i32)],
    ) -> Result<(), GroupError>;
    /// How often KIP-848 members should heartbeat.
    fn consumer_heartbeat_interval(&self) -> Duration;
    /// A KIP-848 ConsumerGroupHeartbeat, assigned over the current topics.
    async fn consumer_heartbeat(
        &self,
        req: HeartbeatRequest,
    ) -> Result<HeartbeatResponse, GroupError>;
}

#[async_trait]
impl GroupService for Coordinator {
    async fn join(&self, req: JoinRequest) -> JoinResponse {
        Coordinator::join(self, req).await
    }

    async fn sync(&self, req: SyncRequest) -> Result<Bytes, GroupError> {
        Coordinator::sync(self, req).await
    }

    async fn heartbeat(
        &self,
        group_id: &str,
        member_id: &str,
        instance: Option<&str>,
        generation: i32,
    ) -> Result<(), GroupError> {
        Coordinator::heartbeat(self, group_id, member_id, instance, generation)
    }

    async fn leave(
        &self,
        group_id: &str,
        members: &[(String, Option<String>)],
    ) -> Vec<Result<(), GroupError>> {
        Coordinator::leave(self, group_id, members)
    }

    async fn commit_offsets(
        &self,
        group_id: &str,
        member_id: &str,
        instance: Option<&str>,
        generation: i32,
        offsets: &[GroupOffset],
    ) -> Result<(), GroupError> {
        Coordinator::commit_offsets(self, group_id, member_id, instance, generation, offsets).await
    }

    async fn check_txn_commit(
        &self,
        group_id: &str,
        member_id: &str,
        instance: Option<&str>,
        generation: i32,
    ) -> Result<(), GroupError> {
        Coordinator::check_txn_commit(self, group_id, member_id, instance, generation)
    }

    async fn fetch_offsets(&self, group_id: &str) -> Result<Vec<GroupOffset>, GroupError> {
        Coordinator::fetch_offsets(self, group_id).await
    }

    async fn list(&self) -> Result<Vec<GroupSummary>, GroupError> {
        Coordinator::list(self).await
    }

    async fn describe(&self, group_id: &str) -> Result<GroupDescription, GroupError> {
        Coordinator::describe(self, group_id).await
    }

    async fn delete(&self, group_id: &str) -> Result<(), GroupError> {
        Coordinator::delete(self, group_id).await
    }

    async fn delete_offsets(
        &self,
        group_id: &str,
        partitions: &[(String, i32)],
    ) -> Result<(), GroupError> {
        Coordinator::delete_offsets(self, group_id, partitions).await
    }

    fn consumer_heartbeat_interval(&self) -> Duration {
        Coordinator::consumer_heartbeat_interval(self)
    }

    async fn consumer_heartbeat(
        &self,
        req: HeartbeatRequest,
    ) -> Result<HeartbeatResponse, GroupError> {
        Coordinator::consumer_heartbeat_current(self, req).await
    }
}
