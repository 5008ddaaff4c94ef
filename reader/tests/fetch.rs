//! The read path over ingest, an in-memory object store and SQLite: content and order,
//! limits, long polling, timestamp lookup, and object GETs saved by the cache.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use object_store::memory::InMemory;
use silt_ingest::{Ingest, IngestConfig, SegmentListener, WrittenSegment};
use silt_metadata::{MetadataStore, SqliteStore, TopicConfig};
use silt_reader::{FetchRequest, Reader, ReaderConfig, ReaderError};
use silt_segment::{Header, Record};
use silt_storage::InstrumentedStore;

struct CacheOnWrite(Reader);

impl SegmentListener for CacheOnWrite {
    fn segment_written(&self, s: &WrittenSegment) {
        self.0.cache_segment(
            &s.key,
            &s.data,
            s.footer_len,
            s.chunks
                .iter()
                .map(|c| (c.row_group as u32, c.byte_start, c.byte_len)),
        );
    }
}

struct Node {
    _dir: tempfile::TempDir,
    store: Arc<InstrumentedStore>,
    ingest: Ingest,
    reader: Reader,
}

async fn node(cache_on_write: bool) -> Node {
    let dir = tempfile::tempdir().expect("tempdir");
    let meta = Arc::new(
        SqliteStore::open(&dir.path().join("m.db"))
            .await
            .expect("open"),
    );
    meta.create_topic("t", 2, TopicConfig::default())
        .await
        .expect("topic");
    let store = Arc::new(InstrumentedStore::new(Arc::new(InMemory::new())));
    let config = ReaderConfig {
        memory_cache_bytes: 16 << 20,
        disk_cache_bytes: 0,
        cache_dir: dir.path().join("cache"),
        chunks_per_lookup: 4,
    };
    let reader = Reader::build(config, store.clone(), meta.clone())
        .await
        .expect("reader");
    let listener: Option<Arc<dyn SegmentListener>> =
        cache_on_write.then(|| Arc::new(CacheOnWrite(reader.clone())) as Arc<dyn SegmentListener>);
    let ingest_config = IngestConfig {
        linger: Duration::from_millis(5),
        ..IngestConfig::default()
    };
    let ingest = Ingest::start(ingest_config, store.clone(), meta, listener);
    Node {
        _dir: dir,
        store,
        ingest,
        reader,
    }
}

fn rec(i: i64) -> Record {
    Record {
        timestamp_ms: 1000 + i,
        key: Some(Bytes::from(format!("k{i}"))),
        value: Some(Bytes::from(format!("value number {i}"))),
        headers: vec![Header {
            key: "n".into(),
            value: Some(Bytes::from(i.to_string())),
        }],
    }
}

fn req(offset: i64) -> FetchRequest {
    FetchRequest {
        topic: "t".into(),
        partition: 0,
        offset,
        max_bytes: 1 << 20,
        max_records: 10_000,
        max_wait: Duration::ZERO,
    }
}

/// Writes records 0..n to partition 0 in appends of `per` records (one segment each).
async fn write(node: &Node, n: i64, per: i64) {
    for start in (0..n).step_by(per as usize) {
        let batch = (start..(start + per).min(n)).map(rec).collect();
        let ack = node.ingest.append("t", 0, batch).await.expect("acked");
        assert_eq!(ack.base_offset, start);
    }
}

#[tokio::test]
async fn reads_back_every_record_in_order_from_any_offset() {
    let node = node(false).await;
    write(&node, 100, 7).await;
    let all = node.reader.fetch(&req(0)).await.expect("fetch");
    assert_eq!(all.high_watermark, 100);
    assert_eq!(all.next_offset, 100);
    assert_eq!(all.records.len(), 100);
    for (i, r) in all.records.iter().enumerate() {
        assert_eq!(r.offset, i as i64);
        assert_eq!(r.record, rec(i as i64));
    }
    // From the middle of a chunk.
    let mid = node.reader.fetch(&req(45)).await.expect("fetch");
    assert_eq!(mid.records.first().map(|r| r.offset), Some(45));
    assert_eq!(mid.records.len(), 55);
    // Limits: record count, and bytes (the first record always comes whole).
    let few = node
        .reader
        .fetch(&FetchRequest {
            max_records: 3,
            ..req(10)
        })
        .await
        .expect("fetch");
    assert_eq!(
        few.records.iter().map(|r| r.offset).collect::<Vec<_>>(),
        [10, 11, 12]
    );
    assert_eq!(few.next_offset, 13);
    let tiny = node
        .reader
        .fetch(&FetchRequest {
            max_bytes: 1,
            ..req(20)
        })
        .await
        .expect("fetch");
    assert_eq!(tiny.records.len(), 1);
    // At the end: nothing, no error.
    let end = node.reader.fetch(&req(100)).await.expect("fetch");
    assert!(end.records.is_empty());
    assert_eq!(end.next_offset, 100);
    // Past the end, or an unknown partition: errors.
    assert!(matches!(
        node.reader.fetch(&req(101)).await,
        Err(ReaderError::OffsetOutOfRange { .. })
    ));
    let bad = FetchRequest {
        partition: 9,
        ..req(0)
    };
    assert!(node.reader.fetch(&bad).await.is_err());
    node.ingest.shutdown().await;
}

#[tokio::test]
async fn a_long_poll_waits_out_its_time_or_returns_when_data_arrives() {
    let node = node(true).await;
    write(&node, 3, 3).await;
    let started = Instant::now();
    let empty = node
        .reader
        .fetch(&FetchRequest {
            max_wait: Duration::from_millis(300),
            ..req(3)
        })
        .await
        .expect("fetch");
    let waited = started.elapsed();
    assert!(empty.records.is_empty());
    assert!(
        waited >= Duration::from_millis(300),
        "returned early: {waited:?}"
    );
    assert!(
        waited < Duration::from_millis(400),
        "returned late: {waited:?}"
    );

    let reader = node.reader.clone();
    let started = Instant::now();
    let poll = tokio::spawn(async move {
        reader
            .fetch(&FetchRequest {
                max_wait: Duration::from_secs(10),
                ..req(3)
            })
            .await
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    node.ingest
        .append("t", 0, vec![rec(3)])
        .await
        .expect("acked");
    let got = poll.await.expect("task").expect("fetch");
    assert_eq!(got.records.len(), 1);
    assert_eq!(got.records[0].offset, 3);
    assert!(started.elapsed() < Duration::from_secs(2));
    node.ingest.shutdown().await;
}

#[tokio::test]
async fn tailing_reads_of_this_nodes_segments_cost_no_get() {
    let node = node(true).await;
    write(&node, 50, 10).await;
    let got = node.reader.fetch(&req(0)).await.expect("fetch");
    assert_eq!(got.records.len(), 50);
    assert_eq!(node.store.counts().gets, 0);
    assert_eq!(node.store.counts().puts, 5);
    node.ingest.shutdown().await;
}

#[tokio::test]
async fn a_cold_read_costs_one_footer_and_one_range_per_chunk_then_nothing() {
    let node = node(false).await;
    write(&node, 30, 10).await; // three segments, one chunk each
    let got = node.reader.fetch(&req(0)).await.expect("fetch");
    assert_eq!(got.records.len(), 30);
    assert_eq!(node.store.counts().gets, 6);
    let again = node.reader.fetch(&req(0)).await.expect("fetch");
    assert_eq!(again.records, got.records);
    assert_eq!(node.store.counts().gets, 6);
    node.ingest.shutdown().await;
}

#[tokio::test]
async fn finds_the_first_offset_at_or_after_a_timestamp() {
    let node = node(false).await;
    write(&node, 40, 10).await; // timestamps 1000..1040
    let found = node
        .reader
        .offset_for_timestamp("t", 0, 1025)
        .await
        .expect("lookup");
    assert_eq!(found, Some((25, 1025)));
    assert_eq!(
        node.reader
            .offset_for_timestamp("t", 0, 0)
            .await
            .expect("lookup"),
        Some((0, 1000))
    );
    assert_eq!(
        node.reader
            .offset_for_timestamp("t", 0, 5000)
            .await
            .expect("lookup"),
        None
    );
    node.ingest.shutdown().await;
}
