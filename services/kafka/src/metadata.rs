//! Metadata: brokers (the live nodes), topics and their partitions; auto-creation.

use bytes::Bytes;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{
    BrokerId, DescribeClusterRequest, DescribeClusterResponse, MetadataRequest, MetadataResponse,
    TopicName,
};
use kafka_protocol::protocol::StrBytes;
use silt_metadata::{AclOperation, MetadataError, ResourceType, Topic};

use crate::KafkaState;
use crate::apis::respond;
use crate::cluster::{Cluster, cluster};
use crate::connection::RequestContext;
use crate::error::{KafkaError, metadata_code};

pub(crate) fn topic_entry(cluster: &Cluster, topic: &Topic) -> MetadataResponseTopic {
    let mut entry = MetadataResponseTopic::default();
    entry.name = Some(TopicName(StrBytes::from_string(topic.name.clone())));
    entry.topic_id = topic.id;
    entry.partitions = (0..topic.partitions)
        .map(|p| {
            let node = BrokerId(cluster.leader(topic, p));
            let mut partition = MetadataResponsePartition::default();
            partition.partition_index = p;
            partition.leader_id = node;
            partition.leader_epoch = 0;
            partition.replica_nodes = vec![node];
            partition.isr_nodes = vec![node];
            partition
        })
        .collect();
    entry
}

fn error_entry(name: &str, code: i16) -> MetadataResponseTopic {
    let mut entry = MetadataResponseTopic::default();
    entry.name = Some(TopicName(StrBytes::from_string(name.to_string())));
    entry.error_code = code;
    entry
}

pub(crate) async fn describe_cluster(
    state: &KafkaState,
    ctx: &RequestContext,
    _request: DescribeClusterRequest,
) -> Result<Bytes, KafkaError> {
    let cluster = cluster(state).await;
    let mut response = DescribeClusterResponse::default();
    response.cluster_id = StrBytes::from_string(state.config.settings.cluster_id.clone());
    response.controller_id = BrokerId(state.config.node_id);
    response.brokers = cluster
        .brokers
        .iter()
        .map(|n| {
            let mut broker = DescribeClusterBroker::default();
            broker.broker_id = BrokerId(n.node_id);
            broker.host = StrBytes::from_string(n.kafka_host.clone());
            broker.port = i32::from(n.kafka_port);
            broker.rack = n.rack.clone().map(StrBytes::from_string);
            broker
        })
        .collect();
    respond(ctx, &response)
}

pub(crate) async fn handle(
    state: &KafkaState,
    ctx: &RequestContext,
    request: MetadataRequest,
) -> Result<Bytes, KafkaError> {
    let cluster = cluster(state).await;
    let mut response = MetadataResponse::default();
    response.brokers = cluster
        .brokers
        .iter()
        .map(|n| {
            let mut broker = MetadataResponseBroker::default();
            broker.node_id = BrokerId(n.node_id);
            broker.host = StrBytes::from_string(n.kafka_host.clone());
            broker.port = i32::from(n.kafka_port);
            broker.rack = n.rack.clone().map(StrBytes::from_string);
            broker
        })
        .collect();
    response.cluster_id = Some(StrBytes::from_string(
        state.config.settings.cluster_id.clone(),
    ));
    response.controller_id = BrokerId(state.config.node_id);
    // v4+ lets the client say whether topics may be created; before, Kafka always allowed it.
    let allow_create = ctx.version < 4 || request.allow_auto_topic_creation;
    match request.topics {
        // All topics (null, or an empty list before v1 semantics changed).
        // Only the topics the principal may describe are listed.
        None => match state.metadata.topics().await {
            Ok(topics) => {
                response.topics = topics
                    .iter()
                    .filter(|t| {
                        state.allowed(ctx, AclOperation::Describe, ResourceType::Topic, &t.name)
                    })
                    .map(|t| topic_entry(&cluster, t))
                    .collect()
            }
            Err(e) => response.error_code = metadata_code(&e),
        },
        Some(requested) => {
            for wanted in requested {
                let Some(name) = wanted.name else {
                    // Lookup by topic id (v10+).
                    let found = state
                        .metadata
                        .topics()
                        .await
                        .ok()
                        .and_then(|all| all.into_iter().find(|t| t.id == wanted.topic_id));
                    response.topics.push(match found {
                        Some(topic)
                            if !state.allowed(
                                ctx,
                                AclOperation::Describe,
                                ResourceType::Topic,
                                &topic.name,
                            ) =>
                        {
                            let mut entry = MetadataResponseTopic::default();
                            entry.topic_id = wanted.topic_id;
                            entry.error_code = ResponseError::TopicAuthorizationFailed.code();
                            entry
                        }
                        Some(topic) => topic_entry(&cluster, &topic),
                        None => {
                            let mut entry = MetadataResponseTopic::default();
                            entry.topic_id = wanted.topic_id;
                            entry.error_code = ResponseError::UnknownTopicId.code();
                            entry
                        }
                    });
                    continue;
                };
                let name = name.0.to_string();
                if !state.allowed(ctx, AclOperation::Describe, ResourceType::Topic, &name) {
                    response.topics.push(error_entry(
                        &name,
                        ResponseError::TopicAuthorizationFailed.code(),
                    ));
                    continue;
                }
                // Creating on first use takes Create on the cluster or on the topic; a
                // missing topic the principal may not create is TOPIC_AUTHORIZATION_FAILED
                // (as Kafka answers), so the client fails at once instead of retrying.
                let may_create = state.allowed_on_cluster(ctx, AclOperation::Create)
                    || state.allowed(ctx, AclOperation::Create, ResourceType::Topic, &name);
                let wants_create = allow_create && state.ingest.rules().defaults().auto_create;
                response.topics.push(
                    match state
                        .ingest
                        .rules()
                        .find_or_create(&*state.metadata, &name, allow_create && may_create)
                        .await
                    {
                        Ok(topic) => topic_entry(&cluster, &topic),
                        Err(MetadataError::UnknownTopic { .. }) if wants_create && !may_create => {
                            error_entry(&name, ResponseError::TopicAuthorizationFailed.code())
                        }
                        Err(e) => error_entry(&name, metadata_code(&e)),
                    },
                );
            }
        }
    }
    respond(ctx, &response)
}
