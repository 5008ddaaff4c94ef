//! The consumer-group APIs: FindCoordinator, JoinGroup, SyncGroup, Heartbeat, LeaveGroup,
//! OffsetCommit, OffsetFetch, ListGroups, DescribeGroups, DeleteGroups, OffsetDelete.
//! The protocol-generic work is done by `silt-groups`; this file translates.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use bytes::Bytes;
use futures::FutureExt;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::consumer_group_describe_response::{
    DescribedGroup as ConsumerDescribedGroup, Member as DescribedMember,
    TopicPartitions as DescribedTopicPartitions,
};
use kafka_protocol::messages::consumer_group_heartbeat_response::{
    Assignment as HeartbeatAssignment, TopicPartitions as HeartbeatTopicPartitions,
};
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::find_coordinator_response::Coordinator as CoordinatorEntry;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{
    BrokerId, ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse,
    ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse, DeleteGroupsRequest,
    DeleteGroupsResponse, DescribeGroupsRequest, DescribeGroupsResponse, FindCoordinatorRequest,
    FindCoordinatorResponse, GroupId, HeartbeatRequest, HeartbeatResponse, JoinGroupRequest,
    JoinGroupResponse, LeaveGroupRequest, LeaveGroupResponse, ListGroupsRequest,
    ListGroupsResponse, OffsetCommitRequest, OffsetCommitResponse, OffsetDeleteRequest,
    OffsetDeleteResponse, OffsetFetchRequest, OffsetFetchResponse, SyncGroupRequest,
    SyncGroupResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use silt_groups::{
    ConsumerHeartbeat, GroupError, JoinRequest, SyncRequest, TopicInfo, TopicPartitions,
};
use silt_metadata::{AclOperation, GroupOffset, ResourceType};

use crate::KafkaState;
use crate::apis::{Reply, respond};
use crate::connection::RequestContext;
use crate::error::KafkaError;

fn text(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}

/// The Kafka error code of a group error.
/// Whether the principal may `op` the group.
fn group_allowed(state: &KafkaState, ctx: &RequestContext, op: AclOperation, group: &str) -> bool {
    state.allowed(ctx, op, ResourceType::Group, group)
}

pub(crate) fn group_code(e: &GroupError) -> i16 {
    let error = match e {
        GroupError::UnknownMemberId => ResponseError::UnknownMemberId,
        GroupError::IllegalGeneration { .. } => ResponseError::IllegalGeneration,
        GroupError::RebalanceInProgress => ResponseError::RebalanceInProgress,
        GroupError::InconsistentGroupProtocol => ResponseError::InconsistentGroupProtocol,
        GroupError::InvalidSessionTimeout { .. } => ResponseError::InvalidSessionTimeout,
        GroupError::MemberIdRequired { .. } => ResponseError::MemberIdRequired,
        GroupError::FencedInstanceId => ResponseError::FencedInstanceId,
        GroupError::GroupIdNotFound => ResponseError::GroupIdNotFound,
        GroupError::NonEmptyGroup => ResponseError::NonEmptyGroup,
        GroupError::InvalidGroupId => ResponseError::InvalidGroupId,
        GroupError::CoordinatorNotAvailable => ResponseError::CoordinatorNotAvailable,
        GroupError::Metadata(_) => ResponseError::CoordinatorNotAvailable,
        GroupError::FencedMemberEpoch => ResponseError::FencedMemberEpoch,
        GroupError::StaleMemberEpoch => ResponseError::StaleMemberEpoch,
        GroupError::UnreleasedInstanceId => ResponseError::UnreleasedInstanceId,
        GroupError::UnsupportedAssignor => ResponseError::UnsupportedAssignor,
        GroupError::NotAuthorized => ResponseError::GroupAuthorizationFailed,
        GroupError::TopicNotAuthorized { .. } => ResponseError::TopicAuthorizationFailed,
    };
    error.code()
}

fn code_of(result: &Result<(), GroupError>) -> i16 {
    result.as_ref().err().map_or(0, group_code)
}

/// Key types of FindCoordinator: 0 group, 1 transaction.
const KEY_TYPE_GROUP: i8 = 0;
const KEY_TYPE_TRANSACTION: i8 = 1;

pub(crate) fn find_coordinator(
    state: &KafkaState,
    ctx: &RequestContext,
    request: FindCoordinatorRequest,
) -> Result<Bytes, KafkaError> {
    let node = BrokerId(state.config.node_id);
    let host = text(state.config.advertised_host.clone());
    let port = i32::from(state.config.advertised_port);
    // Any node coordinates any group and any transactional id (their state is in the
    // metadata store); unknown key types are refused.
    let error = (request.key_type != KEY_TYPE_GROUP && request.key_type != KEY_TYPE_TRANSACTION)
        .then(|| ResponseError::InvalidRequest.code());
    let message = error.map(|_| text(format!("unknown coordinator key type {}", request.key_type)));
    let key_allowed = |key: &str| match request.key_type {
        KEY_TYPE_TRANSACTION => state.allowed(
            ctx,
            AclOperation::Describe,
            ResourceType::TransactionalId,
            key,
        ),
        _ => group_allowed(state, ctx, AclOperation::Describe, key),
    };
    let denied_code = if request.key_type == KEY_TYPE_TRANSACTION {
        ResponseError::TransactionalIdAuthorizationFailed.code()
    } else {
        ResponseError::GroupAuthorizationFailed.code()
    };
    let mut response = FindCoordinatorResponse::default();
    if ctx.version >= 4 {
        // v4+ batches keys; any node coordinates any group.
        for key in request.coordinator_keys {
            let mut c = CoordinatorEntry::default();
            c.node_id = node;
            c.host = host.clone();
            c.port = port;
            c.error_code = error.unwrap_or(0);
            c.error_message = message.clone();
            if error.is_none() && !key_allowed(key.as_str()) {
                c.error_code = denied_code;
            }
            c.key = key;
            response.coordinators.push(c);
        }
    } else {
        response.node_id = node;
        response.host = host;
        response.port = port;
        response.error_code = error.unwrap_or(0);
        response.error_message = message;
        if error.is_none() && !key_allowed(request.key.as_str()) {
            response.error_code = denied_code;
        }
    }
    respond(ctx, &response)
}

pub(crate) fn join(state: &KafkaState, ctx: &RequestContext, request: JoinGroupRequest) -> Reply {
    let state = state.clone();
    let ctx = ctx.clone();
    Reply::Later(
        async move {
            let req = JoinRequest {
                group_id: request.group_id.0.to_string(),
                member_id: request.member_id.to_string(),
                group_instance_id: request.group_instance_id.as_ref().map(|s| s.to_string()),
                client_id: ctx.client_id.clone().unwrap_or_default(),
                client_host: String::new(),
                session_timeout: Duration::from_millis(request.session_timeout_ms.max(0) as u64),
                // v0 has no rebalance timeout: it is the session timeout.
                rebalance_timeout: Duration::from_millis(if ctx.version >= 1 {
                    request.rebalance_timeout_ms.max(0) as u64
                } else {
                    request.session_timeout_ms.max(0) as u64
                }),
                protocol_type: request.protocol_type.to_string(),
                protocols: request
                    .protocols
                    .iter()
                    .map(|p| (p.name.to_string(), p.metadata.clone()))
                    .collect(),
                require_known_member_id: ctx.version >= 4,
            };
            if !group_allowed(&state, &ctx, AclOperation::Read, &req.group_id) {
                let mut response = JoinGroupResponse::default();
                response.error_code = ResponseError::GroupAuthorizationFailed.code();
                response.generation_id = -1;
                response.member_id = text(req.member_id);
                return respond(&ctx, &response).ok();
            }
            let answer = state.groups.join(req).await;
            let mut response = JoinGroupResponse::default();
            response.error_code = answer.error.as_ref().map_or(0, group_code);
            response.generation_id = answer.generation_id;
            response.protocol_type = answer.protocol_type.map(text);
            response.protocol_name = answer.protocol_name.map(text);
            response.leader = text(answer.leader);
            response.member_id = text(answer.member_id);
            response.members = answer
                .members
                .into_iter()
                .map(|(id, instance, metadata)| {
                    let mut m = JoinGroupResponseMember::default();
                    m.member_id = text(id);
                    m.group_instance_id = instance.map(text);
                    m.metadata = metadata;
                    m
                })
                .collect();
            respond(&ctx, &response).ok()
        }
        .boxed(),
    )
}

pub(crate) fn sync(state: &KafkaState, ctx: &RequestContext, request: SyncGroupRequest) -> Reply {
    let state = state.clone();
    let ctx = ctx.clone();
    Reply::Later(
        async move {
            let protocol_type = request.protocol_type.as_ref().map(|s| s.to_string());
            let protocol_name = request.protocol_name.as_ref().map(|s| s.to_string());
            let req = SyncRequest {
                group_id: request.group_id.0.to_string(),
                generation_id: request.generation_id,
                member_id: request.member_id.to_string(),
                group_instance_id: request.group_instance_id.as_ref().map(|s| s.to_string()),
                protocol_type: protocol_type.clone(),
                protocol_name: protocol_name.clone(),
                assignments: request
                    .assignments
                    .iter()
                    .map(|a| (a.member_id.to_string(), a.assignment.clone()))
                    .collect(),
            };
            let mut response = SyncGroupResponse::default();
            if !group_allowed(&state, &ctx, AclOperation::Read, &req.group_id) {
                response.error_code = ResponseError::GroupAuthorizationFailed.code();
                return respond(&ctx, &response).ok();
            }
            match state.groups.sync(req).await {
                Ok(assignment) => {
                    response.assignment = assignment;
                    response.protocol_type = protocol_type.map(text);
                    response.protocol_name = protocol_name.map(text);
                }
                Err(e) => response.error_code = group_code(&e),
            }
            respond(&ctx, &response).ok()
        }
        .boxed(),
    )
}

pub(crate) async fn heartbeat(
    state: &KafkaState,
    ctx: &RequestContext,
    request: HeartbeatRequest,
) -> Result<Bytes, KafkaError> {
    if !group_allowed(state, ctx, AclOperation::Read, request.group_id.0.as_str()) {
        let mut response = HeartbeatResponse::default();
        response.error_code = ResponseError::GroupAuthorizationFailed.code();
        return respond(ctx, &response);
    }
    let result = state
        .groups
        .heartbeat(
            request.group_id.0.as_str(),
            request.member_id.as_str(),
            request.group_instance_id.as_ref().map(|s| s.as_str()),
            request.generation_id,
        )
        .await;
    let mut response = HeartbeatResponse::default();
    response.error_code = code_of(&result);
    respond(ctx, &response)
}

pub(crate) async fn leave(
    state: &KafkaState,
    ctx: &RequestContext,
    request: LeaveGroupRequest,
) -> Result<Bytes, KafkaError> {
    let group = request.group_id.0.to_string();
    // v0-2 name one member; v3+ a batch (with instance ids).
    let members: Vec<(String, Option<String>)> = if ctx.version >= 3 {
        request
            .members
            .iter()
            .map(|m| {
                (
                    m.member_id.to_string(),
                    m.group_instance_id.as_ref().map(|s| s.to_string()),
                )
            })
            .collect()
    } else {
        vec![(request.member_id.to_string(), None)]
    };
    let results = if group_allowed(state, ctx, AclOperation::Read, &group) {
        state.groups.leave(&group, &members).await
    } else {
        members
            .iter()
            .map(|_| Err(GroupError::NotAuthorized))
            .collect()
    };
    let mut response = LeaveGroupResponse::default();
    if ctx.version >= 3 {
        response.members = members
            .iter()
            .zip(&results)
            .map(|((id, instance), r)| {
                let mut m = MemberResponse::default();
                m.member_id = text(id.clone());
                m.group_instance_id = instance.clone().map(text);
                m.error_code = code_of(r);
                m
            })
            .collect();
    } else {
        response.error_code = results.first().map_or(0, code_of);
    }
    respond(ctx, &response)
}

pub(crate) fn commit(
    state: &KafkaState,
    ctx: &RequestContext,
    request: OffsetCommitRequest,
) -> Reply {
    let state = state.clone();
    let ctx = ctx.clone();
    Reply::Later(
        async move {
            let now = state.ingest.clock().now_ms();
            let group = request.group_id.0.to_string();
            // Offsets of unknown topics or partitions are refused one by one.
            let mut partitions_of: BTreeMap<String, Option<i32>> = BTreeMap::new();
            for t in &request.topics {
                let name = t.name.0.to_string();
                if let std::collections::btree_map::Entry::Vacant(slot) = partitions_of.entry(name)
                {
                    let count = state
                        .metadata
                        .topic(slot.key())
                        .await
                        .ok()
                        .map(|t| t.partitions);
                    slot.insert(count);
                }
            }
            let group_ok = group_allowed(&state, &ctx, AclOperation::Read, &group);
            let readable: std::collections::HashSet<&String> = partitions_of
                .keys()
                .filter(|t| state.allowed(&ctx, AclOperation::Read, ResourceType::Topic, t))
                .collect();
            let valid = |topic: &str, p: i32| {
                partitions_of
                    .get(topic)
                    .copied()
                    .flatten()
                    .is_some_and(|n| (0..n).contains(&p))
            };
            let committable = |topic: &str, p: i32| {
                group_ok && readable.contains(&topic.to_string()) && valid(topic, p)
            };
            let offsets: Vec<GroupOffset> = request
                .topics
                .iter()
                .flat_map(|t| {
                    let name = t.name.0.to_string();
                    t.partitions
                        .iter()
                        .filter(|p| committable(&name, p.partition_index))
                        .map(|p| GroupOffset {
                            topic: name.clone(),
                            partition: p.partition_index,
                            offset: p.committed_offset,
                            metadata: p.committed_metadata.as_ref().map(|m| m.to_string()),
                            commit_time_ms: now,
                        })
                        .collect::<Vec<_>>()
                })
                .collect();
            for o in offsets.iter().filter(|o| o.offset < 0) {
                tracing::info!(
                    group = %group,
                    topic = %o.topic,
                    partition = o.partition,
                    offset = o.offset,
                    "negative offset committed: the group's committed offset is cleared, and its consumers start from their reset policy"
                );
            }
            let result = if !group_ok {
                Err(GroupError::NotAuthorized)
            } else {
                state
                    .groups
                    .commit_offsets(
                        &group,
                        request.member_id.as_str(),
                        request.group_instance_id.as_ref().map(|s| s.as_str()),
                        request.generation_id_or_member_epoch,
                        &offsets,
                    )
                    .await
            };
            let mut response = OffsetCommitResponse::default();
            for t in &request.topics {
                let mut topic = OffsetCommitResponseTopic::default();
                topic.name = t.name.clone();
                for p in &t.partitions {
                    let mut r = OffsetCommitResponsePartition::default();
                    r.partition_index = p.partition_index;
                    r.error_code = if !group_ok {
                        ResponseError::GroupAuthorizationFailed.code()
                    } else if !readable.contains(&t.name.0.to_string()) {
                        ResponseError::TopicAuthorizationFailed.code()
                    } else if !valid(t.name.0.as_str(), p.partition_index) {
                        ResponseError::UnknownTopicOrPartition.code()
                    } else {
                        code_of(&result)
                    };
                    topic.partitions.push(r);
                }
                response.topics.push(topic);
            }
            respond(&ctx, &response).ok()
        }
        .boxed(),
    )
}

/// Committed offsets of one group, for the requested (topic, partitions) or all.
/// One partition's committed offset: partition, offset, metadata, error code.
type Fetched = (i32, i64, Option<String>, i16);

/// Topics the principal may not describe are left out (all offsets) or answered with
/// TOPIC_AUTHORIZATION_FAILED (named topics); a group it may not describe is refused.
async fn fetch_group(
    state: &KafkaState,
    ctx: &RequestContext,
    group: &str,
    wanted: Option<Vec<(String, Vec<i32>)>>,
) -> Result<Vec<(String, Vec<Fetched>)>, GroupError> {
    if !group_allowed(state, ctx, AclOperation::Describe, group) {
        return Err(GroupError::NotAuthorized);
    }
    let describable =
        |topic: &str| state.allowed(ctx, AclOperation::Describe, ResourceType::Topic, topic);
    let mut committed = state.groups.fetch_offsets(group).await?;
    committed.retain(|o| describable(&o.topic));
    let lookup = |topic: &str, p: i32| {
        committed
            .iter()
            .find(|o| o.topic == topic && o.partition == p)
    };
    Ok(match wanted {
        Some(topics) => topics
            .into_iter()
            .map(|(topic, partitions)| {
                let denied = !describable(&topic);
                let found = partitions
                    .into_iter()
                    .map(|p| match lookup(&topic, p) {
                        _ if denied => {
                            (p, -1, None, ResponseError::TopicAuthorizationFailed.code())
                        }
                        Some(o) => (p, o.offset, o.metadata.clone(), 0),
                        None => (p, -1, None, 0),
                    })
                    .collect();
                (topic, found)
            })
            .collect(),
        None => {
            let mut by_topic: BTreeMap<String, Vec<Fetched>> = BTreeMap::new();
            for o in committed {
                by_topic
                    .entry(o.topic)
                    .or_default()
                    .push((o.partition, o.offset, o.metadata, 0));
            }
            by_topic.into_iter().collect()
        }
    })
}

pub(crate) fn fetch_offsets(
    state: &KafkaState,
    ctx: &RequestContext,
    request: OffsetFetchRequest,
) -> Reply {
    let state = state.clone();
    let ctx = ctx.clone();
    Reply::Later(
        async move {
            let mut response = OffsetFetchResponse::default();
            if ctx.version >= 8 {
                for g in &request.groups {
                    let wanted = g.topics.as_ref().map(|ts| {
                        ts.iter()
                            .map(|t| (t.name.0.to_string(), t.partition_indexes.clone()))
                            .collect()
                    });
                    let mut out = OffsetFetchResponseGroup::default();
                    out.group_id = g.group_id.clone();
                    match fetch_group(&state, &ctx, g.group_id.0.as_str(), wanted).await {
                        Ok(topics) => {
                            out.topics = topics
                                .into_iter()
                                .map(|(name, partitions)| {
                                    let mut t = OffsetFetchResponseTopics::default();
                                    t.name = TopicName(text(name));
                                    t.partitions = partitions
                                        .into_iter()
                                        .map(|(p, offset, metadata, error)| {
                                            let mut r = OffsetFetchResponsePartitions::default();
                                            r.partition_index = p;
                                            r.error_code = error;
                                            r.committed_offset = offset;
                                            r.committed_leader_epoch = -1;
                                            r.metadata = Some(text(metadata.unwrap_or_default()));
                                            r
                                        })
                                        .collect();
                                    t
                                })
                                .collect();
                        }
                        Err(e) => out.error_code = group_code(&e),
                    }
                    response.groups.push(out);
                }
            } else {
                let wanted = request.topics.as_ref().map(|ts| {
                    ts.iter()
                        .map(|t| (t.name.0.to_string(), t.partition_indexes.clone()))
                        .collect()
                });
                let named = wanted.clone();
                match fetch_group(&state, &ctx, request.group_id.0.as_str(), wanted).await {
                    Ok(topics) => {
                        response.topics = topics
                            .into_iter()
                            .map(|(name, partitions)| {
                                let mut t = OffsetFetchResponseTopic::default();
                                t.name = TopicName(text(name));
                                t.partitions = partitions
                                    .into_iter()
                                    .map(|(p, offset, metadata, error)| {
                                        let mut r = OffsetFetchResponsePartition::default();
                                        r.partition_index = p;
                                        r.error_code = error;
                                        r.committed_offset = offset;
                                        r.committed_leader_epoch = -1;
                                        r.metadata = Some(text(metadata.unwrap_or_default()));
                                        r
                                    })
                                    .collect();
                                t
                            })
                            .collect();
                    }
                    Err(e) => {
                        response.error_code = group_code(&e);
                        // v0-1 have no top-level error: each partition asked for carries it.
                        if ctx.version < 2 {
                            response.topics = named
                                .unwrap_or_default()
                                .into_iter()
                                .map(|(name, partitions)| {
                                    let mut t = OffsetFetchResponseTopic::default();
                                    t.name = TopicName(text(name));
                                    t.partitions = partitions
                                        .into_iter()
                                        .map(|p| {
                                            let mut r = OffsetFetchResponsePartition::default();
                                            r.partition_index = p;
                                            r.committed_offset = -1;
                                            r.error_code = group_code(&e);
                                            r
                                        })
                                        .collect();
                                    t
                                })
                                .collect();
                        }
                    }
                }
            }
            respond(&ctx, &response).ok()
        }
        .boxed(),
    )
}

pub(crate) async fn list(
    state: &KafkaState,
    ctx: &RequestContext,
    request: ListGroupsRequest,
) -> Result<Bytes, KafkaError> {
    let mut response = ListGroupsResponse::default();
    // Describe on the cluster lists every group; otherwise those the principal may
    // describe.
    let all = state.allowed_on_cluster(ctx, AclOperation::Describe);
    match state.groups.list().await {
        Ok(groups) => {
            for g in groups {
                if !all && !group_allowed(state, ctx, AclOperation::Describe, &g.group_id) {
                    continue;
                }
                let name = g.state.kafka_name();
                if !request.states_filter.is_empty()
                    && !request
                        .states_filter
                        .iter()
                        .any(|s| s.as_str().eq_ignore_ascii_case(name))
                {
                    continue;
                }
                if !request.types_filter.is_empty()
                    && !request
                        .types_filter
                        .iter()
                        .any(|t| t.as_str().eq_ignore_ascii_case("classic"))
                {
                    continue;
                }
                let mut listed = ListedGroup::default();
                listed.group_id = GroupId(text(g.group_id));
                listed.protocol_type = text(g.protocol_type);
                listed.group_state = text(name);
                listed.group_type = text("classic");
                response.groups.push(listed);
            }
        }
        Err(e) => response.error_code = group_code(&e),
    }
    respond(ctx, &response)
}

pub(crate) async fn describe(
    state: &KafkaState,
    ctx: &RequestContext,
    request: DescribeGroupsRequest,
) -> Result<Bytes, KafkaError> {
    let mut response = DescribeGroupsResponse::default();
    for group_id in request.groups {
        let mut out = DescribedGroup::default();
        out.group_id = group_id.clone();
        if !group_allowed(state, ctx, AclOperation::Describe, group_id.0.as_str()) {
            out.error_code = ResponseError::GroupAuthorizationFailed.code();
            response.groups.push(out);
            continue;
        }
        match state.groups.describe(group_id.0.as_str()).await {
            Ok(d) => {
                out.group_state = text(d.state.kafka_name());
                out.protocol_type = text(d.protocol_type);
                out.protocol_data = text(d.protocol);
                out.members = d
                    .members
                    .into_iter()
                    .map(|m| {
                        let mut member = DescribedGroupMember::default();
                        member.member_id = text(m.member_id);
                        member.group_instance_id = m.group_instance_id.map(text);
                        member.client_id = text(m.client_id);
                        member.client_host = text(m.client_host);
                        member.member_metadata = m.metadata;
                        member.member_assignment = m.assignment;
                        member
                    })
                    .collect();
            }
            Err(e) => out.error_code = group_code(&e),
        }
        response.groups.push(out);
    }
    respond(ctx, &response)
}

pub(crate) async fn delete(
    state: &KafkaState,
    ctx: &RequestContext,
    request: DeleteGroupsRequest,
) -> Result<Bytes, KafkaError> {
    let mut response = DeleteGroupsResponse::default();
    for group_id in request.groups_names {
        let mut r = DeletableGroupResult::default();
        r.error_code = if group_allowed(state, ctx, AclOperation::Delete, group_id.0.as_str()) {
            code_of(&state.groups.delete(group_id.0.as_str()).await)
        } else {
            ResponseError::GroupAuthorizationFailed.code()
        };
        r.group_id = group_id;
        response.results.push(r);
    }
    respond(ctx, &response)
}

pub(crate) async fn delete_offsets(
    state: &KafkaState,
    ctx: &RequestContext,
    request: OffsetDeleteRequest,
) -> Result<Bytes, KafkaError> {
    // Partitions of topics the principal may not read are refused one by one (as Kafka);
    // the others are deleted.
    let readable = |topic: &str| state.allowed(ctx, AclOperation::Read, ResourceType::Topic, topic);
    let partitions: Vec<(String, i32)> = request
        .topics
        .iter()
        .filter(|t| readable(t.name.0.as_str()))
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(move |p| (t.name.0.to_string(), p.partition_index))
        })
        .collect();
    let result = if !group_allowed(
        state,
        ctx,
        AclOperation::Delete,
        request.group_id.0.as_str(),
    ) {
        Err(GroupError::NotAuthorized)
    } else if partitions.is_empty() {
        Ok(())
    } else {
        state
            .groups
            .delete_offsets(request.group_id.0.as_str(), &partitions)
            .await
    };
    let mut response = OffsetDeleteResponse::default();
    response.error_code = code_of(&result);
    if result.is_ok() {
        response.topics = request
            .topics
            .iter()
            .map(|t| {
                let denied = !readable(t.name.0.as_str());
                let mut topic = OffsetDeleteResponseTopic::default();
                topic.name = t.name.clone();
                topic.partitions = t
                    .partitions
                    .iter()
                    .map(|p| {
                        let mut r = OffsetDeleteResponsePartition::default();
                        r.partition_index = p.partition_index;
                        if denied {
                            r.error_code = ResponseError::TopicAuthorizationFailed.code();
                        }
                        r
                    })
                    .collect();
                topic
            })
            .collect();
    }
    respond(ctx, &response)
}

/// The current topics as the KIP-848 assignor needs them.
async fn topic_infos(state: &KafkaState) -> Result<HashMap<String, TopicInfo>, GroupError> {
    Ok(state
        .metadata
        .topics()
        .await?
        .into_iter()
        .map(|t| {
            (
                t.name.clone(),
                TopicInfo {
                    id: t.id,
                    partitions: t.partitions,
                },
            )
        })
        .collect())
}

pub(crate) async fn consumer_heartbeat(
    state: &KafkaState,
    ctx: &RequestContext,
    request: ConsumerGroupHeartbeatRequest,
) -> Result<Bytes, KafkaError> {
    let mut response = ConsumerGroupHeartbeatResponse::default();
    response.heartbeat_interval_ms = state.groups.consumer_heartbeat_interval().as_millis() as i32;
    let outcome = async {
        if !group_allowed(state, ctx, AclOperation::Read, request.group_id.0.as_str()) {
            return Err(GroupError::NotAuthorized);
        }
        if let Some(denied) = request.subscribed_topic_names.iter().flatten().find(|t| {
            !state.allowed(
                ctx,
                AclOperation::Describe,
                ResourceType::Topic,
                t.0.as_str(),
            )
        }) {
            return Err(GroupError::TopicNotAuthorized {
                topic: denied.0.to_string(),
            });
        }
        if request
            .subscribed_topic_regex
            .as_ref()
            .is_some_and(|r| !r.is_empty())
        {
            return Err(GroupError::Metadata(
                "subscribing by regular expression is not supported".into(),
            ));
        }
        let topics = topic_infos(state).await?;
        let by_id: HashMap<uuid::Uuid, &String> =
            topics.iter().map(|(name, t)| (t.id, name)).collect();
        let owned = request.topic_partitions.as_ref().map(|tps| {
            tps.iter()
                .filter_map(|tp| by_id.get(&tp.topic_id).map(|name| (name, &tp.partitions)))
                .flat_map(|(name, ps)| ps.iter().map(move |p| ((*name).clone(), *p)))
                .collect::<TopicPartitions>()
        });
        let req = ConsumerHeartbeat {
            group_id: request.group_id.0.to_string(),
            member_id: request.member_id.to_string(),
            member_epoch: request.member_epoch,
            instance_id: request.instance_id.as_ref().map(|s| s.to_string()),
            client_id: ctx.client_id.clone().unwrap_or_default(),
            rebalance_timeout: Duration::from_millis(request.rebalance_timeout_ms.max(0) as u64),
            subscribed_topics: request
                .subscribed_topic_names
                .as_ref()
                .map(|names| names.iter().map(|n| n.0.to_string()).collect()),
            server_assignor: request.server_assignor.as_ref().map(|s| s.to_string()),
            owned,
        };
        let answer = state.groups.consumer_heartbeat(req).await?;
        Ok((answer, topics))
    }
    .await;
    match outcome {
        Ok((answer, topics)) => {
            response.member_id = Some(text(answer.member_id));
            response.member_epoch = answer.member_epoch;
            response.assignment = answer.assignment.map(|set| {
                let mut by_topic: BTreeMap<String, Vec<i32>> = BTreeMap::new();
                for (topic, p) in set {
                    by_topic.entry(topic).or_default().push(p);
                }
                let mut assignment = HeartbeatAssignment::default();
                assignment.topic_partitions = by_topic
                    .into_iter()
                    .filter_map(|(topic, partitions)| {
                        let mut tp = HeartbeatTopicPartitions::default();
                        tp.topic_id = topics.get(&topic)?.id;
                        tp.partitions = partitions;
                        Some(tp)
                    })
                    .collect();
                assignment
            });
        }
        Err(e) => {
            response.error_code = match &e {
                GroupError::Metadata(_) => ResponseError::InvalidRequest.code(),
                other => group_code(other),
            };
            response.error_message = Some(text(e.to_string()));
        }
    }
    respond(ctx, &response)
}

pub(crate) async fn consumer_describe(
    state: &KafkaState,
    ctx: &RequestContext,
    request: ConsumerGroupDescribeRequest,
) -> Result<Bytes, KafkaError> {
    let topics = topic_infos(state).await.unwrap_or_default();
    let mut response = ConsumerGroupDescribeResponse::default();
    for group_id in request.group_ids {
        let mut out = ConsumerDescribedGroup::default();
        out.group_id = group_id.clone();
        if !group_allowed(state, ctx, AclOperation::Describe, group_id.0.as_str()) {
            out.error_code = ResponseError::GroupAuthorizationFailed.code();
            response.groups.push(out);
            continue;
        }
        match state.groups.describe(group_id.0.as_str()).await {
            Ok(d)
                if d.protocol_type == "consumer" && !d.members.is_empty() && d.leader.is_none() =>
            {
                out.group_state = text(d.state_name);
                out.group_epoch = d.generation;
                out.assignment_epoch = d.generation;
                out.assignor_name = text(d.protocol);
                out.members = d
                    .members
                    .into_iter()
                    .map(|m| {
                        let mut member = DescribedMember::default();
                        member.member_id = text(m.member_id);
                        member.instance_id = m.group_instance_id.map(text);
                        member.member_epoch = m.member_epoch;
                        member.client_id = text(m.client_id);
                        member.subscribed_topic_names = m
                            .subscribed
                            .into_iter()
                            .map(|t| TopicName(text(t)))
                            .collect();
                        member.assignment.topic_partitions = m
                            .assigned
                            .into_iter()
                            .filter_map(|(topic, partitions)| {
                                let mut tp = DescribedTopicPartitions::default();
                                tp.topic_id = topics.get(&topic)?.id;
                                tp.topic_name = TopicName(text(topic));
                                tp.partitions = partitions;
                                Some(tp)
                            })
                            .collect();
                        member
                    })
                    .collect();
            }
            Ok(_) => out.error_code = ResponseError::GroupIdNotFound.code(),
            Err(e) => out.error_code = group_code(&e),
        }
        response.groups.push(out);
    }
    respond(ctx, &response)
}
