//! The read path over ingest, an in-memory object store and SQLite: content and order,
//! limits, long polling, timestamp lookup, and object GETs saved by the cache.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use object_store::memory::InMemory;
use silt_ingest::{Ingest, IngestConfig, SegmentListener, WrittenSegment};
use silt_metadata::{CatalogStore, CompactionStore, LogStore, SqliteStore, TopicConfig};
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
    dir: tempfile::TempDir,
    store: Arc<InstrumentedStore>,
    meta: Arc<SqliteStore>,
    ingest: Ingest,
    reader: Reader,
}

async fn node(cache_on_write: bool) -> Node {
    node_with(cache_on_write, |dir| ReaderConfig {
        memory_cache_bytes: 16 << 20,
        disk_cache_bytes: 0,
        cache_dir: Some(dir.join("cache")),
        chunks_per_lookup: 4,
    })
    .await
}

async fn node_with(
    cache_on_write: bool,
    config: impl FnOnce(&std::path::Path) -> ReaderConfig,
) -> Node {
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
    let config = config(dir.path());
    let reader = Reader::build(config, store.clone(), meta.clone())
        .await
        .expect("reader");
    let listener: Option<Arc<dyn SegmentListener>> =
        cache_on_write.then(|| Arc::new(CacheOnWrite(reader.clone())) as Arc<dyn SegmentListener>);
    let ingest_config = IngestConfig {
        linger: Duration::from_millis(5),
        ..IngestConfig::default()
    };
    let ingest = Ingest::start(ingest_config, store.clone(), meta.clone(), listener);
    Node {
        dir,
        store,
        meta,
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
        read_committed: false,
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cold_read_of_many_small_chunks_answers_with_part_of_them_and_goes_on() {
    let node = node(false).await;
    write(&node, 120, 1).await; // 120 objects of one record each
    // A reader that has cached nothing, over the same objects, every request 20 ms late:
    // reading all 120 chunks (a footer and a range each) takes seconds.
    let slow = Arc::new(silt_storage::FaultyStore::new(
        node.store.clone(),
        silt_storage::FaultSettings {
            enabled: true,
            slow_rate: 1.0,
            slow_delay: Duration::from_millis(20),
            ..Default::default()
        },
    ));
    let reader = Reader::build(
        ReaderConfig {
            memory_cache_bytes: 16 << 20,
            disk_cache_bytes: 0,
            cache_dir: Some(node.dir.path().join("cold")),
            chunks_per_lookup: 16,
        },
        slow,
        node.meta.clone(),
    )
    .await
    .expect("reader");
    let first = reader.fetch(&req(0)).await.expect("fetch");
    assert!(
        !first.records.is_empty() && first.records.len() < 120,
        "the first answer stops at the read budget: {} records",
        first.records.len()
    );
    // Asking again from where each answer ends reads everything, in order.
    let mut offsets: Vec<i64> = first.records.iter().map(|r| r.offset).collect();
    let mut next = first.next_offset;
    while next < 120 {
        let more = reader.fetch(&req(next)).await.expect("fetch");
        assert!(!more.records.is_empty());
        offsets.extend(more.records.iter().map(|r| r.offset));
        next = more.next_offset;
    }
    assert_eq!(offsets, (0..120).collect::<Vec<_>>());
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

/// Damage done to a segment object behind Silt's back.
#[derive(Debug, Clone, Copy)]
enum Damage {
    Truncated,
    Overwritten,
    Deleted,
}

#[tokio::test]
async fn a_damaged_object_fails_its_range_only_and_names_the_object() {
    use futures::TryStreamExt;
    use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

    for damage in [Damage::Truncated, Damage::Overwritten, Damage::Deleted] {
        let node = node(false).await;
        let records: Vec<Record> = (0..50).map(rec).collect();
        node.ingest
            .append("t", 0, records.clone())
            .await
            .expect("p0 acked");
        node.ingest
            .append("t", 1, records.clone())
            .await
            .expect("p1 acked");
        // Two appends, one after the other: two segments, partition 0's first.
        let mut objects: Vec<_> = node
            .store
            .list(None)
            .try_collect::<Vec<_>>()
            .await
            .expect("list");
        objects.sort_by(|a, b| a.location.as_ref().cmp(b.location.as_ref()));
        assert_eq!(objects.len(), 2, "{damage:?}");
        let victim = objects[0].location.clone();
        let data = node
            .store
            .get(&victim)
            .await
            .expect("get")
            .bytes()
            .await
            .expect("body");
        match damage {
            Damage::Truncated => {
                let half = data.slice(..data.len() / 2);
                node.store
                    .put(&victim, PutPayload::from(half))
                    .await
                    .expect("truncate");
            }
            Damage::Overwritten => {
                let garbage: Vec<u8> = (0..data.len()).map(|i| (i * 31 % 251) as u8).collect();
                node.store
                    .put(&victim, PutPayload::from(garbage))
                    .await
                    .expect("overwrite");
            }
            Damage::Deleted => node.store.delete(&victim).await.expect("delete"),
        }

        let err = node
            .reader
            .fetch(&req(0))
            .await
            .expect_err("a damaged object cannot be read");
        assert!(
            err.to_string().contains(victim.as_ref()),
            "{damage:?}: the error names the object: {err}"
        );
        match (damage, &err) {
            (Damage::Deleted, ReaderError::ObjectStore { source, .. }) => assert!(
                matches!(source, object_store::Error::NotFound { .. }),
                "{source}"
            ),
            (Damage::Overwritten, ReaderError::Segment { .. })
            | (Damage::Truncated, ReaderError::ObjectStore { .. } | ReaderError::Segment { .. }) => {
            }
            _ => panic!("{damage:?}: unexpected error {err:?}"),
        }
        // The other partition, in another object, still reads in full.
        let other = node
            .reader
            .fetch(&FetchRequest {
                partition: 1,
                ..req(0)
            })
            .await
            .expect("the other partition reads");
        let got: Vec<Record> = other.records.into_iter().map(|r| r.record).collect();
        assert_eq!(got, records, "{damage:?}");
        // And asking again fails the same way: nothing was cached from the bad read.
        assert!(node.reader.fetch(&req(0)).await.is_err());
    }
}

/// With a store that fails requests and loses PUT acknowledgements (seeded), every append
/// either fails — and then none of its records is visible — or succeeds; retrying the
/// failed ones gives each record exactly once, in order. A PUT whose acknowledgement was
/// lost leaves an object the index never references (an orphan for the compactor's GC).
#[tokio::test]
async fn injected_store_faults_never_expose_unacknowledged_records() {
    use futures::TryStreamExt;
    use object_store::ObjectStore;
    use silt_storage::{FaultSettings, FaultyStore};

    let dir = tempfile::tempdir().expect("tempdir");
    let meta = Arc::new(
        SqliteStore::open(&dir.path().join("m.db"))
            .await
            .expect("open"),
    );
    meta.create_topic("t", 1, TopicConfig::default())
        .await
        .expect("topic");
    let backing: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let faulty = Arc::new(FaultyStore::new(
        backing.clone(),
        FaultSettings {
            enabled: true,
            seed: 7,
            error_rate: 0.3,
            put_lost_ack_rate: 0.3,
            ..FaultSettings::default()
        },
    ));
    let config = ReaderConfig {
        memory_cache_bytes: 16 << 20,
        disk_cache_bytes: 0,
        cache_dir: Some(dir.path().join("cache")),
        chunks_per_lookup: 4,
    };
    let ingest = Ingest::start(
        IngestConfig {
            linger: Duration::from_millis(1),
            ..IngestConfig::default()
        },
        faulty.clone(),
        meta.clone(),
        None,
    );
    let (mut failures, mut next) = (0, 0i64);
    while next < 200 {
        let batch: Vec<Record> = (next..next + 10).map(rec).collect();
        match ingest.append("t", 0, batch).await {
            Ok(ack) => {
                assert_eq!(ack.base_offset, next, "offsets stay dense");
                next += 10;
            }
            Err(e) => {
                failures += 1;
                assert!(e.to_string().contains("injected fault"), "{e}");
                // Nothing of a failed append is visible.
                let hwm = meta.partition_offset("t", 0).await.expect("offsets");
                assert_eq!(hwm.high_watermark, next);
            }
        }
    }
    assert!(
        failures > 5,
        "the schedule injected only {failures} failures"
    );
    // Read back through a healthy store: every record once, in order.
    faulty.set_active(false);
    let reader = Reader::build(config, faulty.clone(), meta.clone())
        .await
        .expect("reader");
    let got = reader.fetch(&req(0)).await.expect("fetch");
    let records: Vec<Record> = got.records.into_iter().map(|r| r.record).collect();
    assert_eq!(records, (0..200).map(rec).collect::<Vec<_>>());
    let objects: Vec<_> = backing.list(None).try_collect().await.expect("list");
    let keys: Vec<String> = objects.iter().map(|o| o.location.to_string()).collect();
    let referenced = meta.known_segments(&keys).await.expect("index").len();
    assert!(
        objects.len() > referenced,
        "lost acknowledgements leave orphans: {} objects, {referenced} referenced",
        objects.len()
    );
    ingest.shutdown().await;
}

/// Reads every record of partition 0 from offset 0, in as many fetches as it takes.
async fn read_all(reader: &Reader) -> Vec<Record> {
    let mut out = Vec::new();
    let mut offset = 0;
    loop {
        let got = reader.fetch(&req(offset)).await.expect("fetch");
        if got.records.is_empty() {
            return out;
        }
        offset = got.next_offset;
        out.extend(got.records.into_iter().map(|r| r.record));
    }
}

#[tokio::test]
async fn a_cache_disk_that_cannot_be_used_degrades_to_memory() {
    // The cache directory cannot be created (a file is in the way): the node starts with
    // a memory-only cache and serves every read.
    let node = node_with(false, |dir| {
        std::fs::write(dir.join("file"), b"x").expect("file");
        ReaderConfig {
            memory_cache_bytes: 4 << 20,
            disk_cache_bytes: 64 << 20,
            cache_dir: Some(dir.join("file").join("cache")),
            chunks_per_lookup: 4,
        }
    })
    .await;
    write(&node, 50, 10).await;
    assert_eq!(
        read_all(&node.reader).await,
        (0..50).map(rec).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn a_cache_disk_that_fails_under_reads_falls_back_to_the_object_store() {
    let node = node_with(false, |dir| ReaderConfig {
        memory_cache_bytes: 2 << 20,
        disk_cache_bytes: 64 << 20,
        cache_dir: Some(dir.join("cache")),
        chunks_per_lookup: 4,
    })
    .await;
    // About 6 MiB of records in 40 segments: more than the memory tier holds, so chunks
    // go to the disk tier.
    let big = |i: i64| Record {
        value: Some(Bytes::from({
            let mut rng = fastrand::Rng::with_seed(i as u64);
            (0..40_000).map(|_| rng.u8(..)).collect::<Vec<u8>>()
        })),
        ..rec(i)
    };
    for start in (0..160).step_by(4) {
        let batch = (start..start + 4).map(big).collect();
        node.ingest.append("t", 0, batch).await.expect("acked");
    }
    let expected: Vec<Record> = (0..160).map(big).collect();
    assert_eq!(read_all(&node.reader).await, expected);
    let gets = node.store.counts().gets;
    assert_eq!(read_all(&node.reader).await, expected);
    assert_eq!(
        node.store.counts().gets,
        gets,
        "the second read came from the cache"
    );
    tokio::time::sleep(Duration::from_millis(500)).await; // let the disk tier flush
    // The disk goes bad: every cache file is cut to nothing under the running reader.
    let cache_dir = node.dir.path().join("cache");
    let mut cut = 0;
    for entry in std::fs::read_dir(&cache_dir).expect("cache dir") {
        let path = entry.expect("entry").path();
        if path.is_file() {
            std::fs::OpenOptions::new()
                .write(true)
                .open(&path)
                .and_then(|f| f.set_len(0))
                .expect("truncate");
            cut += 1;
        }
    }
    assert!(cut > 0, "the disk tier wrote no files");
    let gets_before = node.store.counts().gets;
    assert_eq!(read_all(&node.reader).await, expected);
    assert!(
        node.store.counts().gets > gets_before,
        "reads went back to the object store"
    );
}
