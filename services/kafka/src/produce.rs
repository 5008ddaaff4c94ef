//! Produce: decode batches, validate, hand them to ingest in request order, answer once
//! durable (or not at all with acks=0).

use std::collections::HashMap;

use bytes::Bytes;
use futures::FutureExt;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use silt_ingest::{IngestError, PendingAppend};
use silt_metadata::{AclOperation, ResourceType, Topic};
use silt_segment::Record;
use tracing::{debug, warn};

use crate::KafkaState;
use crate::apis::{Reply, respond};
use crate::connection::RequestContext;
use crate::error::{KafkaError, ingest_code};
use crate::records::decode_batches;

/// One partition of a produce request: refused up front, or its batches in ingest.
enum PartitionState {
    Refused {
        code: i16,
        message: String,
    },
    /// Batches in ingest, and the append time when the topic uses LogAppendTime.
    Pending(Vec<PendingAppend>, Option<i64>),
}

struct PartitionWork {
    index: i32,
    state: PartitionState,
}

fn refuse(code: ResponseError, message: impl Into<String>) -> PartitionState {
    PartitionState::Refused {
        code: code.code(),
        message: message.into(),
    }
}

/// Validates one partition's data and submits its batches. Nothing is submitted unless
/// every batch decodes and every record fits.
async fn submit_partition(
    state: &KafkaState,
    topic: Option<&Topic>,
    name: &str,
    index: i32,
    data: Option<Bytes>,
    now_ms: i64,
    // For a transactional request: the producer id its transactional id names, if known.
    transactional: Option<Option<i64>>,
) -> PartitionState {
    let (transactional, id_producer) = (transactional.is_some(), transactional.flatten());
    let Some(topic) = topic else {
        return refuse(
            ResponseError::UnknownTopicOrPartition,
            format!("unknown topic {name}"),
        );
    };
    let rules = state.ingest.rules();
    if let Err(e) = rules.check_partition(topic, index) {
        return refuse(ResponseError::UnknownTopicOrPartition, e.to_string());
    }
    let Some(data) = data else {
        return refuse(ResponseError::CorruptMessage, "no records");
    };
    let mut batches = match decode_batches(data, now_ms) {
        Ok(batches) => batches,
        Err(e) => return refuse(ResponseError::CorruptMessage, e),
    };
    // A producer sends no markers; transactional records come with the request's
    // transactional id, and only they do.
    if batches.iter().any(|b| b.control) {
        return refuse(
            ResponseError::InvalidRecord,
            "control batches are written by the transaction coordinator, not by producers",
        );
    }
    if transactional
        && batches
            .iter()
            .any(|b| b.producer.map(|p| p.producer_id) != id_producer)
    {
        return refuse(
            ResponseError::InvalidProducerIdMapping,
            "the batches' producer id is not the one of the request's transactional id",
        );
    }
    if batches
        .iter()
        .any(|b| b.transactional != transactional || (b.transactional && b.producer.is_none()))
    {
        return refuse(
            ResponseError::InvalidRecord,
            "transactional batches come from a producer with a transactional.id, in a request that names it",
        );
    }
    if let Err(e) = rules.check_sizes(topic, batches.iter().flat_map(|b| &b.records)) {
        return refuse(ResponseError::MessageTooLarge, e.to_string());
    }
    if let Err(e) = rules.stamp(
        topic,
        batches.iter_mut().flat_map(|b| b.records.iter_mut()),
        now_ms,
    ) {
        return refuse(ResponseError::InvalidTimestamp, e.to_string());
    }
    let mut pending = Vec::with_capacity(batches.len());
    for batch in batches {
        if batch.records.is_empty() {
            continue;
        }
        let count = batch.records.len() as u64;
        let bytes: usize = batch.records.iter().map(Record::size_estimate).sum();
        let kind = if batch.transactional {
            silt_ingest::BatchKind::Transactional
        } else {
            silt_ingest::BatchKind::Plain
        };
        match state
            .ingest
            .submit(name, index, batch.records, batch.producer, kind)
            .await
        {
            Ok(p) => {
                metrics::counter!("silt_produce_records_total", "door" => "kafka").increment(count);
                metrics::counter!("silt_produce_bytes_total", "door" => "kafka")
                    .increment(bytes as u64);
                pending.push(p);
            }
            Err(e) => {
                // Earlier batches of this partition may already be on their way; the client
                // retries the request, and idempotence (if on) keeps them single.
                return PartitionState::Refused {
                    code: ingest_code(&e),
                    message: e.to_string(),
                };
            }
        }
    }
    PartitionState::Pending(pending, topic.config.log_append_time().then_some(now_ms))
}

/// Waits for a partition's batches; answers the first batch's base offset, or the first error.
async fn finish_partition(work: PartitionWork) -> PartitionProduceResponse {
    let mut response = PartitionProduceResponse::default();
    response.index = work.index;
    response.base_offset = -1;
    response.log_append_time_ms = -1;
    response.log_start_offset = -1;
    match work.state {
        PartitionState::Refused { code, message } => {
            response.error_code = code;
            response.error_message = Some(StrBytes::from_string(message));
        }
        PartitionState::Pending(pending, append_time) => {
            response.log_append_time_ms = append_time.unwrap_or(-1);
            let mut first_error: Option<IngestError> = None;
            for (i, p) in pending.into_iter().enumerate() {
                match p.wait().await {
                    Ok(ack) if i == 0 => response.base_offset = ack.base_offset,
                    Ok(_) => {}
                    Err(e) => {
                        first_error.get_or_insert(e);
                    }
                }
            }
            if let Some(e) = first_error {
                response.error_code = ingest_code(&e);
                response.error_message = Some(StrBytes::from_string(e.to_string()));
                response.base_offset = -1;
            }
        }
    }
    response
}

pub(crate) async fn handle(
    state: &KafkaState,
    ctx: &RequestContext,
    request: ProduceRequest,
) -> Result<Reply, KafkaError> {
    let now_ms = state.ingest.clock().now_ms();
    let transactional = request.transactional_id.is_some();
    let transactional_denied = request.transactional_id.as_ref().is_some_and(|id| {
        !state.allowed(
            ctx,
            AclOperation::Write,
            ResourceType::TransactionalId,
            id.as_str(),
        )
    });
    // The batches' producer must be the transactional id's: a principal allowed to use
    // one id cannot write into another id's transaction with its producer id.
    let id_producer = match request.transactional_id.as_ref() {
        Some(id) if !transactional_denied => state
            .metadata
            .transaction(id.as_str())
            .await
            .ok()
            .flatten()
            .map(|t| t.producer_id),
        _ => None,
    };
    let mut topics: HashMap<String, Option<Topic>> = HashMap::new();
    let mut work: Vec<(TopicName, Vec<PartitionWork>)> =
        Vec::with_capacity(request.topic_data.len());
    for topic_data in request.topic_data {
        let name = topic_data.name.0.to_string();
        if !topics.contains_key(&name) {
            let found = state.metadata.topic(&name).await.ok();
            topics.insert(name.clone(), found);
        }
        let topic = topics.get(&name).and_then(Option::as_ref);
        let writable = state.allowed(ctx, AclOperation::Write, ResourceType::Topic, &name);
        let mut partitions = Vec::with_capacity(topic_data.partition_data.len());
        for p in topic_data.partition_data {
            let state_for = if !writable {
                // Nothing of a topic the principal may not write reaches ingest.
                refuse(
                    ResponseError::TopicAuthorizationFailed,
                    format!("{} may not write to {name}", ctx.principal),
                )
            } else if transactional_denied {
                refuse(
                    ResponseError::TransactionalIdAuthorizationFailed,
                    format!("{} may not use this transactional id", ctx.principal),
                )
            } else {
                submit_partition(
                    state,
                    topic,
                    &name,
                    p.index,
                    p.records,
                    now_ms,
                    transactional.then_some(id_producer),
                )
                .await
            };
            partitions.push(PartitionWork {
                index: p.index,
                state: state_for,
            });
        }
        work.push((topic_data.name, partitions));
    }

    if request.acks == 0 {
        // Refused by ACLs: nothing was submitted; close the connection (the only way an
        // acks=0 producer learns of it).
        let refused = work.iter().find_map(|(name, partitions)| {
            partitions.iter().find_map(|p| match &p.state {
                PartitionState::Refused { code, message }
                    if *code == ResponseError::TopicAuthorizationFailed.code() =>
                {
                    Some(format!("{}: {message}", name.0))
                }
                _ => None,
            })
        });
        if let Some(reason) = refused {
            return Err(KafkaError::Unauthorized(reason));
        }
        // No answer at all; still log what failed.
        tokio::spawn(async move {
            for (name, partitions) in work {
                for p in partitions {
                    let index = p.index;
                    let r = finish_partition(p).await;
                    if r.error_code != 0 {
                        warn!(topic = %name.0, partition = index, code = r.error_code, "acks=0 produce failed");
                    }
                }
            }
        });
        return Ok(Reply::Now(None));
    }

    let ctx = ctx.clone();
    Ok(Reply::Later(
        async move {
            let mut response = ProduceResponse::default();
            for (name, partitions) in work {
                let mut topic = TopicProduceResponse::default();
                topic.name = name;
                for p in partitions {
                    topic.partition_responses.push(finish_partition(p).await);
                }
                response.responses.push(topic);
            }
            match respond(&ctx, &response) {
                Ok(bytes) => Some(bytes),
                Err(e) => {
                    debug!(error = %e, "encoding a produce response failed");
                    None
                }
            }
        }
        .boxed(),
    ))
}
