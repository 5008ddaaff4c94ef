//! Topic admin: create, list, describe (with offsets), delete.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use silt_metadata::{AclOperation, CLUSTER_RESOURCE, ResourceType, Topic, TopicConfig};
use utoipa::ToSchema;

use crate::error::HttpError;
use crate::extract::{ApiJson, ApiPath};
use crate::{AppState, Caller};

/// A topic config value: Kafka-style string, or a JSON number.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum ConfigValue {
    Text(String),
    Number(i64),
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTopic {
    /// 1 to 249 characters from `[a-zA-Z0-9._-]`, not `.` or `..`.
    #[schema(pattern = r"^[a-zA-Z0-9._-]{1,249}$")]
    pub name: String,
    #[schema(minimum = 1, maximum = 100000)]
    pub partitions: i32,
    /// Kafka topic configs by name (`retention.ms`, `max.message.bytes`, ...: every topic
    /// config Kafka knows; docs/kafka.md lists them and what Silt does with each).
    #[serde(default)]
    pub config: BTreeMap<String, ConfigValue>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TopicInfo {
    pub name: String,
    pub id: String,
    pub partition_count: i32,
    pub config: BTreeMap<String, String>,
    pub created_at_ms: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PartitionInfo {
    pub partition: i32,
    /// First offset still stored (log start offset).
    pub earliest_offset: i64,
    /// Offset the next record will get (high watermark).
    pub latest_offset: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TopicDetail {
    #[serde(flatten)]
    pub topic: TopicInfo,
    pub partitions: Vec<PartitionInfo>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TopicList {
    pub topics: Vec<TopicInfo>,
}

fn info(t: Topic) -> TopicInfo {
    TopicInfo {
        config: t
            .config
            .pairs()
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
        id: t.id.to_string(),
        name: t.name,
        partition_count: t.partitions,
        created_at_ms: t.created_at_ms,
    }
}

#[utoipa::path(post, tag = "topics", operation_id = "topics_create", summary = "Create a topic",
    path = "/v1/topics", request_body = CreateTopic,
    responses((status = 201, body = TopicInfo), (status = 400, body = crate::ErrorBody), (status = 409, body = crate::ErrorBody)))]
pub(crate) async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiJson(body): ApiJson<CreateTopic>,
) -> Result<(StatusCode, Json<TopicInfo>), HttpError> {
    // Create on the cluster, or on the topic.
    if !state.allowed(
        &caller,
        AclOperation::Create,
        ResourceType::Cluster,
        CLUSTER_RESOURCE,
    ) {
        state.authorize(
            &caller,
            AclOperation::Create,
            ResourceType::Topic,
            &body.name,
        )?;
    }
    let pairs = body.config.into_iter().map(|(k, v)| {
        let v = match v {
            ConfigValue::Text(s) => s,
            ConfigValue::Number(n) => n.to_string(),
        };
        (k, v)
    });
    let config = TopicConfig::from_pairs(pairs)?;
    let topic = state
        .metadata
        .create_topic(&body.name, body.partitions, config)
        .await?;
    tracing::info!(topic = %topic.name, partitions = topic.partitions, "topic created");
    Ok((StatusCode::CREATED, Json(info(topic))))
}

#[utoipa::path(get, tag = "topics", operation_id = "topics_list", summary = "List topics",
    path = "/v1/topics", responses((status = 200, body = TopicList)))]
pub(crate) async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<TopicList>, HttpError> {
    // Only the topics the caller may describe.
    let topics = state
        .metadata
        .topics()
        .await?
        .into_iter()
        .filter(|t| {
            state.allowed(
                &caller,
                AclOperation::Describe,
                ResourceType::Topic,
                &t.name,
            )
        })
        .map(|t| {
            // Configs only where the caller may DescribeConfigs.
            let configs = state.allowed(
                &caller,
                AclOperation::DescribeConfigs,
                ResourceType::Topic,
                &t.name,
            );
            let mut topic = info(t);
            if !configs {
                topic.config.clear();
            }
            topic
        })
        .collect();
    Ok(Json(TopicList { topics }))
}

#[utoipa::path(get, tag = "topics", operation_id = "topics_describe", summary = "Describe a topic and its partitions",
    path = "/v1/topics/{topic}", params(("topic" = String, Path, description = "Topic name: 1 to 249 characters from `[a-zA-Z0-9._-]`, not `.` or `..`", pattern = r"^[a-zA-Z0-9._-]{1,249}$")),
    responses((status = 200, body = TopicDetail), (status = 404, body = crate::ErrorBody)))]
pub(crate) async fn describe(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<TopicDetail>, HttpError> {
    let topic = state.metadata.topic(&name).await?;
    let partitions = state
        .metadata
        .partition_offsets(&name)
        .await?
        .into_iter()
        .map(|o| PartitionInfo {
            partition: o.partition,
            earliest_offset: o.log_start_offset,
            latest_offset: o.high_watermark,
        })
        .collect();
    let mut topic = info(topic);
    // Describe (checked with the route) shows the topic; its configs need DescribeConfigs.
    if !state.allowed(
        &caller,
        AclOperation::DescribeConfigs,
        ResourceType::Topic,
        &name,
    ) {
        topic.config.clear();
    }
    Ok(Json(TopicDetail { topic, partitions }))
}

#[utoipa::path(delete, tag = "topics", operation_id = "topics_delete", summary = "Delete a topic",
    path = "/v1/topics/{topic}", params(("topic" = String, Path, description = "Topic name: 1 to 249 characters from `[a-zA-Z0-9._-]`, not `.` or `..`", pattern = r"^[a-zA-Z0-9._-]{1,249}$")),
    responses((status = 204), (status = 404, body = crate::ErrorBody)))]
pub(crate) async fn delete(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> Result<StatusCode, HttpError> {
    state.metadata.delete_topic(&name).await?;
    tracing::info!(topic = %name, "topic deleted");
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AlterTopic {
    /// Grow the topic to this many partitions (never fewer than it has).
    #[schema(minimum = 1, maximum = 100000)]
    pub partitions: Option<i32>,
    /// Configs to set, by name, as strings or numbers; `null` removes one (back to its
    /// default). Others are kept.
    #[serde(default)]
    #[schema(value_type = BTreeMap<String, Value>)]
    pub config: BTreeMap<String, Option<ConfigValue>>,
}

#[utoipa::path(patch, tag = "topics", operation_id = "topics_alter", summary = "Grow a topic or change its configs",
    path = "/v1/topics/{topic}", params(("topic" = String, Path, description = "Topic name: 1 to 249 characters from `[a-zA-Z0-9._-]`, not `.` or `..`", pattern = r"^[a-zA-Z0-9._-]{1,249}$")),
    request_body = AlterTopic,
    responses((status = 200, body = TopicInfo), (status = 400, body = crate::ErrorBody), (status = 404, body = crate::ErrorBody)))]
pub(crate) async fn alter(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<AlterTopic>,
) -> Result<Json<TopicInfo>, HttpError> {
    // As Kafka: CreatePartitions needs Alter on the topic, configs AlterConfigs.
    if body.partitions.is_some() {
        state.authorize(&caller, AclOperation::Alter, ResourceType::Topic, &name)?;
    }
    if !body.config.is_empty() {
        state.authorize(
            &caller,
            AclOperation::AlterConfigs,
            ResourceType::Topic,
            &name,
        )?;
    }
    let mut topic = state.metadata.topic(&name).await?;
    // Everything is checked before anything changes.
    let mut config = topic.config.clone();
    for (key, value) in &body.config {
        match value {
            Some(ConfigValue::Text(s)) => config.set(key, s)?,
            Some(ConfigValue::Number(n)) => config.set(key, &n.to_string())?,
            None => config.unset(key)?,
        }
    }
    if let Some(partitions) = body.partitions
        && partitions < topic.partitions
    {
        return Err(HttpError::bad_request(
            "invalid_partitions",
            format!(
                "{name} has {} partitions; a topic grows, it never shrinks",
                topic.partitions
            ),
        ));
    }
    if config != topic.config {
        topic = state.metadata.set_topic_config(&name, config).await?;
        tracing::info!(topic = %name, "topic config altered");
    }
    if let Some(partitions) = body.partitions.filter(|p| *p > topic.partitions) {
        topic = state.metadata.add_partitions(&name, partitions).await?;
        tracing::info!(topic = %name, partitions, "partitions added");
    }
    Ok(Json(info(topic)))
}
