#![allow(dead_code)] // each test binary uses a part of it
//! One in-process node for the Kafka door's tests: SQLite metadata (counted), objects in
//! memory, a reader, ingest and a group coordinator.

use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader};
use kafka_protocol::protocol::{Encodable, StrBytes};
use object_store::memory::InMemory;
use silt_groups::{Coordinator, GroupConfig};
use silt_ingest::{Ingest, IngestConfig};
use silt_kafka::{KafkaConfig, KafkaSecurity, KafkaState, NodeCache};
use silt_metadata::{Counted, MetadataStore, SqliteStore, TopicConfig};
use silt_reader::{Reader, ReaderConfig};

pub struct TestNode {
    pub state: KafkaState,
    pub ingest: Ingest,
    /// Every metadata call the node makes, counted.
    pub counted: Arc<Counted>,
    _dir: tempfile::TempDir,
}

/// A node with `topics` (one partition each) created.
pub async fn node(topics: &[&str]) -> TestNode {
    let dir = tempfile::tempdir().expect("tempdir");
    let sqlite: Arc<dyn MetadataStore> = Arc::new(
        SqliteStore::open(&dir.path().join("metadata.db"))
            .await
            .expect("store"),
    );
    let counted = Arc::new(Counted::new(sqlite));
    let metadata: Arc<dyn MetadataStore> = counted.clone();
    for topic in topics {
        metadata
            .create_topic(topic, 1, TopicConfig::default())
            .await
            .expect("topic");
    }
    let store = Arc::new(InMemory::new());
    let reader = Reader::build(
        ReaderConfig {
            memory_cache_bytes: 8 << 20,
            disk_cache_bytes: 0,
            ..ReaderConfig::default()
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
        security: Arc::new(KafkaSecurity::open(metadata)),
    };
    TestNode {
        state,
        ingest,
        counted,
        _dir: dir,
    }
}

/// A request frame: header in the version the API implies, then the body; with the size
/// prefix when `sized` (for a socket), without it for `answer_frame`.
pub fn frame<T: Encodable>(
    key: ApiKey,
    version: i16,
    correlation: i32,
    body: &T,
    sized: bool,
) -> Bytes {
    let mut header = RequestHeader::default();
    header.request_api_key = key as i16;
    header.request_api_version = version;
    header.correlation_id = correlation;
    header.client_id = Some(StrBytes::from_static_str("silt-kafka-test"));
    let mut buf = BytesMut::new();
    header
        .encode(&mut buf, key.request_header_version(version))
        .expect("header encodes");
    body.encode(&mut buf, version).expect("body encodes");
    if !sized {
        return buf.freeze();
    }
    let mut out = BytesMut::with_capacity(buf.len() + 4);
    out.put_i32(buf.len() as i32);
    out.extend_from_slice(&buf);
    out.freeze()
}
