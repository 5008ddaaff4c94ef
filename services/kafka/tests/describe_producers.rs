//! DescribeProducers lists the idempotent producers a partition remembers, with their
//! epoch and last sequence, as Kafka's admin tools show them.

mod common;

use bytes::{Buf, Bytes};
use kafka_protocol::messages::describe_producers_request::TopicRequest;
use kafka_protocol::messages::{
    ApiKey, DescribeProducersRequest, DescribeProducersResponse, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, StrBytes};
use silt_kafka::answer_frame;
use silt_metadata::ProducerBatch;
use silt_segment::Record;

fn records(n: usize) -> Vec<Record> {
    (0..n)
        .map(|i| Record {
            timestamp_ms: 1,
            key: None,
            value: Some(Bytes::from(format!("v{i}"))),
            headers: Vec::new(),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_producers_lists_each_producers_last_batch() {
    let node = common::node(&["written"]).await;
    let producer = node.state.metadata.init_producer_id().await.expect("id");
    for (base_sequence, count) in [(0, 3), (3, 4)] {
        node.ingest
            .submit(
                "written",
                0,
                records(count),
                Some(ProducerBatch {
                    producer_id: producer.producer_id,
                    epoch: producer.epoch,
                    base_sequence,
                }),
                silt_ingest::BatchKind::Plain,
            )
            .await
            .expect("submitted")
            .wait()
            .await
            .expect("committed");
    }
    let mut topic = TopicRequest::default();
    topic.name = TopicName(StrBytes::from_static_str("written"));
    topic.partition_indexes = vec![0, 7];
    let mut request = DescribeProducersRequest::default();
    request.topics = vec![topic];
    let frame = common::frame(ApiKey::DescribeProducers, 0, 5, &request, false);
    let mut answer = answer_frame(&node.state, frame)
        .await
        .expect("answered")
        .expect("an answer");
    answer.advance(4);
    ResponseHeader::decode(
        &mut answer,
        ApiKey::DescribeProducers.response_header_version(0),
    )
    .expect("header");
    let response = DescribeProducersResponse::decode(&mut answer, 0).expect("decodes");
    let partitions = &response.topics[0].partitions;
    assert_eq!(partitions[0].error_code, 0);
    let [state] = &partitions[0].active_producers[..] else {
        panic!("{:?}", partitions[0].active_producers);
    };
    assert_eq!(state.producer_id.0, producer.producer_id);
    assert_eq!(state.producer_epoch, i32::from(producer.epoch));
    assert_eq!(state.last_sequence, 6);
    assert_eq!(state.current_txn_start_offset, -1);
    // A partition the topic does not have.
    assert_eq!(
        partitions[1].error_code,
        kafka_protocol::ResponseError::UnknownTopicOrPartition.code()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_producers_shows_where_an_open_transaction_starts() {
    let node = common::node(&["txn"]).await;
    let plain = node.state.metadata.init_producer_id().await.expect("id");
    node.ingest
        .submit(
            "txn",
            0,
            records(2),
            Some(ProducerBatch {
                producer_id: plain.producer_id,
                epoch: plain.epoch,
                base_sequence: 0,
            }),
            silt_ingest::BatchKind::Plain,
        )
        .await
        .expect("submitted")
        .wait()
        .await
        .expect("committed");
    let producer = node
        .state
        .metadata
        .init_transactional_producer("app", std::time::Duration::from_secs(60))
        .await
        .expect("transactional id");
    node.state
        .metadata
        .add_partitions_to_transaction("app", producer, &[("txn".to_string(), 0)])
        .await
        .expect("added");
    node.ingest
        .submit(
            "txn",
            0,
            records(3),
            Some(ProducerBatch {
                producer_id: producer.producer_id,
                epoch: producer.epoch,
                base_sequence: 0,
            }),
            silt_ingest::BatchKind::Transactional,
        )
        .await
        .expect("submitted")
        .wait()
        .await
        .expect("committed");
    let mut topic = TopicRequest::default();
    topic.name = TopicName(StrBytes::from_static_str("txn"));
    topic.partition_indexes = vec![0];
    let mut request = DescribeProducersRequest::default();
    request.topics = vec![topic];
    let frame = common::frame(ApiKey::DescribeProducers, 0, 6, &request, false);
    let mut answer = answer_frame(&node.state, frame)
        .await
        .expect("answered")
        .expect("an answer");
    answer.advance(4);
    ResponseHeader::decode(
        &mut answer,
        ApiKey::DescribeProducers.response_header_version(0),
    )
    .expect("header");
    let response = DescribeProducersResponse::decode(&mut answer, 0).expect("decodes");
    let starts: Vec<(i64, i64)> = response.topics[0].partitions[0]
        .active_producers
        .iter()
        .map(|p| (p.producer_id.0, p.current_txn_start_offset))
        .collect();
    let mut expected = vec![(plain.producer_id, -1), (producer.producer_id, 2)];
    expected.sort();
    assert_eq!(starts, expected, "the open transaction starts at offset 2");
}
