//! What a long-polling Fetch costs the metadata service: a consumer waits at the high
//! watermark, one record is produced, the consumer is answered. The metadata calls the
//! fetch makes are counted (the produce's own commit is not) and printed; the test fails
//! if the cost grows back.

mod common;

use std::time::Duration;

use bytes::{Buf, Bytes};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{
    ApiKey, BrokerId, FetchRequest, FetchResponse, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, StrBytes};
use silt_kafka::answer_frame;
use silt_segment::Record;

const VERSION: i16 = 12;

fn fetch_frame(topic: &str, offset: i64, max_wait_ms: i32) -> Bytes {
    let mut partition = FetchPartition::default();
    partition.partition = 0;
    partition.fetch_offset = offset;
    partition.partition_max_bytes = 1 << 20;
    let mut wanted = FetchTopic::default();
    wanted.topic = TopicName(StrBytes::from_string(topic.to_string()));
    wanted.partitions = vec![partition];
    let mut request = FetchRequest::default();
    request.replica_id = BrokerId(-1);
    request.max_wait_ms = max_wait_ms;
    request.min_bytes = 1;
    request.max_bytes = 50 << 20;
    request.topics = vec![wanted];
    common::frame(ApiKey::Fetch, VERSION, 1, &request, false)
}

fn decode_fetch(mut answer: Bytes) -> FetchResponse {
    answer.advance(4); // size prefix
    ResponseHeader::decode(&mut answer, ApiKey::Fetch.response_header_version(VERSION))
        .expect("response header");
    FetchResponse::decode(&mut answer, VERSION).expect("fetch response")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_poll_wake_costs_few_metadata_calls() {
    let node = common::node(&["polled"]).await;
    let (state, ingest, counted) = (&node.state, &node.ingest, &node.counted);

    let mut woken_costs = Vec::new();
    for round in 0..5i64 {
        counted.reset();
        let poll = {
            let state = state.clone();
            tokio::spawn(async move {
                answer_frame(&state, fetch_frame("polled", round, 10_000))
                    .await
                    .expect("answered")
                    .expect("a fetch has an answer")
            })
        };
        // Let the fetch reach its wait, then produce one record.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let waiting = counted.total();
        let record = Record {
            timestamp_ms: 1,
            key: None,
            value: Some(Bytes::from_static(b"wake up")),
            headers: Vec::new(),
        };
        let ack = ingest
            .append("polled", 0, vec![record])
            .await
            .expect("appended");
        assert_eq!(ack.base_offset, round);
        let response = decode_fetch(poll.await.expect("joins"));
        let partition = &response.responses[0].partitions[0];
        assert_eq!(partition.error_code, 0, "{partition:?}");
        assert_eq!(partition.high_watermark, round + 1);
        assert!(
            partition.records.as_ref().is_some_and(|r| !r.is_empty()),
            "the woken fetch returns the new record"
        );
        let calls = counted.calls();
        let fetch_calls = counted.total() - calls.get("commit_segment").copied().unwrap_or(0);
        println!(
            "round {round}: {fetch_calls} metadata calls for the fetch ({waiting} before the wake): {calls:?}"
        );
        woken_costs.push(fetch_calls);
    }
    // One pass before the wait (the topic, the offsets) and one after (the offsets, the
    // index): nothing while waiting.
    assert!(
        woken_costs.iter().all(|c| *c <= 4),
        "metadata calls per woken long poll: {woken_costs:?}"
    );
}
