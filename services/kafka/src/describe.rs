//! DescribeLogDirs and DescribeProducers: what admin tools and consoles ask to size topics
//! and list their writers. DescribeLogDirs: Silt has one "log
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

/// DescribeProducers: the producers each partition remembers (their last batch's epoch
/// and sequence, and where their open transaction starts here), as
/// `kafka-transactions.sh describe-producers` and consoles show them (to find a hanging
/// transaction). There is no coordinator epoch: the coordinator's state is in the
/// metadata store.
pub(crate) async fn describe_producers(
    state: &KafkaState,
    ctx: &RequestContext,
    request: kafka_protocol::messages::DescribeProducersRequest,
) -> Result<Bytes, KafkaError> {
    use kafka_protocol::messages::ProducerId;
    use kafka_protocol::messages::describe_producers_response::{
        PartitionResponse, ProducerState, TopicResponse,
    };
    let mut response = kafka_protocol::messages::DescribeProducersResponse::default();
    for topic in request.topics {
        let name = topic.name.0.to_string();
        let readable = state.allowed(
            ctx,
            AclOperation::Read,
            silt_metadata::ResourceType::Topic,
            &name,
        );
        let mut out = TopicResponse::default();
        out.name = topic.name;
        for index in topic.partition_indexes {
            let mut partition = PartitionResponse::default();
            partition.partition_index = index;
            if !readable {
                partition.error_code = ResponseError::TopicAuthorizationFailed.code();
                out.partitions.push(partition);
                continue;
            }
            match state.metadata.partition_producers(&name, index).await {
                Ok(producers) => {
                    partition.active_producers = producers
                        .into_iter()
                        .map(|p| {
                            let mut s = ProducerState::default();
                            s.producer_id = ProducerId(p.producer_id);
                            s.producer_epoch = i32::from(p.epoch);
                            s.last_sequence = p.last_sequence;
                            s.last_timestamp = -1;
                            s.coordinator_epoch = -1;
                            s.current_txn_start_offset = p.txn_start_offset.unwrap_or(-1);
                            s
                        })
                        .collect();
                }
                Err(e) => {
                    partition.error_code = metadata_code(&e);
                    partition.error_message = Some(StrBytes::from_string(e.to_string()));
                }
            }
            out.partitions.push(partition);
        }
        response.topics.push(out);
    }
    respond(ctx, &response)
}
