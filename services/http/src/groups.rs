//! Consumer-group offsets: commit, and read back with lag.

use std::collections::HashMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use silt_groups::GroupError;
use silt_metadata::{
    AclOperation, CLUSTER_RESOURCE, GroupOffset, MetadataError, ResourceType, validate_group_id,
};
use utoipa::ToSchema;

use crate::error::HttpError;
use crate::extract::{ApiJson, ApiPath};
use crate::{AppState, Caller};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OffsetIn {
    pub topic: String,
    pub partition: i32,
    /// The next offset the group will read.
    pub offset: i64,
    pub metadata: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CommitOffsets {
    pub offsets: Vec<OffsetIn>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct OffsetOut {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub metadata: Option<String>,
    pub commit_time_ms: i64,
    /// Null when the topic or partition no longer exists.
    pub high_watermark: Option<i64>,
    /// Records the group has yet to read: high watermark minus committed offset.
    pub lag: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct GroupOffsets {
    pub group: String,
    pub offsets: Vec<OffsetOut>,
    /// Sum of the lag over all partitions.
    pub total_lag: i64,
}

#[utoipa::path(put, tag = "groups", operation_id = "groups_commit", summary = "Commit a group's offsets",
    path = "/v1/groups/{group}/offsets", params(("group" = String, Path, description = "Consumer group id: 1 to 255 bytes", min_length = 1, max_length = 255)),
    request_body = CommitOffsets,
    responses((status = 204), (status = 400, body = crate::ErrorBody), (status = 404, body = crate::ErrorBody)))]
pub(crate) async fn commit(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(group): ApiPath<String>,
    ApiJson(body): ApiJson<CommitOffsets>,
) -> Result<StatusCode, HttpError> {
    validate_group_id(&group)?;
    // Read on the group is checked with the route; committing also reads each topic.
    for o in &body.offsets {
        state.authorize(&caller, AclOperation::Read, ResourceType::Topic, &o.topic)?;
    }
    let now = state.ingest.clock().now_ms();
    let mut partitions: HashMap<String, i32> = HashMap::new();
    for o in &body.offsets {
        if !partitions.contains_key(&o.topic) {
            let topic = state.metadata.topic(&o.topic).await?;
            partitions.insert(o.topic.clone(), topic.partitions);
        }
        if o.offset < 0 {
            return Err(HttpError::bad_request(
                "invalid_request",
                format!(
                    "negative offset {} for {}/{}: commit the offset of the next record to read",
                    o.offset, o.topic, o.partition
                ),
            ));
        }
        if o.partition < 0 || o.partition >= partitions[&o.topic] {
            return Err(MetadataError::UnknownPartition {
                topic: o.topic.clone(),
                partition: o.partition,
            }
            .into());
        }
    }
    let offsets: Vec<GroupOffset> = body
        .offsets
        .into_iter()
        .map(|o| GroupOffset {
            topic: o.topic,
            partition: o.partition,
            offset: o.offset,
            metadata: o.metadata,
            commit_time_ms: now,
        })
        .collect();
    state
        .metadata
        .commit_group_offsets(&group, &offsets)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A group's committed offsets with the high watermark and lag of each partition.
async fn offsets_with_lag(
    state: &AppState,
    caller: &Caller,
    group: &str,
) -> Result<(Vec<OffsetOut>, i64), HttpError> {
    // Offsets of topics the caller may not describe are left out (as Kafka's OffsetFetch).
    let mut committed = state.metadata.group_offsets(group).await?;
    committed.retain(|o| {
        state.allowed(
            caller,
            AclOperation::Describe,
            ResourceType::Topic,
            &o.topic,
        )
    });
    let mut watermarks: HashMap<String, HashMap<i32, i64>> = HashMap::new();
    let mut offsets = Vec::with_capacity(committed.len());
    for o in committed {
        if !watermarks.contains_key(&o.topic) {
            let hw = match state.metadata.partition_offsets(&o.topic).await {
                Ok(all) => all
                    .into_iter()
                    .map(|p| (p.partition, p.high_watermark))
                    .collect(),
                Err(e) if e.kind() == silt_metadata::ErrorKind::NotFound => HashMap::new(),
                Err(e) => return Err(e.into()),
            };
            watermarks.insert(o.topic.clone(), hw);
        }
        let high_watermark = watermarks[&o.topic].get(&o.partition).copied();
        offsets.push(OffsetOut {
            lag: high_watermark.map(|hw| (hw - o.offset).max(0)),
            high_watermark,
            topic: o.topic,
            partition: o.partition,
            offset: o.offset,
            metadata: o.metadata,
            commit_time_ms: o.commit_time_ms,
        });
    }
    let total_lag = offsets.iter().filter_map(|o| o.lag).sum();
    Ok((offsets, total_lag))
}

#[utoipa::path(get, tag = "groups", operation_id = "groups_fetch", summary = "A group's committed offsets and lag",
    path = "/v1/groups/{group}/offsets", params(("group" = String, Path, description = "Consumer group id: 1 to 255 bytes", min_length = 1, max_length = 255)),
    responses((status = 200, body = GroupOffsets)))]
pub(crate) async fn fetch(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(group): ApiPath<String>,
) -> Result<Json<GroupOffsets>, HttpError> {
    validate_group_id(&group)?;
    let (offsets, total_lag) = offsets_with_lag(&state, &caller, &group).await?;
    Ok(Json(GroupOffsets {
        group,
        offsets,
        total_lag,
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct GroupListEntry {
    pub group: String,
    /// Kafka's group state: Empty, PreparingRebalance, CompletingRebalance, Stable, Dead.
    pub state: String,
    pub protocol_type: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct GroupList {
    pub groups: Vec<GroupListEntry>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AssignedPartitions {
    pub topic: String,
    pub partitions: Vec<i32>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct GroupMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    /// The partitions the member owns (decoded from the consumer protocol).
    pub assignment: Vec<AssignedPartitions>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct GroupDetail {
    pub group: String,
    pub state: String,
    pub protocol_type: String,
    /// The assignor the members agreed on (range, roundrobin, cooperative-sticky, ...).
    pub protocol: String,
    pub generation: i32,
    pub leader: Option<String>,
    pub members: Vec<GroupMember>,
    pub offsets: Vec<OffsetOut>,
    pub total_lag: i64,
}

fn group_error(e: GroupError) -> HttpError {
    match e {
        GroupError::NonEmptyGroup => {
            HttpError::new(StatusCode::CONFLICT, "group_not_empty", e.to_string())
        }
        GroupError::GroupIdNotFound => {
            HttpError::new(StatusCode::NOT_FOUND, "unknown_group", e.to_string())
        }
        GroupError::InvalidGroupId => HttpError::bad_request("invalid_group_id", e.to_string()),
        other => HttpError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            other.to_string(),
        ),
    }
}

#[utoipa::path(get, tag = "groups", operation_id = "groups_list", summary = "List consumer groups",
    path = "/v1/groups", responses((status = 200, body = GroupList)))]
pub(crate) async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<GroupList>, HttpError> {
    let groups = state.groups.list().await.map_err(group_error)?;
    // Describe on the cluster lists every group; otherwise those the caller may describe.
    let all = state.allowed(
        &caller,
        AclOperation::Describe,
        ResourceType::Cluster,
        CLUSTER_RESOURCE,
    );
    Ok(Json(GroupList {
        groups: groups
            .into_iter()
            .filter(|g| {
                all || state.allowed(
                    &caller,
                    AclOperation::Describe,
                    ResourceType::Group,
                    &g.group_id,
                )
            })
            .map(|g| GroupListEntry {
                group: g.group_id,
                state: g.state.kafka_name().to_string(),
                protocol_type: g.protocol_type,
            })
            .collect(),
    }))
}

#[utoipa::path(get, tag = "groups", operation_id = "groups_describe", summary = "Describe a consumer group",
    path = "/v1/groups/{group}", params(("group" = String, Path, description = "Consumer group id: 1 to 255 bytes", min_length = 1, max_length = 255)),
    responses((status = 200, body = GroupDetail), (status = 404, body = crate::ErrorBody)))]
pub(crate) async fn describe(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(group): ApiPath<String>,
) -> Result<Json<GroupDetail>, HttpError> {
    validate_group_id(&group)?;
    let d = state.groups.describe(&group).await.map_err(group_error)?;
    if d.state == silt_groups::GroupState::Dead {
        return Err(group_error(GroupError::GroupIdNotFound));
    }
    let (offsets, total_lag) = offsets_with_lag(&state, &caller, &group).await?;
    Ok(Json(GroupDetail {
        group,
        state: d.state_name,
        protocol_type: d.protocol_type,
        protocol: d.protocol,
        generation: d.generation,
        leader: d.leader,
        members: d
            .members
            .into_iter()
            .map(|m| GroupMember {
                member_id: m.member_id,
                group_instance_id: m.group_instance_id,
                client_id: m.client_id,
                assignment: m
                    .assigned
                    .into_iter()
                    .map(|(topic, partitions)| AssignedPartitions { topic, partitions })
                    .collect(),
            })
            .collect(),
        offsets,
        total_lag,
    }))
}

#[utoipa::path(delete, tag = "groups", operation_id = "groups_delete", summary = "Delete an empty consumer group",
    path = "/v1/groups/{group}", params(("group" = String, Path, description = "Consumer group id: 1 to 255 bytes", min_length = 1, max_length = 255)),
    responses((status = 204), (status = 404, body = crate::ErrorBody), (status = 409, body = crate::ErrorBody)))]
pub(crate) async fn delete(
    State(state): State<AppState>,
    ApiPath(group): ApiPath<String>,
) -> Result<StatusCode, HttpError> {
    validate_group_id(&group)?;
    state.groups.delete(&group).await.map_err(group_error)?;
    Ok(StatusCode::NO_CONTENT)
}
