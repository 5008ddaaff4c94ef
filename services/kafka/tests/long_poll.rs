//! What a long-polling Fetch costs the metadata service: a consumer waits at the high
//! watermark, one record is produced, the consumer is answered. The metadata calls the
//! fetch makes are counted (the produce's own commit is not) and printed; the test fails
//! if the cost grows back.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{
    ApiKey, BrokerId, FetchRequest, FetchResponse, RequestHeader, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use object_store::memory::InMemory;
use silt_groups::{Coordinator, GroupConfig};
use silt_ingest::{Ingest, IngestConfig};
use silt_kafka::{KafkaConfig, KafkaSecurity, KafkaState, NodeCache, answer_frame};
use silt_metadata::{Counted, MetadataStore, SqliteStore, TopicConfig};
use silt_reader::{Reader, ReaderConfig};
use silt_segment::Record;

const VERSION: i16 = 12;

fn fetch_frame(topic: &str, offset: i64, max_wait_ms: i32) -> Bytes {
    let mut header = RequestHeader::default();
    header.request_api_key = ApiKey::Fetch as i16;
    header.request_api_version = VERSION;
    header.correlation_id = 1;
    header.client_id = Some(StrBytes::from_static_str("long-poll-test"));
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
    let mut buf = BytesMut::new();
    header
        .encode(&mut buf, ApiKey::Fetch.request_header_version(VERSION))
        .expect("header encodes");
    request.encode(&mut buf, VERSION).expect("body encodes");
    buf.freeze()
}

fn decode_fetch(mut answer: Bytes) -> FetchResponse {
    answer.advance(4); // size prefix
    ResponseHeader::decode(&mut answer, ApiKey::Fetch.response_header_version(VERSION))
        .expect("response header");
    FetchResponse::decode(&mut answer, VERSION).expect("fetch response")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_poll_wake_costs_few_metadata_calls() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sqlite: Arc<dyn MetadataStore> = Arc::new(
        SqliteStore::open(&dir.path().join("metadata.db"))
            .await
            .expect("store"),
    );
    let counted = Arc::new(Counted::new(sqlite));
    let metadata: Arc<dyn MetadataStore> = counted.clone();
    metadata
        .create_topic("polled", 1, TopicConfig::default())
        .await
        .expect("topic");
    let store = Arc::new(InMemory::new());
    let reader = Reader::build(
        ReaderConfig {
            memory_cache_bytes: 8 << 20,
            disk_cache_bytes: 0,
            cache_dir: Some(dir.path().join("cache")),
            chunks_per_lookup: 8,
        },
        store.clone(),
        metadata.clone(),
    )
    .await
    .expect("reader");
    let ingest = Ingest::start(
        IngestConfig {
            linger: Duration::from_millis(1),
            ..IngestConfig::default()
        },
        store,
        metadata.clone(),
        None,
    );
    let state = KafkaState {
        config: Arc::new(KafkaConfig::default()),
        metadata: metadata.clone(),
        ingest: ingest.clone(),
        reader,
        groups: Arc::new(Coordinator::start(
            GroupConfig::default(),
            metadata.clone(),
            metadata.clone(),
        )),
        nodes: Arc::new(NodeCache::default()),
        security: Arc::new(KafkaSecurity::open(metadata.clone())),
    };

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
        assert_eq!(partition.error_code, 0);
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
