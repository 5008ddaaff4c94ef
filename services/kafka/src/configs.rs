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
use silt_metadata::{
    AclOperation, ConfigDef, ConfigSource, ConfigType, Effect, MetadataError, ResourceType,
    TopicConfig, TopicConfigDefaults, config_def,
};
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
const STATIC_BROKER_CONFIG: i8 = 4;
const DEFAULT_CONFIG: i8 = 5;

fn text(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}

/// The defaults this node gives topics that set nothing.
pub(crate) fn topic_defaults(state: &KafkaState) -> TopicConfigDefaults {
    TopicConfigDefaults {
        retention_ms: state.config.default_retention_ms,
        max_message_bytes: state.ingest.rules().defaults().max_message_bytes as i64,
    }
}

/// Kafka's ConfigSource code for where a topic config's value comes from.
pub(crate) fn source_code(source: ConfigSource) -> i8 {
    match source {
        ConfigSource::Topic => DYNAMIC_TOPIC_CONFIG,
        ConfigSource::Node => STATIC_BROKER_CONFIG,
        ConfigSource::Default => DEFAULT_CONFIG,
    }
}

/// What DescribeConfigs documents for a config: Kafka's meaning, and what Silt does with it.
fn documentation(def: &ConfigDef) -> String {
    match def.effect {
        Effect::Applied => def.doc.to_string(),
        Effect::None(why) => format!("{} Accepted with no effect in Silt: {why}.", def.doc),
    }
}

/// One described config entry.
fn entry(
    name: &str,
    value: String,
    source: i8,
    kind: i8,
    read_only: bool,
    doc: Option<String>,
) -> DescribeConfigsResourceResult {
    let mut entry = DescribeConfigsResourceResult::default();
    entry.name = text(name);
    entry.value = Some(text(value));
    entry.config_source = source;
    entry.read_only = read_only;
    entry.config_type = kind;
    entry.documentation = doc.map(text);
    entry
}

/// This node's broker configs, under Kafka's names: what it was started with. They are
/// read only (set in the node's configuration file).
fn broker_configs(state: &KafkaState) -> Vec<(&'static str, String, ConfigType)> {
    let topics = state.ingest.rules().defaults();
    let config = &state.config;
    let mut out = vec![
        (
            "advertised.listeners",
            format!(
                "{}://{}:{}",
                match (
                    config.settings.tls,
                    config.settings.sasl_mechanisms.is_empty()
                ) {
                    (true, true) => "SSL",
                    (true, false) => "SASL_SSL",
                    (false, true) => "PLAINTEXT",
                    (false, false) => "SASL_PLAINTEXT",
                },
                config.advertised_host,
                config.advertised_port
            ),
            ConfigType::String,
        ),
        (
            "auto.create.topics.enable",
            topics.auto_create.to_string(),
            ConfigType::Boolean,
        ),
        ("broker.id", config.node_id.to_string(), ConfigType::Int),
        ("default.replication.factor", "1".into(), ConfigType::Int),
        ("log.cleanup.policy", "delete".into(), ConfigType::List),
        ("log.retention.bytes", "-1".into(), ConfigType::Long),
        (
            "log.retention.ms",
            config.default_retention_ms.to_string(),
            ConfigType::Long,
        ),
        (
            "message.max.bytes",
            topics.max_message_bytes.to_string(),
            ConfigType::Int,
        ),
        ("min.insync.replicas", "1".into(), ConfigType::Int),
        ("node.id", config.node_id.to_string(), ConfigType::Int),
        (
            "num.partitions",
            topics.default_partitions.to_string(),
            ConfigType::Int,
        ),
        (
            "offsets.topic.replication.factor",
            "1".into(),
            ConfigType::Short,
        ),
        (
            "transaction.state.log.replication.factor",
            "1".into(),
            ConfigType::Short,
        ),
    ];
    if let Some(rack) = &config.rack {
        out.push(("broker.rack", rack.clone(), ConfigType::String));
    }
    out.sort_by_key(|(name, ..)| *name);
    out
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
        let keys = resource.configuration_keys.as_ref();
        let wanted = |name: &str| keys.is_none_or(|keys| keys.iter().any(|k| k.as_str() == name));
        match resource.resource_type {
            TOPIC => match state.metadata.topic(resource.resource_name.as_str()).await {
                Ok(topic) => {
                    for described in topic.config.describe(&topic_defaults(state)) {
                        let def = described.def;
                        if !wanted(def.name) {
                            continue;
                        }
                        result.configs.push(entry(
                            def.name,
                            described.value,
                            source_code(described.source),
                            def.kind.code(),
                            false,
                            request.include_documentation.then(|| documentation(def)),
                        ));
                    }
                }
                Err(e) => {
                    result.error_code = metadata_code(&e);
                    result.error_message = Some(text(e.to_string()));
                }
            },
            BROKER => {
                let name = resource.resource_name.as_str();
                if !name.is_empty() && name != state.config.node_id.to_string() {
                    result.error_code = ResponseError::InvalidRequest.code();
                    result.error_message = Some(text(format!(
                        "this is broker {}; ask broker {name} for its configs",
                        state.config.node_id
                    )));
                } else {
                    for (name, value, kind) in broker_configs(state) {
                        if wanted(name) {
                            result.configs.push(entry(
                                name,
                                value,
                                STATIC_BROKER_CONFIG,
                                kind.code(),
                                true,
                                None,
                            ));
                        }
                    }
                }
            }
            // Log levels are set with the node's log filter, not per logger.
            BROKER_LOGGER => {}
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
const APPEND: i8 = 2;
const SUBTRACT: i8 = 3;

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
                    (op @ (APPEND | SUBTRACT), Some(v))
                        if config_def(key).is_some_and(|d| d.kind == ConfigType::List) =>
                    {
                        let current = config.get(key).unwrap_or_else(|| {
                            config_def(key).map(|d| d.default.to_string()).unwrap_or_default()
                        });
                        let mut items: Vec<&str> =
                            current.split(',').filter(|i| !i.is_empty()).collect();
                        for item in v.as_str().split(',').map(str::trim) {
                            if op == APPEND && !items.contains(&item) {
                                items.push(item);
                            } else if op == SUBTRACT {
                                items.retain(|i| *i != item);
                            }
                        }
                        let joined = items.join(",");
                        config.set(key, &joined)?;
                    }
                    (op, _) => {
                        return Err(MetadataError::InvalidConfig {
                            key: key.to_string(),
                            reason: format!(
                                "operation {op} is not supported for {key} (SET and DELETE are; APPEND and SUBTRACT for lists)"
                            ),
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
