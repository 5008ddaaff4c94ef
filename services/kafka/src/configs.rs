//! Topic configs: DescribeConfigs, AlterConfigs and IncrementalAlterConfigs.

use bytes::Bytes;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult,
};
use kafka_protocol::messages::{
    AlterConfigsRequest, AlterConfigsResponse, DescribeConfigsRequest, DescribeConfigsResponse,
    IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
};
use kafka_protocol::protocol::StrBytes;
use silt_metadata::{AclOperation, MetadataError, ResourceType, TopicConfig};
use tracing::info;

use crate::KafkaState;
use crate::apis::respond;
use crate::connection::RequestContext;
use crate::error::{KafkaError, metadata_code};

const TOPIC: i8 = 2;
const BROKER: i8 = 4;
const BROKER_LOGGER: i8 = 8;

/// Where a config value comes from (Kafka's ConfigSource).
const DYNAMIC_TOPIC_CONFIG: i8 = 1;
const DEFAULT_CONFIG: i8 = 5;
/// Kafka's ConfigType for 64-bit and 32-bit integers.
const TYPE_INT: i8 = 3;
const TYPE_LONG: i8 = 5;

fn text(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}

/// Every topic config Silt knows: (name, value if set, default, type).
fn topic_configs(
    state: &KafkaState,
    config: &TopicConfig,
) -> Vec<(&'static str, Option<i64>, i64, i8)> {
    vec![
        ("retention.ms", config.retention_ms, -1, TYPE_LONG),
        ("retention.bytes", config.retention_bytes, -1, TYPE_LONG),
        (
            "max.message.bytes",
            config.max_message_bytes,
            state.ingest.rules().defaults().max_message_bytes as i64,
            TYPE_INT,
        ),
    ]
}

/// The error for a config resource the principal may not `op`, if it may not: topics
/// need the operation on the topic, broker resources on the cluster.
fn denied(
    state: &KafkaState,
    ctx: &RequestContext,
    resource_type: i8,
    name: &str,
    op: AclOperation,
) -> Option<i16> {
    if resource_type == TOPIC {
        (!state.allowed(ctx, op, ResourceType::Topic, name))
            .then(|| ResponseError::TopicAuthorizationFailed.code())
    } else {
        (!state.allowed_on_cluster(ctx, op))
            .then(|| ResponseError::ClusterAuthorizationFailed.code())
    }
}

pub(crate) async fn describe(
    state: &KafkaState,
    ctx: &RequestContext,
    request: DescribeConfigsRequest,
) -> Result<Bytes, KafkaError> {
    let mut response = DescribeConfigsResponse::default();
    for resource in request.resources {
        let mut result = DescribeConfigsResult::default();
        result.resource_type = resource.resource_type;
        result.resource_name = resource.resource_name.clone();
        if let Some(code) = denied(
            state,
            ctx,
            resource.resource_type,
            resource.resource_name.as_str(),
            AclOperation::DescribeConfigs,
        ) {
            result.error_code = code;
            response.results.push(result);
            continue;
        }
        match resource.resource_type {
            TOPIC => match state.metadata.topic(resource.resource_name.as_str()).await {
                Ok(topic) => {
                    let wanted = resource.configuration_keys.as_ref();
                    for (name, value, default, kind) in topic_configs(state, &topic.config) {
                        if wanted.is_some_and(|keys| !keys.iter().any(|k| k.as_str() == name)) {
                            continue;
                        }
                        let mut entry = DescribeConfigsResourceResult::default();
                        entry.name = text(name);
                        entry.value = Some(text(value.unwrap_or(default).to_string()));
                        entry.config_source = if value.is_some() {
                            DYNAMIC_TOPIC_CONFIG
                        } else {
                            DEFAULT_CONFIG
                        };
                        entry.config_type = kind;
                        result.configs.push(entry);
                    }
                }
                Err(e) => {
                    result.error_code = metadata_code(&e);
                    result.error_message = Some(text(e.to_string()));
                }
            },
            // This node has no dynamic broker configs to show.
            BROKER | BROKER_LOGGER => {}
            other => {
                result.error_code = ResponseError::InvalidRequest.code();
                result.error_message =
                    Some(text(format!("resource type {other} is not supported")));
            }
        }
        response.results.push(result);
    }
    respond(ctx, &response)
}

/// Applies a new config to a topic unless `validate_only`.
async fn apply(
    state: &KafkaState,
    name: &str,
    config: TopicConfig,
    validate_only: bool,
) -> Result<(), MetadataError> {
    if validate_only {
        state.metadata.topic(name).await.map(|_| ())
    } else {
        state.metadata.set_topic_config(name, config).await?;
        info!(topic = name, "topic config altered");
        Ok(())
    }
}

fn not_a_topic(resource_type: i8) -> MetadataError {
    MetadataError::InvalidRequest {
        reason: format!("only topic configs can be altered, not resource type {resource_type}"),
    }
}

/// AlterConfigs: the given configs replace all of the topic's configs.
pub(crate) async fn alter(
    state: &KafkaState,
    ctx: &RequestContext,
    request: AlterConfigsRequest,
) -> Result<Bytes, KafkaError> {
    let mut response = AlterConfigsResponse::default();
    for resource in request.resources {
        let name = resource.resource_name.to_string();
        let denial = denied(
            state,
            ctx,
            resource.resource_type,
            &name,
            AclOperation::AlterConfigs,
        );
        // A refused resource is left alone (the answer carries the refusal).
        let outcome =
            async {
                if denial.is_some() {
                    return Ok(());
                }
                if resource.resource_type != TOPIC {
                    return Err(not_a_topic(resource.resource_type));
                }
                let config =
                    TopicConfig::from_pairs(resource.configs.iter().filter_map(|c| {
                        Some((c.name.to_string(), c.value.as_ref()?.to_string()))
                    }))?;
                apply(state, &name, config, request.validate_only).await
            }
            .await;
        let mut r =
            kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse::default(
            );
        r.resource_type = resource.resource_type;
        r.resource_name = resource.resource_name;
        if let Some(code) = denial {
            r.error_code = code;
        } else if let Err(e) = outcome {
            r.error_code = metadata_code(&e);
            r.error_message = Some(text(e.to_string()));
        }
        response.responses.push(r);
    }
    respond(ctx, &response)
}

/// Kafka's incremental config operations.
const SET: i8 = 0;
const DELETE: i8 = 1;

/// IncrementalAlterConfigs: SET and DELETE single configs, keeping the others.
pub(crate) async fn incremental_alter(
    state: &KafkaState,
    ctx: &RequestContext,
    request: IncrementalAlterConfigsRequest,
) -> Result<Bytes, KafkaError> {
    let mut response = IncrementalAlterConfigsResponse::default();
    for resource in request.resources {
        let name = resource.resource_name.to_string();
        let denial = denied(
            state,
            ctx,
            resource.resource_type,
            &name,
            AclOperation::AlterConfigs,
        );
        // A refused resource is left alone (the answer carries the refusal).
        let outcome = async {
            if denial.is_some() {
                return Ok(());
            }
            if resource.resource_type != TOPIC {
                return Err(not_a_topic(resource.resource_type));
            }
            let mut config = state.metadata.topic(&name).await?.config;
            for c in &resource.configs {
                let key = c.name.as_str();
                match (c.config_operation, &c.value) {
                    (SET, Some(v)) => config.set(key, v.as_str())?,
                    (DELETE, _) => config.unset(key)?,
                    (op, _) => {
                        return Err(MetadataError::InvalidConfig {
                            key: key.to_string(),
                            reason: format!("operation {op} is not supported for this config"),
                        });
                    }
                }
            }
            apply(state, &name, config, request.validate_only).await
        }
        .await;
        let mut r =
            kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse::default();
        r.resource_type = resource.resource_type;
        r.resource_name = resource.resource_name;
        if let Some(code) = denial {
            r.error_code = code;
        } else if let Err(e) = outcome {
            r.error_code = metadata_code(&e);
            r.error_message = Some(text(e.to_string()));
        }
        response.responses.push(r);
    }
    respond(ctx, &response)
}
