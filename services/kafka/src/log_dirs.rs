//! DescribeLogDirs: what admin tools and consoles ask to size topics. Silt has one "log
//! directory", its object store; each partition's size is the bytes its index entries
//! cover (raw segments and lake files), as the metadata service counts them.

use bytes::Bytes;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::{DescribeLogDirsRequest, DescribeLogDirsResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use silt_metadata::{AclOperation, MetadataError};

use crate::KafkaState;
use crate::apis::respond;
use crate::connection::RequestContext;
use crate::error::{KafkaError, metadata_code};

pub(crate) async fn describe(
    state: &KafkaState,
    ctx: &RequestContext,
    request: DescribeLogDirsRequest,
) -> Result<Bytes, KafkaError> {
    let mut response = DescribeLogDirsResponse::default();
    // Kafka asks Describe on the cluster.
    if !state.allowed_on_cluster(ctx, AclOperation::Describe) {
        response.error_code = ResponseError::ClusterAuthorizationFailed.code();
        return respond(ctx, &response);
    }
    let wanted: Vec<(String, Option<Vec<i32>>)> = match request.topics {
        Some(topics) => topics
            .into_iter()
            .map(|t| (t.topic.0.to_string(), Some(t.partitions)))
            .collect(),
        None => match state.metadata.topics().await {
            Ok(topics) => topics.into_iter().map(|t| (t.name, None)).collect(),
            Err(e) => {
                response.error_code = metadata_code(&e);
                return respond(ctx, &response);
            }
        },
    };
    let mut dir = DescribeLogDirsResult::default();
    dir.log_dir = StrBytes::from_string(state.config.log_dir.clone());
    // Object stores have no fixed capacity: unknown, as Kafka writes it.
    dir.total_bytes = -1;
    dir.usable_bytes = -1;
    for (name, partitions) in wanted {
        let sizes = match state.metadata.partition_sizes(&name).await {
            Ok(sizes) => sizes,
            // Kafka leaves out topics it does not have.
            Err(MetadataError::UnknownTopic { .. }) => continue,
            Err(e) => {
                dir.error_code = metadata_code(&e);
                break;
            }
        };
        let mut topic = DescribeLogDirsTopic::default();
        topic.name = TopicName(StrBytes::from_string(name));
        for (index, bytes) in sizes {
            if partitions.as_ref().is_some_and(|p| !p.contains(&index)) {
                continue;
            }
            let mut partition = DescribeLogDirsPartition::default();
            partition.partition_index = index;
            partition.partition_size = i64::try_from(bytes).unwrap_or(i64::MAX);
            topic.partitions.push(partition);
        }
        dir.topics.push(topic);
    }
    response.results.push(dir);
    respond(ctx, &response)
}
