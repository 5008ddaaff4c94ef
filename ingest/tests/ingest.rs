//! Ingest against an in-memory object store and the SQLite metadata store: batching into
//! one segment, dense offsets, backpressure, failures that leave nothing visible, and a
//! shutdown that flushes.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult,
};
use silt_ingest::{Ingest, IngestConfig, IngestError};
use silt_metadata::{CatalogStore, LogStore, ProducerStore, SqliteStore, TopicConfig};
use silt_segment::Record;
use tokio::sync::Semaphore;

/// An in-memory store whose PUTs can be held at a gate or made to fail.
#[derive(Debug)]
struct TestStore {
    inner: InMemory,
    gate: Semaphore,
    fail_puts: AtomicBool,
    puts: AtomicUsize,
}

impl TestStore {
    fn new(open: bool) -> Arc<Self> {
        Arc::new(Self {
            inner: InMemory::new(),
            gate: Semaphore::new(if open { Semaphore::MAX_PERMITS } else { 0 }),
            fail_puts: AtomicBool::new(false),
            puts: AtomicUsize::new(0),
        })
    }
    async fn objects(&self) -> usize {
        self.inner.list(None).count().await
    }
}

impl fmt::Display for TestStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TestStore")
    }
}

#[async_trait]
impl ObjectStore for TestStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        let _pass = self
            .gate
            .acquire()
            .await
            .map_err(|e| object_store::Error::Generic {
                store: "test",
                source: Box::new(e),
            })?;
        self.puts.fetch_add(1, Ordering::SeqCst);
        if self.fail_puts.load(Ordering::SeqCst) {
            return Err(object_store::Error::Generic {
                store: "test",
                source: "injected PUT failure".into(),
            });
        }
        self.inner.put_opts(location, payload, opts).await
    }
    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }
    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        self.inner.get_opts(location, options).await
    }
    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        self.inner.delete_stream(locations)
    }
    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list(prefix)
    }
    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }
    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}

fn rec(i: usize, size: usize) -> Record {
    Record {
        timestamp_ms: i as i64,
        key: Some(Bytes::from(format!("k{i}"))),
        value: Some(Bytes::from(vec![b'v'; size])),
        headers: vec![],
    }
}

async fn metadata(dir: &tempfile::TempDir, topics: &[(&str, i32)]) -> Arc<SqliteStore> {
    let store = Arc::new(
        SqliteStore::open(&dir.path().join("m.db"))
            .await
            .expect("open"),
    );
    for (t, p) in topics {
        store
            .create_topic(t, *p, TopicConfig::default())
            .await
            .expect("topic");
    }
    store
}

#[tokio::test]
async fn appends_across_partitions_share_one_segment_and_get_dense_offsets() {
    let dir = tempfile::tempdir().expect("tempdir");
    let meta = metadata(&dir, &[("a", 4), ("b", 2)]).await;
    let store = TestStore::new(true);
    let config = IngestConfig {
        linger: Duration::from_millis(200),
        ..IngestConfig::default()
    };
    let ingest = Ingest::start(config, store.clone(), meta.clone(), None);
    let mut tasks = Vec::new();
    for i in 0..60usize {
        let ingest = ingest.clone();
        let (topic, partition) = if i % 3 == 0 {
            ("b", (i % 2) as i32)
        } else {
            ("a", (i % 4) as i32)
        };
        tasks.push(tokio::spawn(async move {
            let ack = ingest
                .append(topic, partition, vec![rec(i, 10), rec(i, 10)])
                .await
                .expect("acked");
            (topic, partition, ack)
        }));
    }
    let mut by_partition: HashMap<(&str, i32), Vec<i64>> = HashMap::new();
    for t in tasks {
        let (topic, p, ack) = t.await.expect("task");
        assert_eq!(ack.count, 2);
        by_partition
            .entry((topic, p))
            .or_default()
            .push(ack.base_offset);
    }
    // All sixty appends arrived within one linger: one object, one commit.
    assert_eq!(store.objects().await, 1);
    for ((topic, p), mut bases) in by_partition {
        bases.sort();
        let expected: Vec<i64> = (0..bases.len() as i64).map(|i| i * 2).collect();
        assert_eq!(bases, expected, "{topic}/{p}");
        let hwm = meta.partition_offsets(topic).await.expect("offsets")[p as usize].high_watermark;
        assert_eq!(hwm, expected.len() as i64 * 2);
    }
    ingest.shutdown().await;
}

#[tokio::test]
async fn the_size_cap_cuts_a_segment_before_the_linger_ends() {
    let dir = tempfile::tempdir().expect("tempdir");
    let meta = metadata(&dir, &[("a", 1)]).await;
    let store = TestStore::new(true);
    let config = IngestConfig {
        linger: Duration::from_secs(30),
        max_segment_bytes: 10_000,
        ..IngestConfig::default()
    };
    let ingest = Ingest::start(config, store.clone(), meta, None);
    let ack = tokio::time::timeout(
        Duration::from_secs(5),
        ingest.append("a", 0, vec![rec(0, 20_000)]),
    )
    .await
    .expect("not held for the linger")
    .expect("acked");
    assert_eq!(ack.base_offset, 0);
    ingest.shutdown().await;
}

#[tokio::test]
async fn backpressure_caps_buffered_bytes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let meta = metadata(&dir, &[("a", 1)]).await;
    let store = TestStore::new(false); // every PUT waits at the gate
    let cap = 100_000;
    let config = IngestConfig {
        linger: Duration::from_millis(5),
        max_segment_bytes: 20_000,
        max_buffered_bytes: cap,
        max_inflight_segments: 2,
        ..IngestConfig::default()
    };
    let ingest = Ingest::start(config, store.clone(), meta.clone(), None);
    let mut tasks = Vec::new();
    for i in 0..100 {
        let ingest = ingest.clone();
        tasks.push(tokio::spawn(async move {
            ingest.append("a", 0, vec![rec(i, 10_000)]).await
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    // A million bytes were offered; at most `cap` may be held.
    assert!(
        ingest.buffered_bytes() <= cap,
        "{} > {cap}",
        ingest.buffered_bytes()
    );
    assert!(
        ingest.buffered_bytes() > cap / 2,
        "the buffer should have filled up"
    );
    assert!(tasks.iter().filter(|t| t.is_finished()).count() == 0);
    store.gate.add_permits(Semaphore::MAX_PERMITS / 2);
    let mut offsets = Vec::new();
    for t in tasks {
        offsets.push(t.await.expect("task").expect("acked").base_offset);
    }
    offsets.sort();
    assert_eq!(offsets, (0..100).collect::<Vec<i64>>());
    assert_eq!(ingest.buffered_bytes(), 0);
    ingest.shutdown().await;
}

#[tokio::test]
async fn a_failed_put_fails_the_callers_and_leaves_nothing_visible() {
    let dir = tempfile::tempdir().expect("tempdir");
    let meta = metadata(&dir, &[("a", 2)]).await;
    let store = TestStore::new(true);
    store.fail_puts.store(true, Ordering::SeqCst);
    let ingest = Ingest::start(IngestConfig::default(), store.clone(), meta.clone(), None);
    let (r1, r2) = tokio::join!(
        ingest.append("a", 0, vec![rec(1, 5)]),
        ingest.append("a", 1, vec![rec(2, 5)])
    );
    assert!(matches!(r1, Err(IngestError::ObjectStore { .. })), "{r1:?}");
    assert!(matches!(r2, Err(IngestError::ObjectStore { .. })), "{r2:?}");
    assert!(
        meta.partition_offsets("a")
            .await
            .expect("offsets")
            .iter()
            .all(|o| o.high_watermark == 0)
    );
    assert!(
        meta.chunks_from("a", 0, 0, 10)
            .await
            .expect("chunks")
            .is_empty()
    );
    // The node keeps serving once the store recovers.
    store.fail_puts.store(false, Ordering::SeqCst);
    let ack = ingest.append("a", 0, vec![rec(3, 5)]).await.expect("acked");
    assert_eq!(ack.base_offset, 0);
    ingest.shutdown().await;
}

#[tokio::test]
async fn records_of_a_missing_partition_fail_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let meta = metadata(&dir, &[("a", 1)]).await;
    let store = TestStore::new(true);
    let config = IngestConfig {
        linger: Duration::from_millis(100),
        ..IngestConfig::default()
    };
    let ingest = Ingest::start(config, store.clone(), meta.clone(), None);
    let (good, bad_partition, bad_topic) = tokio::join!(
        ingest.append("a", 0, vec![rec(1, 5)]),
        ingest.append("a", 7, vec![rec(2, 5)]),
        ingest.append("nope", 0, vec![rec(3, 5)])
    );
    assert_eq!(good.expect("acked").base_offset, 0);
    assert!(matches!(bad_partition, Err(IngestError::Rejected { .. })));
    assert!(matches!(bad_topic, Err(IngestError::Rejected { .. })));
    ingest.shutdown().await;
}

#[tokio::test]
async fn shutdown_flushes_buffered_records() {
    let dir = tempfile::tempdir().expect("tempdir");
    let meta = metadata(&dir, &[("a", 1)]).await;
    let store = TestStore::new(true);
    let config = IngestConfig {
        linger: Duration::from_secs(60),
        ..IngestConfig::default()
    };
    let ingest = Ingest::start(config, store.clone(), meta.clone(), None);
    let pending = {
        let ingest = ingest.clone();
        tokio::spawn(async move { ingest.append("a", 0, vec![rec(1, 5), rec(2, 5)]).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!pending.is_finished());
    ingest.shutdown().await;
    assert_eq!(pending.await.expect("task").expect("acked").base_offset, 0);
    assert_eq!(
        meta.partition_offsets("a").await.expect("offsets")[0].high_watermark,
        2
    );
    assert!(matches!(
        ingest.append("a", 0, vec![rec(3, 5)]).await,
        Err(IngestError::ShuttingDown)
    ));
}

#[tokio::test]
async fn an_idempotent_retry_gets_the_original_offsets_and_writes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let meta = metadata(&dir, &[("a", 1)]).await;
    let store = TestStore::new(true);
    let ingest = Ingest::start(IngestConfig::default(), store.clone(), meta.clone(), None);
    let id = meta.init_producer_id().await.expect("producer id");
    let batch = |seq| {
        Some(silt_ingest::ProducerBatch {
            producer_id: id.producer_id,
            epoch: id.epoch,
            base_sequence: seq,
        })
    };
    // Submitted back to back, awaited later: order is kept.
    let first = ingest
        .submit(
            "a",
            0,
            vec![rec(1, 5), rec(2, 5)],
            batch(0),
            silt_ingest::BatchKind::Plain,
        )
        .await
        .expect("submitted");
    let plain = ingest
        .submit("a", 0, vec![rec(3, 5)], None, silt_ingest::BatchKind::Plain)
        .await
        .expect("submitted");
    let second = ingest
        .submit(
            "a",
            0,
            vec![rec(4, 5)],
            batch(2),
            silt_ingest::BatchKind::Plain,
        )
        .await
        .expect("submitted");
    let (first, plain, second) = (first.wait().await, plain.wait().await, second.wait().await);
    assert_eq!(first.expect("acked").base_offset, 0);
    assert_eq!(plain.expect("acked").base_offset, 2);
    assert_eq!(second.expect("acked").base_offset, 3);

    // The producer did not see the answer and sends the first batch again.
    let retry = ingest
        .submit(
            "a",
            0,
            vec![rec(1, 5), rec(2, 5)],
            batch(0),
            silt_ingest::BatchKind::Plain,
        )
        .await
        .expect("submitted");
    let retry = retry.wait().await.expect("acked");
    assert_eq!((retry.base_offset, retry.duplicate), (0, true));
    assert_eq!(
        meta.partition_offset("a", 0)
            .await
            .expect("offsets")
            .high_watermark,
        4
    );

    // A gap is refused.
    let gap = ingest
        .submit(
            "a",
            0,
            vec![rec(5, 5)],
            batch(7),
            silt_ingest::BatchKind::Plain,
        )
        .await
        .expect("submitted");
    assert!(matches!(
        gap.wait().await,
        Err(IngestError::Rejected { .. })
    ));
    ingest.shutdown().await;
}
