//! Kafka's internal topic names are reserved: a client asking for `__consumer_offsets`
//! with auto-creation on (as a producer to it does) gets INVALID_TOPIC_EXCEPTION, and no
//! ordinary topic of that name appears.

mod common;

use bytes::Buf;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    ApiKey, MetadataRequest, MetadataResponse, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, StrBytes};
use silt_kafka::answer_frame;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn internal_topic_names_are_not_created_on_first_use() {
    let node = common::node(&[]).await;
    for name in ["__consumer_offsets", "__transaction_state", "ordinary"] {
        let mut topic = MetadataRequestTopic::default();
        topic.name = Some(TopicName(StrBytes::from_static_str(name)));
        let mut request = MetadataRequest::default();
        request.topics = Some(vec![topic]);
        request.allow_auto_topic_creation = true;
        let frame = common::frame(ApiKey::Metadata, 9, 3, &request, false);
        let mut answer = answer_frame(&node.state, frame)
            .await
            .expect("answered")
            .expect("an answer");
        answer.advance(4);
        ResponseHeader::decode(&mut answer, ApiKey::Metadata.response_header_version(9))
            .expect("header");
        let response = MetadataResponse::decode(&mut answer, 9).expect("metadata");
        let code = response.topics[0].error_code;
        if name == "ordinary" {
            assert_eq!(code, 0, "an ordinary name is created on first use");
        } else {
            assert_eq!(code, ResponseError::InvalidTopicException.code(), "{name}");
        }
    }
    let names: Vec<String> = node
        .state
        .metadata
        .topics()
        .await
        .expect("topics")
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(names, ["ordinary"]);
}
