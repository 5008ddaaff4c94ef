//! Fetch (with long polling through the reader) and ListOffsets.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use bytes::Bytes;
use futures::FutureExt;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::fetch_response::{
    AbortedTransaction, FetchableTopicResponse, PartitionData,
};
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{
    BrokerId, FetchRequest, FetchResponse, ListOffsetsRequest, ListOffsetsResponse, ProducerId,
};
use silt_metadata::{AclOperation, ResourceType};
use silt_reader::{FetchRequest as ReadRequest, ReaderError, Woken};
use tokio::time::Instant;
use tracing::debug;

use crate::KafkaState;
use crate::apis::{Reply, respond};
use crate::connection::RequestContext;
use crate::error::reader_code;
use crate::records::encode_batch;

/// Longest wait a fetch may ask for.
const MAX_WAIT: Duration = Duration::from_secs(30);

struct Wanted {
    topic: String,
    partition: i32,
    offset: i64,
    max_bytes: usize,
}

pub(crate) fn handle(state: &KafkaState, ctx: &RequestContext, request: FetchRequest) -> Reply {
    let state = state.clone();
    let ctx = ctx.clone();
    Reply::Later(
        async move {
            // Topics the principal may not read answer TOPIC_AUTHORIZATION_FAILED.
            let denied: HashSet<String> = request
                .topics
                .iter()
                .map(|t| t.topic.0.to_string())
                .filter(|t| !state.allowed(&ctx, AclOperation::Read, ResourceType::Topic, t))
                .collect();
            let response = fetch(&state, &request, &denied).await;
            respond(&ctx, &response)
                .inspect_err(|e| debug!(error = %e, "encoding a fetch response failed"))
                .ok()
        }
        .boxed(),
    )
}

async fn fetch(
    state: &KafkaState,
    request: &FetchRequest,
    denied: &HashSet<String>,
) -> FetchResponse {
    let wait = Duration::from_millis(request.max_wait_ms.max(0) as u64).min(MAX_WAIT);
    let deadline = Instant::now() + wait;
    let min_bytes = request.min_bytes.max(0) as usize;
    let wanted: Vec<Wanted> = request
        .topics
        .iter()
        .filter(|t| !denied.contains(t.topic.0.as_str()))
        .flat_map(|t| {
            t.partitions.iter().map(|p| Wanted {
                topic: t.topic.0.to_string(),
                partition: p.partition,
                offset: p.fetch_offset,
                max_bytes: p.partition_max_bytes.max(0) as usize,
            })
        })
        .collect();
    // Subscribe before the first pass reads the offsets, so no commit between a pass
    // and the wait goes unnoticed; the wait then asks the metadata service nothing.
    let mut watch = state
        .reader
        .watch_partitions(wanted.iter().map(|w| (w.topic.as_str(), w.partition)));
    // Each topic's timestamp type, looked up once per request, not once per pass.
    let mut append_time = HashMap::new();
    for topic in &request.topics {
        let name = topic.topic.0.as_str();
        if !denied.contains(name) && !append_time.contains_key(name) {
            let log_append_time = state
                .metadata
                .topic(name)
                .await
                .is_ok_and(|t| t.config.log_append_time());
            append_time.insert(name.to_string(), log_append_time);
        }
    }
    loop {
        let pass = one_pass(state, request, &wanted, denied, &append_time).await;
        // min_bytes 0 answers at once, as in Kafka.
        if pass.bytes >= min_bytes || pass.errors || Instant::now() >= deadline {
            return pass.response;
        }
        for (index, high_watermark) in pass.high_watermarks.iter().enumerate() {
            watch.seen(index, *high_watermark);
        }
        if watch.wait(deadline).await == Woken::Deadline {
            // Nothing changed since the last pass: its answer stands.
            return pass.response;
        }
    }
}

/// What one pass over the wanted partitions found.
struct Pass {
    response: FetchResponse,
    /// Bytes of records in the response.
    bytes: usize,
    /// Whether any partition had an error.
    errors: bool,
    /// The high watermark of each wanted partition, in `wanted` order.
    high_watermarks: Vec<i64>,
}

/// Reads every wanted partition once, without waiting.
async fn one_pass(
    state: &KafkaState,
    request: &FetchRequest,
    wanted: &[Wanted],
    denied: &HashSet<String>,
    append_time: &HashMap<String, bool>,
) -> Pass {
    let mut budget = if request.max_bytes > 0 {
        request.max_bytes as usize
    } else {
        usize::MAX
    };
    let mut total = 0;
    let mut errors = false;
    let mut response = FetchResponse::default();
    let mut high_watermarks = vec![-1; wanted.len()];
    for topic in &request.topics {
        let log_append_time = append_time
            .get(topic.topic.0.as_str())
            .copied()
            .unwrap_or(false);
        let mut out = FetchableTopicResponse::default();
        out.topic = topic.topic.clone();
        out.topic_id = topic.topic_id;
        for p in &topic.partitions {
            let index = wanted
                .iter()
                .position(|w| w.topic == topic.topic.0.as_str() && w.partition == p.partition);
            let mut data = PartitionData::default();
            data.partition_index = p.partition;
            data.high_watermark = -1;
            data.last_stable_offset = -1;
            data.log_start_offset = -1;
            data.preferred_read_replica = BrokerId(-1);
            data.records = Some(Bytes::new());
            if denied.contains(topic.topic.0.as_str()) {
                errors = true;
                data.error_code = ResponseError::TopicAuthorizationFailed.code();
            } else if let Some(index) = index {
                let w = &wanted[index];
                // Once the response is full, later partitions only report their offsets;
                // the first partition with data always gets at least one whole record.
                let max_bytes = if total == 0 {
                    w.max_bytes
                } else {
                    w.max_bytes.min(budget)
                };
                let read = ReadRequest {
                    topic: w.topic.clone(),
                    partition: w.partition,
                    offset: w.offset,
                    max_bytes,
                    max_records: if budget == 0 { 1 } else { 100_000 },
                    max_wait: Duration::ZERO,
                    read_committed: request.isolation_level == READ_COMMITTED,
                };
                match read_partition(state, &read, budget == 0, log_append_time).await {
                    Ok(read) => {
                        high_watermarks[index] = read.high_watermark;
                        data.high_watermark = read.high_watermark;
                        data.last_stable_offset = read.last_stable_offset;
                        data.log_start_offset = read.log_start_offset;
                        if request.isolation_level == READ_COMMITTED {
                            data.aborted_transactions = Some(read.aborted);
                        }
                        total += read.records.len();
                        budget = budget.saturating_sub(read.records.len());
                        data.records = Some(read.records);
                    }
                    Err(e) => {
                        errors = true;
                        data.error_code = reader_code(&e);
                        if let ReaderError::OffsetOutOfRange {
                            high_watermark,
                            log_start_offset,
                            ..
                        } = e
                        {
                            data.high_watermark = high_watermark;
                            data.log_start_offset = log_start_offset;
                        }
                    }
                }
            }
            out.partitions.push(data);
        }
        response.responses.push(out);
    }
    metrics::counter!("silt_consume_bytes_total", "door" => "kafka").increment(total as u64);
    Pass {
        response,
        bytes: total,
        errors,
        high_watermarks,
    }
}

/// Fetch's isolation levels.
const READ_COMMITTED: i8 = 1;

/// One partition's answer: its records as Kafka record batches, its offsets, and (for
/// read_committed) the aborted transactions among the records.
struct PartitionRead {
    records: Bytes,
    high_watermark: i64,
    last_stable_offset: i64,
    log_start_offset: i64,
    aborted: Vec<AbortedTransaction>,
}

async fn read_partition(
    state: &KafkaState,
    read: &ReadRequest,
    offsets_only: bool,
    log_append_time: bool,
) -> Result<PartitionRead, ReaderError> {
    if offsets_only {
        let o = state
            .reader
            .checked_offsets(&read.topic, read.partition, read.offset)
            .await?;
        return Ok(PartitionRead {
            records: Bytes::new(),
            high_watermark: o.high_watermark,
            last_stable_offset: o.last_stable_offset,
            log_start_offset: o.log_start_offset,
            aborted: Vec::new(),
        });
    }
    let result = state.reader.fetch(read).await?;
    metrics::counter!("silt_consume_records_total", "door" => "kafka")
        .increment(result.records.len() as u64);
    // read_committed clients drop the batches of these producers from these offsets on,
    // up to their abort markers.
    let aborted = match (
        read.read_committed,
        result.records.first(),
        result.records.last(),
    ) {
        (true, Some(first), Some(last)) => state
            .metadata
            .aborted_transactions(&read.topic, read.partition, first.offset, last.offset + 1)
            .await
            .map_err(ReaderError::from)?
            .into_iter()
            .map(|a| {
                let mut t = AbortedTransaction::default();
                t.producer_id = ProducerId(a.producer_id);
                t.first_offset = a.first_offset;
                t
            })
            .collect(),
        _ => Vec::new(),
    };
    let batch = encode_batch(&result.records, log_append_time)
        .map_err(|reason| ReaderError::Internal { reason })?;
    Ok(PartitionRead {
        records: batch,
        high_watermark: result.high_watermark,
        last_stable_offset: result.last_stable_offset,
        log_start_offset: result.log_start_offset,
        aborted,
    })
}

/// Kafka's special timestamps in ListOffsets.
const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const EARLIEST_LOCAL: i64 = -4;
const LATEST_TIERED: i64 = -5;

pub(crate) fn list_offsets(
    state: &KafkaState,
    ctx: &RequestContext,
    request: ListOffsetsRequest,
) -> Reply {
    let state = state.clone();
    let ctx = ctx.clone();
    Reply::Later(
        async move {
            let mut response = ListOffsetsResponse::default();
            for topic in &request.topics {
                let name = topic.name.0.to_string();
                let mut out = ListOffsetsTopicResponse::default();
                out.name = topic.name.clone();
                let allowed =
                    state.allowed(&ctx, AclOperation::Describe, ResourceType::Topic, &name);
                for p in &topic.partitions {
                    let mut r = ListOffsetsPartitionResponse::default();
                    r.partition_index = p.partition_index;
                    r.timestamp = -1;
                    r.offset = -1;
                    if !allowed {
                        r.error_code = ResponseError::TopicAuthorizationFailed.code();
                        out.partitions.push(r);
                        continue;
                    }
                    match list_one(
                        &state,
                        &name,
                        p.partition_index,
                        p.timestamp,
                        request.isolation_level == READ_COMMITTED,
                    )
                    .await
                    {
                        Ok(Some((offset, timestamp))) => {
                            r.offset = offset;
                            r.timestamp = timestamp;
                        }
                        Ok(None) => {}
                        Err(code) => r.error_code = code,
                    }
                    out.partitions.push(r);
                }
                response.topics.push(out);
            }
            respond(&ctx, &response).ok()
        }
        .boxed(),
    )
}

async fn list_one(
    state: &KafkaState,
    topic: &str,
    partition: i32,
    timestamp: i64,
    read_committed: bool,
) -> Result<Option<(i64, i64)>, i16> {
    let offsets = state
        .reader
        .partition_offsets(topic, partition)
        .await
        .map_err(|e| reader_code(&e))?;
    match timestamp {
        LATEST | LATEST_TIERED if read_committed => Ok(Some((offsets.last_stable_offset, -1))),
        LATEST | LATEST_TIERED => Ok(Some((offsets.high_watermark, -1))),
        EARLIEST | EARLIEST_LOCAL => Ok(Some((offsets.log_start_offset, -1))),
        // As Kafka: a record found past what the isolation level may read is no answer.
        t if t >= 0 => {
            let readable = if read_committed {
                offsets.last_stable_offset
            } else {
                offsets.high_watermark
            };
            let found = state
                .reader
                .offset_for_timestamp(topic, partition, t)
                .await
                .map_err(|e| reader_code(&e))?;
            Ok(found.filter(|(offset, _)| *offset < readable))
        }
        // -3 (the record with the largest timestamp) and anything else.
        _ => Err(ResponseError::UnsupportedVersion.code()),
    }
}
