//! A consumer that commits asynchronously pipelines its OffsetCommit requests on one
//! connection; Kafka applies them in order, so the last one wins. Hundreds of pipelined
//! commits of growing offsets over a real socket must leave the last offset committed.

mod common;

use std::time::Duration;

use bytes::{Buf, Bytes};
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::{
    ApiKey, GroupId, OffsetCommitRequest, OffsetFetchRequest, OffsetFetchResponse, ResponseHeader,
    TopicName,
};
use kafka_protocol::protocol::{Decodable, StrBytes};
use silt_kafka::serve;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

const COMMITS: i64 = 300;

fn commit(offset: i64) -> OffsetCommitRequest {
    let mut partition = OffsetCommitRequestPartition::default();
    partition.partition_index = 0;
    partition.committed_offset = offset;
    let mut topic = OffsetCommitRequestTopic::default();
    topic.name = TopicName(StrBytes::from_static_str("committed"));
    topic.partitions = vec![partition];
    let mut request = OffsetCommitRequest::default();
    request.group_id = GroupId(StrBytes::from_static_str("pipelined"));
    request.generation_id_or_member_epoch = -1;
    request.topics = vec![topic];
    request
}

async fn read_answer(stream: &mut tokio::net::TcpStream) -> Bytes {
    let size = stream.read_i32().await.expect("size") as usize;
    let mut body = vec![0; size];
    stream.read_exact(&mut body).await.expect("answer");
    Bytes::from(body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_offset_commits_apply_in_request_order() {
    let node = common::node(&["committed"]).await;
    let state = node.state.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binds");
    let addr = listener.local_addr().expect("addr");
    let stop = CancellationToken::new();
    tokio::spawn(serve(listener, state, None, stop.clone()));

    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connects");
    // Every commit written before any answer is read: all of them in flight at once.
    let mut pipelined = Vec::new();
    for offset in 1..=COMMITS {
        pipelined.extend_from_slice(&common::frame(
            ApiKey::OffsetCommit,
            8,
            offset as i32,
            &commit(offset),
            true,
        ));
    }
    stream.write_all(&pipelined).await.expect("writes");
    for correlation in 1..=COMMITS {
        let mut answer = read_answer(&mut stream).await;
        let header =
            ResponseHeader::decode(&mut answer, ApiKey::OffsetCommit.response_header_version(8))
                .expect("header");
        assert_eq!(
            i64::from(header.correlation_id),
            correlation,
            "answers in order"
        );
    }

    let mut topic = OffsetFetchRequestTopic::default();
    topic.name = TopicName(StrBytes::from_static_str("committed"));
    topic.partition_indexes = vec![0];
    let mut fetch = OffsetFetchRequest::default();
    fetch.group_id = GroupId(StrBytes::from_static_str("pipelined"));
    fetch.topics = Some(vec![topic]);
    stream
        .write_all(&common::frame(ApiKey::OffsetFetch, 7, 9_999, &fetch, true))
        .await
        .expect("writes");
    let mut answer = tokio::time::timeout(Duration::from_secs(10), read_answer(&mut stream))
        .await
        .expect("answered");
    ResponseHeader::decode(&mut answer, ApiKey::OffsetFetch.response_header_version(7))
        .expect("header");
    let fetched = OffsetFetchResponse::decode(&mut answer, 7).expect("offset fetch");
    let committed = fetched.topics[0].partitions[0].committed_offset;
    assert_eq!(committed, COMMITS, "the last commit must win");
    stop.cancel();
    let _ = answer.remaining();
}
