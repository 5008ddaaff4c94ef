//! Produce and consume records as JSON, and the live tail as Server-Sent Events.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::{Extension, Json};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;
use futures::Stream;
use serde::{Deserialize, Serialize};
use silt_ingest::ProduceRefusal;
use silt_metadata::{AclOperation, ResourceType};
use silt_reader::{FetchRequest, ReadRecord};
use silt_segment::{Header, Record};
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::auth::Caller;
use crate::error::HttpError;
use crate::extract::{ApiJson, ApiPath, ApiQuery};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HeaderIn {
    pub key: String,
    /// UTF-8 value.
    pub value: Option<String>,
    /// Binary value, base64.
    pub value_b64: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecordIn {
    /// UTF-8 key; records with a key go to `murmur2(key) % partitions`, as in Kafka.
    pub key: Option<String>,
    /// Binary key, base64.
    pub key_b64: Option<String>,
    /// The value: a string is stored as its UTF-8 bytes, any other JSON as its JSON text,
    /// null (or absent) as a null value.
    #[schema(value_type = Value)]
    pub value: Option<serde_json::Value>,
    /// Binary value, base64.
    pub value_b64: Option<String>,
    #[serde(default)]
    pub headers: Vec<HeaderIn>,
    /// Target partition; by default chosen from the key, or round robin.
    pub partition: Option<i32>,
    /// Milliseconds since the epoch; by default the time of arrival.
    pub timestamp: Option<i64>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProduceRequest {
    pub records: Vec<RecordIn>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RecordPosition {
    pub partition: i32,
    pub offset: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProduceResponse {
    /// One entry per record, in request order.
    pub records: Vec<RecordPosition>,
}

fn decode_b64(field: &str, index: usize, text: &str) -> Result<Bytes, HttpError> {
    B64.decode(text).map(Bytes::from).map_err(|e| {
        HttpError::bad_request("invalid_base64", format!("records[{index}].{field}: {e}"))
    })
}

fn either(
    index: usize,
    name: &str,
    text: Option<Bytes>,
    b64: Option<&str>,
) -> Result<Option<Bytes>, HttpError> {
    match (text, b64) {
        (Some(_), Some(_)) => Err(HttpError::bad_request(
            "invalid_record",
            format!("records[{index}]: give {name} or {name}_b64, not both"),
        )),
        (Some(t), None) => Ok(Some(t)),
        (None, Some(b)) => decode_b64(&format!("{name}_b64"), index, b).map(Some),
        (None, None) => Ok(None),
    }
}

fn to_record(
    index: usize,
    input: RecordIn,
    now_ms: i64,
) -> Result<(Option<i32>, Record), HttpError> {
    let key = either(
        index,
        "key",
        input.key.map(Bytes::from),
        input.key_b64.as_deref(),
    )?;
    let value_text = match input.value {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(s)) => Some(Bytes::from(s)),
        Some(other) => Some(Bytes::from(other.to_string())),
    };
    let value = either(index, "value", value_text, input.value_b64.as_deref())?;
    let headers = input
        .headers
        .into_iter()
        .map(|h| {
            let value = either(
                index,
                "headers.value",
                h.value.map(Bytes::from),
                h.value_b64.as_deref(),
            )?;
            Ok(Header { key: h.key, value })
        })
        .collect::<Result<Vec<_>, HttpError>>()?;
    if let Some(ts) = input.timestamp.filter(|ts| *ts < 0) {
        return Err(HttpError::bad_request(
            "invalid_timestamp",
            format!("records[{index}].timestamp is {ts}: milliseconds since 1970, not negative"),
        ));
    }
    let record = Record {
        timestamp_ms: input.timestamp.unwrap_or(now_ms),
        key,
        value,
        headers,
    };
    Ok((input.partition, record))
}

#[utoipa::path(post, tag = "records", operation_id = "records_produce", summary = "Produce records",
    path = "/v1/topics/{topic}/records", params(("topic" = String, Path, description = "Topic name: 1 to 249 characters from `[a-zA-Z0-9._-]`, not `.` or `..`", pattern = r"^[a-zA-Z0-9._-]{1,249}$")),
    request_body = ProduceRequest,
    responses((status = 200, body = ProduceResponse), (status = 400, body = crate::ErrorBody),
        (status = 404, body = crate::ErrorBody), (status = 413, body = crate::ErrorBody),
        (status = 503, body = crate::ErrorBody)))]
pub(crate) async fn produce(
    State(state): State<AppState>,
    ApiPath(topic_name): ApiPath<String>,
    ApiJson(body): ApiJson<ProduceRequest>,
) -> Result<Json<ProduceResponse>, HttpError> {
    // A name no topic can have is the caller's mistake, not a missing topic.
    silt_metadata::validate_topic_name(&topic_name)?;
    let topic = state.metadata.topic(&topic_name).await?;
    if body.records.is_empty() {
        return Err(HttpError::bad_request(
            "invalid_request",
            "records must not be empty",
        ));
    }
    let rules = state.ingest.rules();
    let now_ms = state.ingest.clock().now_ms();
    // Validate everything before appending anything: a rejected request writes nothing.
    let count = body.records.len();
    let mut by_partition: BTreeMap<i32, (Vec<usize>, Vec<Record>)> = BTreeMap::new();
    for (index, input) in body.records.into_iter().enumerate() {
        let (partition, mut record) = to_record(index, input, now_ms)?;
        if let Err(ProduceRefusal::RecordTooLarge { size, max, .. }) =
            rules.check_sizes(&topic, [&record])
        {
            return Err(HttpError::new(
                axum::http::StatusCode::PAYLOAD_TOO_LARGE,
                "record_too_large",
                format!("records[{index}] is {size} bytes; the limit for {topic_name} is {max}"),
            ));
        }
        rules.stamp(&topic, [&mut record], now_ms).map_err(|e| {
            HttpError::bad_request("invalid_timestamp", format!("records[{index}]: {e}"))
        })?;
        let partition = rules
            .partition_for(&topic, partition, record.key.as_deref())
            .map_err(|e| {
                HttpError::new(
                    axum::http::StatusCode::NOT_FOUND,
                    "unknown_partition",
                    e.to_string(),
                )
            })?;
        let entry = by_partition.entry(partition).or_default();
        entry.0.push(index);
        entry.1.push(record);
    }
    let bytes: usize = by_partition
        .values()
        .flat_map(|(_, r)| r)
        .map(Record::size_estimate)
        .sum();
    let appends = by_partition
        .into_iter()
        .map(|(partition, (indexes, records))| {
            let ingest = state.ingest.clone();
            let topic = topic_name.clone();
            async move {
                let ack = ingest.append(&topic, partition, records).await;
                (partition, indexes, ack)
            }
        });
    let mut positions: Vec<Option<RecordPosition>> = (0..count).map(|_| None).collect();
    for (partition, indexes, ack) in futures::future::join_all(appends).await {
        let ack = ack?;
        for (i, index) in indexes.into_iter().enumerate() {
            positions[index] = Some(RecordPosition {
                partition,
                offset: ack.base_offset + i as i64,
            });
        }
    }
    metrics::counter!("silt_produce_records_total", "door" => "http").increment(count as u64);
    metrics::counter!("silt_produce_bytes_total", "door" => "http").increment(bytes as u64);
    Ok(Json(ProduceResponse {
        records: positions.into_iter().flatten().collect(),
    }))
}

#[derive(Debug, Clone, Copy, Default, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    /// Keys, values and header values as UTF-8 strings where valid, base64 otherwise.
    #[default]
    Utf8,
    /// Always base64 (`key_b64`, `value_b64`).
    Base64,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ConsumeQuery {
    /// First offset to read; default: the earliest.
    pub offset: Option<i64>,
    /// Most records to return (default 100, at most 10000).
    #[param(minimum = 1, maximum = 10000)]
    pub limit: Option<usize>,
    /// How long to wait for records at the end of the partition (default 0).
    pub wait_ms: Option<u64>,
    /// Stop adding records past this many bytes (default 1 MiB; one record always fits).
    pub max_bytes: Option<usize>,
    pub encoding: Option<Encoding>,
    /// `read_committed` (default) or `read_uncommitted`.
    pub isolation: Option<Isolation>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HeaderOut {
    pub key: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value_b64: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RecordOut {
    pub offset: i64,
    pub timestamp: i64,
    pub key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_b64: Option<String>,
    pub value: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value_b64: Option<String>,
    pub headers: Vec<HeaderOut>,
    /// Set on a transaction's marker (`commit` or `abort`), which only
    /// `isolation=read_uncommitted` returns: it is not a data record.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub marker: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ConsumeResponse {
    pub records: Vec<RecordOut>,
    /// Offset to ask for next.
    pub next_offset: i64,
    pub high_watermark: i64,
    /// The first offset of the oldest open transaction, else the high watermark: where
    /// committed reads stop.
    pub last_stable_offset: i64,
    pub log_start_offset: i64,
}

/// Which records a read returns.
#[derive(Debug, Clone, Copy, Default, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Isolation {
    /// Committed records only (the default): up to the last stable offset, without
    /// transactions' markers or aborted records.
    #[default]
    ReadCommitted,
    /// Every record up to the high watermark, aborted ones too, and markers (flagged).
    ReadUncommitted,
}

/// (text, base64) for one field: text when valid UTF-8 and not forced to base64.
fn encode(bytes: Option<&Bytes>, encoding: Encoding) -> (Option<String>, Option<String>) {
    match bytes {
        None => (None, None),
        Some(b) => match (encoding, std::str::from_utf8(b)) {
            (Encoding::Utf8, Ok(text)) => (Some(text.to_string()), None),
            _ => (None, Some(B64.encode(b))),
        },
    }
}

fn record_out(r: &ReadRecord, encoding: Encoding) -> RecordOut {
    let (key, key_b64) = encode(r.record.key.as_ref(), encoding);
    let (value, value_b64) = encode(r.record.value.as_ref(), encoding);
    let headers = r
        .record
        .headers
        .iter()
        .map(|h| {
            let (value, value_b64) = encode(h.value.as_ref(), encoding);
            HeaderOut {
                key: h.key.clone(),
                value,
                value_b64,
            }
        })
        .collect();
    RecordOut {
        offset: r.offset,
        timestamp: r.record.timestamp_ms,
        key,
        key_b64,
        value,
        value_b64,
        headers,
        marker: r
            .batch
            .filter(|b| b.kind == silt_ingest::BatchKind::Marker)
            .map(|_| {
                // Kafka's control record key: version, then type (1 commit, 0 abort).
                let commit = r
                    .record
                    .key
                    .as_deref()
                    .is_some_and(|k| k.get(3) == Some(&1));
                if commit { "commit" } else { "abort" }.to_string()
            }),
    }
}

#[utoipa::path(get, tag = "records", operation_id = "records_consume", summary = "Read records from a partition",
    path = "/v1/topics/{topic}/partitions/{partition}/records",
    params(("topic" = String, Path, description = "Topic name: 1 to 249 characters from `[a-zA-Z0-9._-]`, not `.` or `..`", pattern = r"^[a-zA-Z0-9._-]{1,249}$"), ("partition" = i32, Path, minimum = 0), ConsumeQuery),
    responses((status = 200, body = ConsumeResponse), (status = 404, body = crate::ErrorBody),
        (status = 416, description = "offset out of range", body = crate::ErrorBody)))]
pub(crate) async fn consume(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath((topic, partition)): ApiPath<(String, i32)>,
    ApiQuery(query): ApiQuery<ConsumeQuery>,
) -> Result<Json<ConsumeResponse>, HttpError> {
    if let Some(limit) = query.limit.filter(|l| !(1..=10_000).contains(l)) {
        return Err(HttpError::bad_request(
            "invalid_query",
            format!("limit is {limit}: ask for 1 to 10000 records"),
        ));
    }
    let offset = match query.offset {
        Some(o) => o,
        None => {
            state
                .reader
                .partition_offsets(&topic, partition)
                .await?
                .log_start_offset
        }
    };
    let committed = query.isolation.unwrap_or_default() == Isolation::ReadCommitted;
    let request = FetchRequest {
        topic,
        partition,
        offset,
        max_bytes: query.max_bytes.unwrap_or(1 << 20),
        max_records: query.limit.unwrap_or(100),
        max_wait: Duration::from_millis(
            query
                .wait_ms
                .unwrap_or(0)
                .min(state.settings.max_wait.as_millis() as u64),
        ),
        // Committed records only, unless asked: never an open or aborted transaction's.
        read_committed: committed,
    };
    let asked = std::time::Instant::now();
    let mut result = state.reader.fetch(&request).await?;
    // A long poll that waited answers only if its caller may still read.
    if asked.elapsed() >= Duration::from_secs(1) {
        state
            .recheck(
                &caller,
                AclOperation::Read,
                ResourceType::Topic,
                &request.topic,
            )
            .await?;
    }
    if committed {
        state
            .reader
            .drop_uncommitted(&request.topic, request.partition, &mut result.records)
            .await?;
    }
    let encoding = query.encoding.unwrap_or_default();
    let records: Vec<RecordOut> = result
        .records
        .iter()
        .map(|r| record_out(r, encoding))
        .collect();
    let bytes: usize = result
        .records
        .iter()
        .map(|r| r.record.size_estimate())
        .sum();
    metrics::counter!("silt_consume_records_total", "door" => "http")
        .increment(records.len() as u64);
    metrics::counter!("silt_consume_bytes_total", "door" => "http").increment(bytes as u64);
    Ok(Json(ConsumeResponse {
        records,
        next_offset: result.next_offset,
        high_watermark: result.high_watermark,
        last_stable_offset: result.last_stable_offset,
        log_start_offset: result.log_start_offset,
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct StreamQuery {
    /// First offset to send; default: the current end (only new records).
    pub offset: Option<i64>,
    pub encoding: Option<Encoding>,
}

struct Tail {
    state: AppState,
    request: FetchRequest,
    encoding: Encoding,
    done: bool,
    /// Who reads: checked again before every round (at most `max_wait` apart) and at
    /// once when ACLs are reloaded, so revoked access ends the stream.
    caller: Caller,
    acl_changes: Option<tokio::sync::watch::Receiver<u64>>,
}

fn error_event(e: HttpError) -> Event {
    let body = serde_json::json!({"code": e.code, "message": e.message});
    Event::default().event("error").data(body.to_string())
}

/// One round of the tail: a long poll, turned into events.
async fn tail_round(mut tail: Tail) -> Option<(Vec<Event>, Tail)> {
    if tail.done {
        return None;
    }
    // Reloads up to now are covered by the check below; the wait wakes on later ones.
    if let Some(changes) = &mut tail.acl_changes {
        changes.borrow_and_update();
    }
    let woken = {
        let fetch = tail.state.reader.fetch(&tail.request);
        match tail.acl_changes.as_mut() {
            // A reload of the ACLs ends the wait: the next round checks the caller first.
            Some(changes) => tokio::select! {
                fetched = fetch => Some(fetched),
                Ok(()) = changes.changed() => None,
            },
            None => Some(fetch.await),
        }
    };
    // Nothing is sent without checking the caller again first: a deleted user, a changed
    // password or a removed ACL ends the stream (at once on an ACL reload, else at the
    // next records or within `max_wait`).
    if let Err(e) = tail
        .state
        .recheck(
            &tail.caller,
            AclOperation::Read,
            ResourceType::Topic,
            &tail.request.topic,
        )
        .await
    {
        tail.done = true;
        return Some((vec![error_event(e)], tail));
    }
    let Some(fetched) = woken else {
        return Some((Vec::new(), tail));
    };
    let fetched = match fetched {
        Ok(mut result) => tail
            .state
            .reader
            .drop_uncommitted(
                &tail.request.topic,
                tail.request.partition,
                &mut result.records,
            )
            .await
            .map(|()| result),
        Err(e) => Err(e),
    };
    match fetched {
        Ok(result) => {
            tail.request.offset = result.next_offset;
            let events = result
                .records
                .iter()
                .map(|r| {
                    let data =
                        serde_json::to_string(&record_out(r, tail.encoding)).unwrap_or_default();
                    Event::default()
                        .event("record")
                        .id(r.offset.to_string())
                        .data(data)
                })
                .collect();
            Some((events, tail))
        }
        Err(e) => {
            tail.done = true;
            Some((vec![error_event(e.into())], tail))
        }
    }
}

#[utoipa::path(get, tag = "records", operation_id = "records_stream", summary = "Stream a partition as Server-Sent Events",
    path = "/v1/topics/{topic}/partitions/{partition}/stream",
    params(("topic" = String, Path, description = "Topic name: 1 to 249 characters from `[a-zA-Z0-9._-]`, not `.` or `..`", pattern = r"^[a-zA-Z0-9._-]{1,249}$"), ("partition" = i32, Path, minimum = 0), StreamQuery),
    responses((status = 200, description = "Server-Sent Events: `record` events with the record as JSON data and the offset as id; a `Last-Event-ID` header resumes after that offset"),
        (status = 400, body = crate::ErrorBody),
        (status = 404, body = crate::ErrorBody),
        (status = 416, body = crate::ErrorBody)))]
pub(crate) async fn stream(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiPath((topic, partition)): ApiPath<(String, i32)>,
    ApiQuery(query): ApiQuery<StreamQuery>,
    headers: axum::http::HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, HttpError> {
    // A reconnecting EventSource sends the id of the last record it got: resume after it.
    let resume = match headers.get("last-event-id") {
        Some(id) => Some(
            id.to_str()
                .ok()
                .and_then(|id| id.trim().parse::<i64>().ok())
                .ok_or_else(|| {
                    HttpError::bad_request(
                        "invalid_last_event_id",
                        "Last-Event-ID must be the offset of a record this stream sent",
                    )
                })?
                + 1,
        ),
        None => None,
    };
    let offset = match resume.or(query.offset) {
        // Out of range is 416, as on the records endpoint, before the stream starts.
        Some(offset) => {
            state
                .reader
                .checked_offsets(&topic, partition, offset)
                .await?;
            offset
        }
        None => {
            state
                .reader
                .partition_offsets(&topic, partition)
                .await?
                .high_watermark
        }
    };
    let tail = Tail {
        request: FetchRequest {
            topic,
            partition,
            offset,
            max_bytes: 1 << 20,
            max_records: 1000,
            max_wait: Duration::from_secs(10),
            read_committed: true,
        },
        encoding: query.encoding.unwrap_or_default(),
        done: false,
        acl_changes: state.acl_changes(),
        caller,
        state,
    };
    use futures::StreamExt;
    let events = futures::stream::unfold(tail, tail_round)
        .flat_map(|events| futures::stream::iter(events.into_iter().map(Ok)));
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}
