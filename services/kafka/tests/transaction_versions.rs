//! The brokers' form of AddPartitionsToTxn (v4+, KIP-890 verification): batched
//! transactions, verify-only answers per partition, cluster authorization.

mod common;

use bytes::Buf;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::add_partitions_to_txn_request::{
    AddPartitionsToTxnTopic, AddPartitionsToTxnTransaction,
};
use kafka_protocol::messages::{
    AddPartitionsToTxnRequest, AddPartitionsToTxnResponse, ApiKey, InitProducerIdRequest,
    InitProducerIdResponse, ProducerId, ResponseHeader, TopicName, TransactionalId,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use silt_kafka::answer_frame;

async fn call<Q: Encodable, A: Decodable>(
    node: &common::TestNode,
    key: ApiKey,
    version: i16,
    request: &Q,
) -> A {
    let frame = common::frame(key, version, 9, request, false);
    let mut answer = answer_frame(&node.state, frame)
        .await
        .expect("answered")
        .expect("an answer");
    answer.advance(4);
    ResponseHeader::decode(&mut answer, key.response_header_version(version)).expect("header");
    A::decode(&mut answer, version).expect("decodes")
}

fn topics(partitions: &[i32]) -> Vec<AddPartitionsToTxnTopic> {
    let mut topic = AddPartitionsToTxnTopic::default();
    topic.name = TopicName(StrBytes::from_static_str("t"));
    topic.partitions = partitions.to_vec();
    vec![topic]
}

fn transaction(
    producer: &InitProducerIdResponse,
    epoch: i16,
    verify_only: bool,
    partitions: &[i32],
) -> AddPartitionsToTxnTransaction {
    let mut txn = AddPartitionsToTxnTransaction::default();
    txn.transactional_id = TransactionalId(StrBytes::from_static_str("app"));
    txn.producer_id = producer.producer_id;
    txn.producer_epoch = epoch;
    txn.verify_only = verify_only;
    txn.topics = topics(partitions);
    txn
}

/// Each partition's code in the answer's first transaction.
fn codes(response: &AddPartitionsToTxnResponse) -> Vec<(i32, i16)> {
    response.results_by_transaction[0].topic_results[0]
        .results_by_partition
        .iter()
        .map(|r| (r.partition_index, r.partition_error_code))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verification_answers_per_partition_and_changes_nothing() {
    let node = common::node(&[]).await;
    node.state
        .metadata
        .create_topic("t", 3, silt_metadata::TopicConfig::default())
        .await
        .expect("topic");
    let mut init = InitProducerIdRequest::default();
    init.transactional_id = Some(TransactionalId(StrBytes::from_static_str("app")));
    init.transaction_timeout_ms = 60_000;
    let producer: InitProducerIdResponse = call(&node, ApiKey::InitProducerId, 4, &init).await;
    assert_eq!(producer.error_code, 0);
    let epoch = producer.producer_epoch;

    // The client's form (v3) adds partition 0.
    let mut add = AddPartitionsToTxnRequest::default();
    add.v3_and_below_transactional_id = TransactionalId(StrBytes::from_static_str("app"));
    add.v3_and_below_producer_id = producer.producer_id;
    add.v3_and_below_producer_epoch = epoch;
    add.v3_and_below_topics = topics(&[0]);
    let added: AddPartitionsToTxnResponse = call(&node, ApiKey::AddPartitionsToTxn, 3, &add).await;
    assert_eq!(
        added.results_by_topic_v3_and_below[0].results_by_partition[0].partition_error_code,
        0
    );

    // Verification: partition 0 is in the transaction, 1 is not (v4: INVALID_TXN_STATE,
    // v5: TRANSACTION_ABORTABLE); neither answer adds anything.
    for (version, missing) in [
        (4, ResponseError::InvalidTxnState.code()),
        (5, ResponseError::TransactionAbortable.code()),
    ] {
        let mut verify = AddPartitionsToTxnRequest::default();
        verify.transactions = vec![transaction(&producer, epoch, true, &[0, 1])];
        let answer: AddPartitionsToTxnResponse =
            call(&node, ApiKey::AddPartitionsToTxn, version, &verify).await;
        assert_eq!(answer.error_code, 0);
        assert_eq!(codes(&answer), [(0, 0), (1, missing)], "v{version}");
    }
    let state = node
        .state
        .metadata
        .transaction("app")
        .await
        .expect("read")
        .expect("known");
    assert_eq!(
        state.partitions,
        [("t".to_string(), 0)],
        "verification added nothing"
    );

    // A stale epoch is fenced, an unknown producer id is no mapping.
    let mut verify = AddPartitionsToTxnRequest::default();
    verify.transactions = vec![transaction(&producer, epoch - 1, true, &[0])];
    let answer: AddPartitionsToTxnResponse =
        call(&node, ApiKey::AddPartitionsToTxn, 5, &verify).await;
    assert_eq!(codes(&answer), [(0, ResponseError::ProducerFenced.code())]);
    let mut other = producer.clone();
    other.producer_id = ProducerId(producer.producer_id.0 + 1000);
    verify.transactions = vec![transaction(&other, epoch, true, &[0])];
    let answer: AddPartitionsToTxnResponse =
        call(&node, ApiKey::AddPartitionsToTxn, 5, &verify).await;
    assert_eq!(
        codes(&answer),
        [(0, ResponseError::InvalidProducerIdMapping.code())]
    );

    // The batched form adds too, when not verify-only.
    let mut batched = AddPartitionsToTxnRequest::default();
    batched.transactions = vec![transaction(&producer, epoch, false, &[2])];
    let answer: AddPartitionsToTxnResponse =
        call(&node, ApiKey::AddPartitionsToTxn, 5, &batched).await;
    assert_eq!(codes(&answer), [(2, 0)]);
    let state = node
        .state
        .metadata
        .transaction("app")
        .await
        .expect("read")
        .expect("known");
    assert_eq!(
        state.partitions,
        [("t".to_string(), 0), ("t".to_string(), 2)]
    );
}
