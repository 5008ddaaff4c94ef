//! Valid inputs each fuzz target starts from: mutating a real request reaches far deeper
//! into the handlers than random bytes do.

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Encodable, StrBytes};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use silt_segment::{ChunkInput, Header, SegmentCompression, encode_segment_with};

use crate::harness::TOPIC;

/// The seeds of a target, by name.
pub fn for_target(name: &str) -> Vec<Vec<u8>> {
    match name {
        "kafka_request" => kafka_requests(),
        "segment_object" => segment_objects(),
        "http_body" => http_bodies(),
        "auth_input" => auth_inputs(),
        other => panic!("no fuzz target {other}"),
    }
}

/// A request frame (without the size prefix): header in the version the API implies, then
/// the body.
pub fn frame<T: Encodable>(key: ApiKey, version: i16, body: &T) -> Bytes {
    let mut header = RequestHeader::default();
    header.request_api_key = key as i16;
    header.request_api_version = version;
    header.correlation_id = 7;
    header.client_id = Some(StrBytes::from_static_str("fuzz"));
    let mut buf = BytesMut::new();
    header
        .encode(&mut buf, key.request_header_version(version))
        .expect("header encodes");
    body.encode(&mut buf, version).expect("body encodes");
    buf.freeze()
}

fn topic_name() -> TopicName {
    TopicName(StrBytes::from_static_str(TOPIC))
}

/// A v2 record batch of three records; idempotent when `producer_id` is not -1.
pub fn record_batch(compression: Compression, producer_id: i64, value: &[u8]) -> Bytes {
    let records: Vec<Record> = (0..3)
        .map(|i| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id,
            producer_epoch: if producer_id < 0 { -1 } else { 0 },
            timestamp_type: TimestampType::Creation,
            offset: i,
            sequence: if producer_id < 0 { -1 } else { i as i32 },
            timestamp: 1_764_000_000_000 + i,
            key: (i != 1).then(|| Bytes::from(format!("key-{i}"))),
            value: Some(Bytes::copy_from_slice(value)),
            headers: [(
                StrBytes::from_static_str("h"),
                Some(Bytes::from_static(b"v")),
            )]
            .into_iter()
            .collect(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        records.iter(),
        &RecordEncodeOptions {
            version: 2,
            compression,
        },
    )
    .expect("batch encodes");
    buf.freeze()
}

/// A produce (acks=all) of one batch to a partition of the fuzz topic.
pub fn produce_frame(version: i16, partition: i32, value: &[u8]) -> Bytes {
    produce_with(
        version,
        -1,
        partition,
        record_batch(Compression::None, -1, value),
    )
}

fn produce_with(version: i16, acks: i16, partition: i32, records: Bytes) -> Bytes {
    let mut data = PartitionProduceData::default();
    data.index = partition;
    data.records = Some(records);
    let mut topic = TopicProduceData::default();
    topic.name = topic_name();
    topic.partition_data = vec![data];
    let mut request = ProduceRequest::default();
    request.acks = acks;
    request.timeout_ms = 5_000;
    request.topic_data = vec![topic];
    frame(ApiKey::Produce, version, &request)
}

/// A fetch of one partition of the fuzz topic from `offset`, answering at once.
pub fn fetch_frame(version: i16, partition: i32, offset: i64) -> Bytes {
    let mut part = FetchPartition::default();
    part.partition = partition;
    part.fetch_offset = offset;
    part.partition_max_bytes = 1 << 20;
    let mut topic = FetchTopic::default();
    topic.topic = topic_name();
    topic.partitions = vec![part];
    let mut request = FetchRequest::default();
    request.replica_id = BrokerId(-1);
    request.max_wait_ms = 0;
    request.min_bytes = 0;
    request.max_bytes = 1 << 20;
    request.topics = vec![topic];
    frame(ApiKey::Fetch, version, &request)
}

fn kafka_requests() -> Vec<Vec<u8>> {
    let mut out: Vec<Bytes> = Vec::new();
    for version in [3, 9, 11] {
        out.push(produce_frame(version, 0, b"seed value"));
    }
    for compression in [Compression::Gzip, Compression::Lz4, Compression::Zstd] {
        out.push(produce_with(
            9,
            1,
            1,
            record_batch(compression, -1, b"compressed seed"),
        ));
    }
    out.push(produce_with(
        9,
        -1,
        2,
        record_batch(Compression::None, 1, b"idempotent"),
    ));
    out.push(produce_with(
        9,
        0,
        0,
        record_batch(Compression::None, -1, b"acks=0"),
    ));
    for version in [4, 12] {
        out.push(fetch_frame(version, 0, 0));
    }

    let mut metadata = MetadataRequest::default();
    let mut wanted = MetadataRequestTopic::default();
    wanted.name = Some(topic_name());
    metadata.topics = Some(vec![wanted]);
    metadata.allow_auto_topic_creation = true;
    for version in [1, 4, 12] {
        out.push(frame(ApiKey::Metadata, version, &metadata));
    }
    out.push(frame(ApiKey::Metadata, 9, &MetadataRequest::default()));
    for version in [0, 3, 4] {
        out.push(frame(
            ApiKey::ApiVersions,
            version,
            &ApiVersionsRequest::default(),
        ));
    }

    let mut list = ListOffsetsRequest::default();
    let mut part = ListOffsetsPartition::default();
    part.timestamp = -1;
    let mut topic = ListOffsetsTopic::default();
    topic.name = topic_name();
    topic.partitions = vec![part];
    list.replica_id = BrokerId(-1);
    list.topics = vec![topic];
    for version in [1, 8] {
        out.push(frame(ApiKey::ListOffsets, version, &list));
    }

    let mut create = CreateTopicsRequest::default();
    let mut topic = CreatableTopic::default();
    topic.name = TopicName(StrBytes::from_static_str("created"));
    topic.num_partitions = 2;
    topic.replication_factor = -1;
    create.topics = vec![topic];
    create.timeout_ms = 1000;
    for version in [2, 5, 7] {
        out.push(frame(ApiKey::CreateTopics, version, &create));
    }

    let mut join = JoinGroupRequest::default();
    join.group_id = GroupId(StrBytes::from_static_str("g"));
    join.session_timeout_ms = 10_000;
    join.rebalance_timeout_ms = 10_000;
    join.protocol_type = StrBytes::from_static_str("consumer");
    let mut protocol = JoinGroupRequestProtocol::default();
    protocol.name = StrBytes::from_static_str("range");
    protocol.metadata = Bytes::from_static(&[0, 1, 0, 0, 0, 1, 0, 4, b'f', b'u', b'z', b'z']);
    join.protocols = vec![protocol];
    for version in [0, 5, 9] {
        out.push(frame(ApiKey::JoinGroup, version, &join));
    }

    let mut commit = OffsetCommitRequest::default();
    commit.group_id = GroupId(StrBytes::from_static_str("g"));
    commit.generation_id_or_member_epoch = -1;
    let mut part = OffsetCommitRequestPartition::default();
    part.committed_offset = 1;
    let mut topic = OffsetCommitRequestTopic::default();
    topic.name = topic_name();
    topic.partitions = vec![part];
    commit.topics = vec![topic];
    for version in [2, 8] {
        out.push(frame(ApiKey::OffsetCommit, version, &commit));
    }

    let mut init = InitProducerIdRequest::default();
    init.transaction_timeout_ms = 60_000;
    init.producer_id = ProducerId(-1);
    init.producer_epoch = -1;
    for version in [0, 4] {
        out.push(frame(ApiKey::InitProducerId, version, &init));
    }

    // Every other API with an empty body, at its lowest and highest version.
    for api in silt_kafka::supported_apis() {
        for version in [api.min, api.max] {
            if let Some(seed) = empty_request(api.key, version) {
                out.push(seed);
            }
        }
    }
    out.into_iter().map(|b| b.to_vec()).collect()
}

fn empty_request(key: ApiKey, version: i16) -> Option<Bytes> {
    macro_rules! empty {
        ($($api:ident => $ty:ty),* $(,)?) => {
            match key {
                $(ApiKey::$api => Some(frame(key, version, &<$ty>::default())),)*
                _ => None,
            }
        };
    }
    empty! {
        DeleteTopics => DeleteTopicsRequest,
        DeleteRecords => DeleteRecordsRequest,
        DescribeConfigs => DescribeConfigsRequest,
        AlterConfigs => AlterConfigsRequest,
        IncrementalAlterConfigs => IncrementalAlterConfigsRequest,
        CreatePartitions => CreatePartitionsRequest,
        DescribeCluster => DescribeClusterRequest,
        FindCoordinator => FindCoordinatorRequest,
        SyncGroup => SyncGroupRequest,
        Heartbeat => HeartbeatRequest,
        LeaveGroup => LeaveGroupRequest,
        OffsetFetch => OffsetFetchRequest,
        ListGroups => ListGroupsRequest,
        DescribeGroups => DescribeGroupsRequest,
        DeleteGroups => DeleteGroupsRequest,
        OffsetDelete => OffsetDeleteRequest,
        ConsumerGroupHeartbeat => ConsumerGroupHeartbeatRequest,
        ConsumerGroupDescribe => ConsumerGroupDescribeRequest,
    }
}

/// Byte 0 of a segment input selects the mode (see [`crate::segment_object`]): the seeds
/// are whole segments (mode 0, one per codec) and a few damage lists (modes 1–3).
fn segment_objects() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for compression in [
        SegmentCompression::Lz4,
        SegmentCompression::Zstd,
        SegmentCompression::None,
    ] {
        let mut seed = vec![0u8];
        seed.extend_from_slice(&known_segment(compression).data);
        out.push(seed);
    }
    for mode in 1..=3u8 {
        out.push(vec![mode, 0, 10, 0x40, 1, 2, 0x01]);
    }
    out
}

/// The segment the damage mode starts from: three chunks with keys, nulls and headers.
pub(crate) fn known_records() -> Vec<Vec<silt_segment::Record>> {
    (0..3)
        .map(|chunk| {
            (0..4 + chunk * 3)
                .map(|i| silt_segment::Record {
                    timestamp_ms: 1_764_000_000_000 + i as i64,
                    key: (i % 3 != 0).then(|| Bytes::from(format!("k{chunk}-{i}"))),
                    value: (i % 5 != 4).then(|| Bytes::from(format!("value {chunk}/{i}"))),
                    headers: if i % 2 == 0 {
                        vec![Header {
                            key: "trace".into(),
                            value: Some(Bytes::from_static(b"abc")),
                        }]
                    } else {
                        vec![]
                    },
                })
                .collect()
        })
        .collect()
}

pub(crate) fn known_segment(compression: SegmentCompression) -> silt_segment::EncodedSegment {
    let records = known_records();
    let inputs: Vec<ChunkInput<'_>> = records
        .iter()
        .enumerate()
        .map(|(i, records)| ChunkInput {
            topic: TOPIC,
            partition: i as i32,
            records,
        })
        .collect();
    encode_segment_with(&inputs, compression).expect("known segment encodes")
}

/// Byte 0 selects the endpoint (see [`crate::http_body`]), the rest is the body.
fn http_bodies() -> Vec<Vec<u8>> {
    let bodies: &[(u8, &str)] = &[
        (
            0,
            r#"{"name":"made-by-http","partitions":2,"config":{"retention.ms":60000}}"#,
        ),
        (
            1,
            r#"{"records":[{"key":"k","value":"v","headers":[{"key":"h","value":"x"}]},{"value":{"json":[1,2]},"partition":1}]}"#,
        ),
        (
            1,
            r#"{"records":[{"key_b64":"aGk=","value_b64":"dmFsdWU=","timestamp":1764000000000,"headers":[{"key":"b","value_b64":"AA=="}]}]}"#,
        ),
        (2, r#"{"offset":1}"#),
        (
            3,
            r#"{"offsets":[{"topic":"fuzz","partition":0,"offset":1,"metadata":"m"}]}"#,
        ),
        (4, "offset=0&limit=10&wait_ms=0"),
        (4, "offset=-1&max_bytes=100&encoding=base64"),
    ];
    bodies
        .iter()
        .map(|(endpoint, body)| {
            let mut seed = vec![*endpoint];
            seed.extend_from_slice(body.as_bytes());
            seed
        })
        .collect()
}

/// SASL messages and Authorization headers: right and wrong ones.
fn auth_inputs() -> Vec<Vec<u8>> {
    use base64::Engine;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let user = crate::auth::USER;
    let password = crate::auth::PASSWORD;
    let mut out = Vec::new();
    for plain in [
        format!("\0{user}\0{password}"),
        format!("{user}\0{user}\0{password}"),
        format!("bob\0{user}\0x"),
    ] {
        out.push([&[0u8][..], plain.as_bytes()].concat());
    }
    for kind in [1u8, 2] {
        for first in [
            format!("n,,n={user},r=fyko+d2lbbFgONRv9qkxdawL"),
            "n,,n=gh=2Cost,r=abc,tokenauth=true".to_string(),
            format!("y,a={user},n={user},r=x"),
        ] {
            let last = "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=";
            out.push([&[kind][..], first.as_bytes(), &[0xff], last.as_bytes()].concat());
        }
    }
    for header in [
        format!("Basic {}", b64(&format!("{user}:{password}"))),
        format!("Basic {}", b64(&format!("{user}:wrong"))),
        format!("Bearer {}", crate::auth::TOKEN),
        "Bearer nope".to_string(),
        "Digest x".to_string(),
        "Basic !!!".to_string(),
    ] {
        out.push([&[3u8][..], header.as_bytes()].concat());
    }
    out
}
