//! The Kafka request path: bytes → frame → header → request → handler → answer.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, FetchResponse, ProduceResponse};
use kafka_protocol::protocol::Decodable;
use silt_kafka::{KafkaConfig, KafkaSecurity, KafkaState, NodeCache, answer_frame};

use crate::harness::{PATIENCE, node};
use crate::seeds;

fn state() -> &'static KafkaState {
    static STATE: OnceLock<KafkaState> = OnceLock::new();
    STATE.get_or_init(|| {
        let node = node();
        KafkaState {
            config: Arc::new(KafkaConfig::default()),
            metadata: node.metadata.clone(),
            ingest: node.ingest.clone(),
            reader: node.reader.clone(),
            groups: node.groups.clone(),
            nodes: Arc::new(NodeCache::default()),
            security: Arc::new(KafkaSecurity::open(node.metadata.clone())),
        }
    })
}

/// One request frame (without its size prefix). An answer, when there is one, must be a
/// well-formed frame carrying the request's correlation id; only a produce with acks=0
/// goes unanswered; a request that cannot be decoded closes the connection (`Err`).
pub fn kafka_request(data: &[u8]) {
    let frame = Bytes::copy_from_slice(data);
    let began = std::time::Instant::now();
    let answer = node()
        .runtime
        .block_on(async { tokio::time::timeout(PATIENCE, answer_frame(state(), frame)).await });
    // A request may wait, but it must not hold the thread while it does: a handler that
    // never yields keeps the timeout from firing (and, in a node, a worker thread busy).
    let took = began.elapsed();
    assert!(
        took < PATIENCE + Duration::from_secs(2),
        "the request held its thread for {took:?}"
    );
    let Ok(Ok(answer)) = answer else { return };
    let key = i16::from_be_bytes([data[0], data[1]]);
    let Some(answer) = answer else {
        assert_eq!(
            key,
            ApiKey::Produce as i16,
            "only acks=0 produces go unanswered"
        );
        return;
    };
    assert!(answer.len() >= 8, "answer shorter than a response header");
    let size = i32::from_be_bytes([answer[0], answer[1], answer[2], answer[3]]);
    assert_eq!(size as usize, answer.len() - 4, "answer size prefix");
    assert_eq!(
        answer[4..8],
        data[4..8],
        "answer carries another correlation id"
    );
}

/// After a fuzzing round: the node still takes a produce and serves the record back.
pub fn kafka_still_serves() -> Result<(), String> {
    let marker = format!("still-serving-{}", fastrand::u64(..));
    let produce = seeds::produce_frame(9, 0, marker.as_bytes());
    let answer = node()
        .runtime
        .block_on(answer_frame(state(), produce))?
        .ok_or("no answer to a produce with acks=all")?;
    let mut body = answer.slice(8..);
    // Produce v9 answers with a flexible header: one byte of empty tagged fields.
    body = body.slice(1..);
    let response = ProduceResponse::decode(&mut body, 9).map_err(|e| e.to_string())?;
    let partition = &response.responses[0].partition_responses[0];
    if partition.error_code != 0 {
        return Err(format!(
            "produce failed with error {}",
            partition.error_code
        ));
    }
    let fetch = seeds::fetch_frame(12, 0, partition.base_offset);
    let answer = node()
        .runtime
        .block_on(answer_frame(state(), fetch))?
        .ok_or("no answer to a fetch")?;
    let mut body = answer.slice(9..);
    let response = FetchResponse::decode(&mut body, 12).map_err(|e| e.to_string())?;
    let data = &response.responses[0].partitions[0];
    if data.error_code != 0 {
        return Err(format!("fetch failed with error {}", data.error_code));
    }
    let records = data.records.as_ref().ok_or("fetch returned no records")?;
    if !records
        .windows(marker.len())
        .any(|w| w == marker.as_bytes())
    {
        return Err("the produced record was not fetched back".into());
    }
    Ok(())
}
