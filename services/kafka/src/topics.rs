//! Topic admin (CreateTopics, DeleteTopics) and producer ids (InitProducerId).

use bytes::Bytes;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{
    CreatePartitionsRequest, CreatePartitionsResponse, CreateTopicsRequest, CreateTopicsResponse,
    DeleteRecordsRequest, DeleteRecordsResponse, DeleteTopicsRequest, DeleteTopicsResponse,
    InitProducerIdRequest, InitProducerIdResponse, ProducerId, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use silt_metadata::{AclOperation, MetadataError, ResourceType, TopicConfig, validate_topic_name};
use tracing::info;

use crate::KafkaState;
use crate::apis::respond;
use crate::connection::RequestContext;
use crate::error::{KafkaError, metadata_code};

fn text(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}

/// Kafka's checks of a manual assignment: no partition count or replication factor beside
/// it, and the partitions numbered 0, 1, ... without gaps.
fn check_assignment(
    topic: &kafka_protocol::messages::create_topics_request::CreatableTopic,
) -> Result<(), MetadataError> {
    if topic.num_partitions != -1 || topic.replication_factor != -1 {
        return Err(MetadataError::InvalidRequest {
            reason: "give either a replica assignment or num_partitions and replication_factor, not both"
                .into(),
        });
    }
    let mut indexes: Vec<i32> = topic
        .assignments
        .iter()
        .map(|a| a.partition_index)
        .collect();
    indexes.sort_unstable();
    if indexes.iter().copied().ne(0..indexes.len() as i32) {
        return Err(MetadataError::InvalidRequest {
            reason: "a replica assignment must number its partitions 0, 1, ... without gaps".into(),
        });
    }
    if topic.assignments.iter().any(|a| a.broker_ids.is_empty()) {
        return Err(MetadataError::InvalidRequest {
            reason: "every partition of a replica assignment needs at least one broker".into(),
        });
    }
    Ok(())
}

pub(crate) async fn create(
    state: &KafkaState,
    ctx: &RequestContext,
    request: CreateTopicsRequest,
) -> Result<Bytes, KafkaError> {
    let mut response = CreateTopicsResponse::default();
    for topic in request.topics {
        let name = topic.name.0.to_string();
        let mut result = CreatableTopicResult::default();
        result.name = topic.name.clone();
        result.num_partitions = -1;
        result.replication_factor = -1;
        // A manual assignment names the partitions; its replicas are routing hints only
        // (every node serves every partition from the shared store).
        let partitions = if !topic.assignments.is_empty() {
            i32::try_from(topic.assignments.len()).unwrap_or(i32::MAX)
        } else if topic.num_partitions == -1 {
            state.ingest.rules().defaults().default_partitions
        } else {
            topic.num_partitions
        };
        if !state.allowed_on_cluster(ctx, AclOperation::Create)
            && !state.allowed(ctx, AclOperation::Create, ResourceType::Topic, &name)
        {
            result.error_code = ResponseError::TopicAuthorizationFailed.code();
            result.error_message = Some(text(format!("{} may not create {name}", ctx.principal)));
            response.topics.push(result);
            continue;
        }
        let outcome = async {
            if !topic.assignments.is_empty() {
                check_assignment(&topic)?;
            }
            let config = TopicConfig::from_pairs(topic.configs.iter().map(|c| {
                (
                    c.name.to_string(),
                    c.value.as_ref().map(|v| v.to_string()).unwrap_or_default(),
                )
            }))?;
            if request.validate_only {
                validate_topic_name(&name)?;
                if partitions < 1 {
                    return Err(MetadataError::InvalidPartitionCount {
                        partitions,
                        max: i32::MAX,
                    });
                }
                return match state.metadata.topic(&name).await {
                    Ok(_) => Err(MetadataError::TopicExists {
                        topic: name.clone(),
                    }),
                    Err(MetadataError::UnknownTopic { .. }) => Ok(None),
                    Err(e) => Err(e),
                };
            }
            state
                .metadata
                .create_topic(&name, partitions, config)
                .await
                .map(Some)
        }
        .await;
        match outcome {
            Ok(created) => {
                result.num_partitions = partitions;
                result.replication_factor = 1;
                if let Some(t) = created {
                    info!(topic = %t.name, partitions = t.partitions, "topic created");
                    result.topic_id = t.id;
                    result.configs = Some(
                        t.config
                            .describe(&crate::configs::topic_defaults(state))
                            .into_iter()
                            .map(|d| {
                                let mut c = CreatableTopicConfigs::default();
                                c.name = text(d.def.name);
                                c.value = Some(text(d.value));
                                c.config_source = crate::configs::source_code(d.source);
                                c.read_only = false;
                                c
                            })
                            .collect(),
                    );
                }
            }
            Err(e) => {
                result.error_code = metadata_code(&e);
                result.error_message = Some(text(e.to_string()));
            }
        }
        response.topics.push(result);
    }
    respond(ctx, &response)
}

pub(crate) async fn delete(
    state: &KafkaState,
    ctx: &RequestContext,
    request: DeleteTopicsRequest,
) -> Result<Bytes, KafkaError> {
    // v0-5 name topics in `topic_names`; v6 in `topics` (by name or id).
    let mut wanted: Vec<(Option<String>, uuid::Uuid)> = request
        .topic_names
        .iter()
        .map(|n| (Some(n.0.to_string()), uuid::Uuid::nil()))
        .collect();
    wanted.extend(
        request
            .topics
            .iter()
            .map(|t| (t.name.as_ref().map(|n| n.0.to_string()), t.topic_id)),
    );
    let mut response = DeleteTopicsResponse::default();
    for (name, id) in wanted {
        let mut result = DeletableTopicResult::default();
        result.topic_id = id;
        let name = match name {
            Some(name) => Some(name),
            None => state
                .metadata
                .topics()
                .await
                .ok()
                .and_then(|all| all.into_iter().find(|t| t.id == id))
                .map(|t| t.name),
        };
        let Some(name) = name else {
            result.error_code = ResponseError::UnknownTopicId.code();
            response.responses.push(result);
            continue;
        };
        if !state.allowed(ctx, AclOperation::Delete, ResourceType::Topic, &name) {
            // A topic named by id keeps its name from a principal that may not see it.
            if result.topic_id.is_nil() {
                result.name = Some(TopicName(text(name.clone())));
            }
            result.error_code = ResponseError::TopicAuthorizationFailed.code();
            response.responses.push(result);
            continue;
        }
        result.name = Some(TopicName(text(name.clone())));
        if let Err(e) = state.metadata.delete_topic(&name).await {
            result.error_code = metadata_code(&e);
            result.error_message = Some(text(e.to_string()));
        } else {
            info!(topic = %name, "topic deleted");
        }
        response.responses.push(result);
    }
    respond(ctx, &response)
}

pub(crate) async fn create_partitions(
    state: &KafkaState,
    ctx: &RequestContext,
    request: CreatePartitionsRequest,
) -> Result<Bytes, KafkaError> {
    let mut response = CreatePartitionsResponse::default();
    for topic in request.topics {
        let name = topic.name.0.to_string();
        let mut result = CreatePartitionsTopicResult::default();
        result.name = topic.name;
        if !state.allowed(ctx, AclOperation::Alter, ResourceType::Topic, &name) {
            result.error_code = ResponseError::TopicAuthorizationFailed.code();
            result.error_message = Some(text(format!("{} may not alter {name}", ctx.principal)));
            response.results.push(result);
            continue;
        }
        let outcome = async {
            let current = state.metadata.topic(&name).await?;
            // The new partitions' replicas are routing hints: only their number matters.
            if let Some(assignments) = &topic.assignments {
                let added = topic.count - current.partitions;
                if i32::try_from(assignments.len()).ok() != Some(added) {
                    return Err(MetadataError::InvalidRequest {
                        reason: format!(
                            "the assignment names {} new partitions; the count adds {added}",
                            assignments.len()
                        ),
                    });
                }
            }
            if request.validate_only {
                if topic.count <= current.partitions {
                    return Err(MetadataError::InvalidPartitionCount {
                        partitions: topic.count,
                        max: i32::MAX,
                    });
                }
                return Ok(());
            }
            let grown = state.metadata.add_partitions(&name, topic.count).await?;
            info!(topic = %name, partitions = grown.partitions, "partitions added");
            Ok(())
        }
        .await;
        if let Err(e) = outcome {
            result.error_code = metadata_code(&e);
            result.error_message = Some(text(e.to_string()));
        }
        response.results.push(result);
    }
    respond(ctx, &response)
}

pub(crate) async fn init_producer_id(
    state: &KafkaState,
    ctx: &RequestContext,
    request: InitProducerIdRequest,
) -> Result<Bytes, KafkaError> {
    let mut response = InitProducerIdResponse::default();
    response.producer_id = ProducerId(-1);
    response.producer_epoch = -1;
    if let Some(id) = request.transactional_id.as_ref() {
        match crate::transactions::init_producer(
            state,
            ctx,
            id.as_str(),
            request.transaction_timeout_ms,
        )
        .await
        {
            Ok(identity) => {
                response.producer_id = ProducerId(identity.producer_id);
                response.producer_epoch = identity.epoch;
            }
            Err(code) => response.error_code = code,
        }
        return respond(ctx, &response);
    }
    // An idempotent producer needs IdempotentWrite on the cluster, or Write on some topic
    // (as Kafka 3 allows).
    if !state.allowed_on_cluster(ctx, AclOperation::IdempotentWrite)
        && !state.allowed_on_any(ctx, AclOperation::Write, ResourceType::Topic)
    {
        response.error_code = ResponseError::ClusterAuthorizationFailed.code();
        return respond(ctx, &response);
    }
    // A fresh id for new producers and for producers recovering from an error (KIP-360):
    // either way the sequence numbers start over.
    match state.metadata.init_producer_id().await {
        Ok(id) => {
            response.producer_id = ProducerId(id.producer_id);
            response.producer_epoch = id.epoch;
        }
        Err(e) => response.error_code = metadata_code(&e),
    }
    respond(ctx, &response)
}

/// DeleteRecords: moves each partition's log start to the given offset (-1: the high
/// watermark). Records below it are no longer served; the compactor deletes whole
/// objects that fall below it.
pub(crate) async fn delete_records(
    state: &KafkaState,
    ctx: &RequestContext,
    request: DeleteRecordsRequest,
) -> Result<Bytes, KafkaError> {
    let mut response = DeleteRecordsResponse::default();
    for topic in request.topics {
        let name = topic.name.0.to_string();
        let mut result = DeleteRecordsTopicResult::default();
        result.name = topic.name;
        let allowed = state.allowed(ctx, AclOperation::Delete, ResourceType::Topic, &name);
        for p in topic.partitions {
            let mut out = DeleteRecordsPartitionResult::default();
            out.partition_index = p.partition_index;
            out.low_watermark = -1;
            if !allowed {
                out.error_code = ResponseError::TopicAuthorizationFailed.code();
                result.partitions.push(out);
                continue;
            }
            let moved = async {
                let offsets = state
                    .metadata
                    .partition_offset(&name, p.partition_index)
                    .await?;
                let target = match p.offset {
                    -1 => offsets.high_watermark,
                    o if o < 0 || o > offsets.high_watermark => return Ok(None),
                    o => o,
                };
                state
                    .metadata
                    .advance_log_start(&name, p.partition_index, target)
                    .await
                    .map(Some)
            }
            .await;
            match moved {
                Ok(Some(o)) => out.low_watermark = o.log_start_offset,
                Ok(None) => out.error_code = ResponseError::OffsetOutOfRange.code(),
                Err(e) => out.error_code = metadata_code(&e),
            }
            result.partitions.push(out);
        }
        response.topics.push(result);
    }
    respond(ctx, &response)
}
