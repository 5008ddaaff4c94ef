//! Compaction over ingest, an in-memory object store and SQLite: readers see the same
//! records before and after; retention moves the log start; GC deletes exactly what no
//! index entry refers to.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::ObjectStore;
use object_store::memory::InMemory;
use silt_compactor::{Compactor, CompactorConfig};
use silt_ingest::{Ingest, IngestConfig};
use silt_metadata::{ManualClock, MetadataStore, SqliteStore, TopicConfig};
use silt_reader::{FetchRequest, Reader, ReaderConfig};
use silt_segment::Record;

struct Setup {
    _dir: tempfile::TempDir,
    store: Arc<dyn ObjectStore>,
    meta: Arc<dyn MetadataStore>,
    ingest: Ingest,
    reader: Reader,
    compactor: Compactor,
}

async fn setup(partitions: i32, config: TopicConfig) -> Setup {
    let dir = tempfile::tempdir().expect("tempdir");
    let meta: Arc<dyn MetadataStore> = Arc::new(
        SqliteStore::open(&dir.path().join("m.db"))
            .await
            .expect("open"),
    );
    meta.create_topic("t", partitions, config)
        .await
        .expect("topic");
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let reader = Reader::build(
        ReaderConfig {
            memory_cache_bytes: 16 << 20,
            disk_cache_bytes: 0,
            cache_dir: Some(dir.path().join("cache")),
            chunks_per_lookup: 16,
        },
        store.clone(),
        meta.clone(),
    )
    .await
    .expect("reader");
    let ingest = Ingest::start(
        IngestConfig {
            linger: Duration::from_millis(2),
            ..IngestConfig::default()
        },
        store.clone(),
        meta.clone(),
        None,
    );
    let compactor = Compactor::new(
        store.clone(),
        meta.clone(),
        meta.clone(),
        CompactorConfig {
            rows_per_group: 100,
            target_file_bytes: 64 << 10,
            ..CompactorConfig::default()
        },
    );
    Setup {
        _dir: dir,
        store,
        meta,
        ingest,
        reader,
        compactor,
    }
}

/// Test records are stamped in 2020: without this, the default retention (7 days) would
/// expire them all.
fn keep_forever() -> TopicConfig {
    TopicConfig::from_pairs([("retention.ms", "-1")]).expect("config")
}

fn record(p: i32, i: usize) -> Record {
    Record {
        timestamp_ms: 1_600_000_000_000 + i as i64,
        key: Some(Bytes::from(format!("k{}", i % 7))),
        value: Some(Bytes::from(format!("p{p}-v{i}"))),
        headers: Vec::new(),
    }
}

/// Every record of a partition from its log start, through the reader.
async fn read_all(reader: &Reader, partition: i32) -> Vec<(i64, Record)> {
    let mut out = Vec::new();
    let offsets = reader
        .partition_offsets("t", partition)
        .await
        .expect("offsets");
    let mut offset = offsets.log_start_offset;
    while offset < offsets.high_watermark {
        let got = reader
            .fetch(&FetchRequest {
                topic: "t".into(),
                partition,
                offset,
                max_bytes: 1 << 20,
                max_records: 10_000,
                max_wait: Duration::ZERO,
                read_committed: false,
            })
            .await
            .expect("fetch");
        out.extend(got.records.into_iter().map(|r| (r.offset, r.record)));
        offset = got.next_offset;
    }
    out
}

async fn objects(store: &dyn ObjectStore) -> HashSet<String> {
    store
        .list(None)
        .map_ok(|m| m.location.to_string())
        .try_collect()
        .await
        .expect("list")
}

/// Objects the index refers to, from every partition's entries.
async fn referenced(meta: &dyn MetadataStore, partitions: i32) -> HashSet<String> {
    let mut keys = HashSet::new();
    for p in 0..partitions {
        let o = meta.partition_offset("t", p).await.expect("offsets");
        for c in meta
            .chunks_from("t", p, o.log_start_offset, 1_000_000)
            .await
            .expect("chunks")
        {
            keys.insert(c.segment.key);
        }
    }
    keys
}

async fn produce(s: &Setup, partitions: i32, from: usize, n: usize) {
    let mut pending = Vec::new();
    for i in from..from + n {
        let p = (i % partitions as usize) as i32;
        pending.push(
            s.ingest
                .submit(
                    "t",
                    p,
                    vec![record(p, i)],
                    None,
                    silt_ingest::BatchKind::Plain,
                )
                .await
                .expect("submit"),
        );
        if pending.len() >= 200 {
            for a in pending.drain(..) {
                a.wait().await.expect("ack");
            }
        }
    }
    for a in pending {
        a.wait().await.expect("ack");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_keeps_every_record_and_moves_it_to_the_lake() {
    let s = setup(4, keep_forever()).await;
    produce(&s, 4, 0, 4000).await;
    let mut before = Vec::new();
    for p in 0..4 {
        before.push(read_all(&s.reader, p).await);
    }
    let raw_objects = objects(s.store.as_ref()).await;
    assert!(raw_objects.len() > 4, "many small raw segments");

    let report = s
        .compactor
        .run_pass(Some(Duration::ZERO))
        .await
        .expect("pass");
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(report.records_rewritten, 4000);
    assert!(report.lake_files_written >= 4);
    assert_eq!(report.lag_bytes, 0);

    for p in 0..4 {
        assert_eq!(
            read_all(&s.reader, p).await,
            before[p as usize],
            "partition {p}"
        );
        let entries = s
            .meta
            .chunks_from("t", p, 0, 100_000)
            .await
            .expect("chunks");
        let prefix = format!("lake/t/partition={p}/");
        assert!(entries.iter().all(|e| e.segment.key.starts_with(&prefix)));
    }
    // Raw segments are gone (grace 0 here); only lake files remain, all referenced.
    let after = objects(s.store.as_ref()).await;
    assert!(after.iter().all(|k| k.starts_with("lake/t/")), "{after:?}");
    assert_eq!(after, referenced(s.meta.as_ref(), 4).await);
    assert_eq!(report.unreferenced_deleted as usize, raw_objects.len());

    // New records after compaction land raw, and a second pass merges them too.
    produce(&s, 4, 4000, 400).await;
    let report = s
        .compactor
        .run_pass(Some(Duration::ZERO))
        .await
        .expect("pass");
    assert_eq!(report.records_rewritten, 400);
    let mut all = 0;
    for p in 0..4 {
        all += read_all(&s.reader, p).await.len();
    }
    assert_eq!(all, 4400);
    s.ingest.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_younger_than_the_minimum_age_stay_raw() {
    let s = setup(1, keep_forever()).await;
    produce(&s, 1, 0, 100).await;
    let report = s
        .compactor
        .run_pass(Some(Duration::from_secs(3600)))
        .await
        .expect("pass");
    assert_eq!(report.records_rewritten, 0);
    assert!(report.lag_bytes > 0);
    assert_eq!(report.unreferenced_deleted + report.orphans_deleted, 0);
    s.ingest.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_by_size_and_by_time_moves_the_log_start() {
    let config = TopicConfig::from_pairs([("retention.bytes", "2000"), ("retention.ms", "-1")])
        .expect("config");
    let s = setup(1, config).await;
    produce(&s, 1, 0, 300).await;
    let report = s
        .compactor
        .run_pass(Some(Duration::from_secs(3600)))
        .await
        .expect("pass");
    assert_eq!(report.partitions_truncated, 1);
    let o = s.meta.partition_offset("t", 0).await.expect("offsets");
    assert!(o.log_start_offset > 0 && o.high_watermark == 300, "{o:?}");
    let kept: u64 = s
        .meta
        .chunks_from("t", 0, o.log_start_offset, 10_000)
        .await
        .expect("chunks")
        .iter()
        .map(|c| c.byte_len)
        .sum();
    assert!(kept <= 2000, "kept {kept} bytes");
    let records = read_all(&s.reader, 0).await;
    assert_eq!(records.first().map(|r| r.0), Some(o.log_start_offset));

    // Time: the records are stamped in 2020; a one-day retention expires all of them.
    s.meta
        .set_topic_config(
            "t",
            TopicConfig::from_pairs([("retention.ms", "86400000")]).expect("config"),
        )
        .await
        .expect("config");
    s.compactor
        .run_pass(Some(Duration::from_secs(3600)))
        .await
        .expect("pass");
    let o = s.meta.partition_offset("t", 0).await.expect("offsets");
    assert_eq!((o.log_start_offset, o.high_watermark), (300, 300));
    assert!(read_all(&s.reader, 0).await.is_empty());
    s.ingest.shutdown().await;
}

/// Random rounds of produce, compaction, log-start moves and GC: the store never loses
/// an object the index refers to, and readers always get every record from the log start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_never_deletes_a_referenced_object() {
    let s = setup(3, keep_forever()).await;
    let seed = fastrand::u64(..);
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut produced = 0;
    for round in 0..25 {
        match rng.u8(0..4) {
            0 | 1 => {
                let n = rng.usize(1..200);
                produce(&s, 3, produced, n).await;
                produced += n;
            }
            2 => {
                let p = rng.i32(0..3);
                let o = s.meta.partition_offset("t", p).await.expect("offsets");
                if o.high_watermark > o.log_start_offset {
                    let to = rng.i64(o.log_start_offset..=o.high_watermark);
                    s.meta.advance_log_start("t", p, to).await.expect("advance");
                }
            }
            _ => {
                let report = s
                    .compactor
                    .run_pass(Some(Duration::ZERO))
                    .await
                    .expect("pass");
                assert!(report.errors.is_empty(), "seed {seed}: {:?}", report.errors);
            }
        }
        let present = objects(s.store.as_ref()).await;
        let needed = referenced(s.meta.as_ref(), 3).await;
        let missing: Vec<_> = needed.difference(&present).collect();
        assert!(
            missing.is_empty(),
            "seed {seed} round {round}: referenced objects deleted: {missing:?}"
        );
        for p in 0..3 {
            let o = s.meta.partition_offset("t", p).await.expect("offsets");
            let records = read_all(&s.reader, p).await;
            let expected: Vec<i64> = (o.log_start_offset..o.high_watermark).collect();
            assert_eq!(
                records.iter().map(|r| r.0).collect::<Vec<_>>(),
                expected,
                "seed {seed} round {round} partition {p}"
            );
        }
    }
    s.ingest.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orphans_are_deleted_only_after_the_grace_period() {
    use object_store::{ObjectStoreExt, PutPayload, path::Path};
    let s = setup(1, keep_forever()).await;
    produce(&s, 1, 0, 10).await;
    let orphan = Path::from("segments/2020/01/01/00/never-committed.parquet");
    s.store
        .put(&orphan, PutPayload::from_static(b"PAR1"))
        .await
        .expect("put");
    // The default grace (minutes) keeps it, even on a pass with min_age 0.
    let report = s
        .compactor
        .run_pass(Some(Duration::ZERO))
        .await
        .expect("pass");
    assert_eq!(report.orphans_deleted, 0);
    assert!(objects(s.store.as_ref()).await.contains(orphan.as_ref()));
    // Past its grace period it goes; referenced objects stay.
    let eager = Compactor::new(
        s.store.clone(),
        s.meta.clone(),
        s.meta.clone(),
        CompactorConfig {
            gc_grace: Duration::ZERO,
            ..CompactorConfig::default()
        },
    );
    let report = eager.run_pass(Some(Duration::ZERO)).await.expect("pass");
    assert_eq!(report.orphans_deleted, 1);
    let left = objects(s.store.as_ref()).await;
    assert!(!left.contains(orphan.as_ref()));
    assert_eq!(left, referenced(s.meta.as_ref(), 1).await);
    assert_eq!(read_all(&s.reader, 0).await.len(), 10);
    s.ingest.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pass_reads_each_footer_once_and_each_chunk_once() {
    let partitions = 8;
    let s = setup(partitions, keep_forever()).await;
    produce(&s, partitions, 0, 4000).await;
    let mut chunks = 0;
    let mut segments = HashSet::new();
    for p in 0..partitions {
        let entries = s
            .meta
            .chunks_from("t", p, 0, 100_000)
            .await
            .expect("chunks");
        chunks += entries.len();
        segments.extend(entries.into_iter().map(|e| e.segment.key));
    }
    assert!(
        chunks > 2 * segments.len(),
        "segments hold several partitions each ({chunks} chunks in {} segments)",
        segments.len()
    );
    let counted = Arc::new(silt_storage::InstrumentedStore::new(s.store.clone()));
    let compactor = Compactor::new(
        counted.clone(),
        s.meta.clone(),
        s.meta.clone(),
        CompactorConfig {
            rows_per_group: 100,
            target_file_bytes: 64 << 10,
            ..CompactorConfig::default()
        },
    );
    let report = compactor
        .run_pass(Some(Duration::ZERO))
        .await
        .expect("pass");
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(report.records_rewritten, 4000);
    // One GET per segment footer and one per chunk: a footer is not fetched again for
    // each partition its segment holds.
    assert_eq!(counted.counts().gets as usize, segments.len() + chunks);
    s.ingest.shutdown().await;
}

/// Retention and the minimum age follow the compactor's clock: moved forward, a pass
/// expires what has become old, with no sleeping and no records stamped in the past.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_follows_the_injected_clock() {
    let start = 1_900_000_000_000;
    let clock = ManualClock::new(start);
    let config = TopicConfig::from_pairs([("retention.ms", "3600000")]).expect("config");
    let s = setup(1, config).await;
    // Raw chunks stay raw (a minimum age of ten years), so retention meets one index
    // entry per batch.
    let compactor = Compactor::new(
        s.store.clone(),
        s.meta.clone(),
        s.meta.clone(),
        CompactorConfig {
            min_age: Duration::from_secs(10 * 365 * 86_400),
            ..CompactorConfig::default()
        },
    )
    .with_clock(clock.clone());
    for batch in 0..3i64 {
        let records = (0..10)
            .map(|i| Record {
                timestamp_ms: start + batch * 600_000 + i,
                key: None,
                value: Some(Bytes::from(format!("b{batch}-{i}"))),
                headers: Vec::new(),
            })
            .collect();
        s.ingest.append("t", 0, records).await.expect("append");
    }
    // Twenty minutes on: nothing is an hour old yet.
    clock.advance(Duration::from_secs(20 * 60));
    let report = compactor.run_pass(None).await.expect("pass");
    assert_eq!(report.records_expired, 0, "{report:?}");
    assert_eq!(read_all(&s.reader, 0).await.len(), 30);
    // 65 minutes after the first batch: the first batch (newest record at +0 min) is
    // older than an hour; the second (+10 min) and third (+20 min) are not.
    clock.set(start + 65 * 60 * 1000);
    let report = compactor.run_pass(None).await.expect("pass");
    assert_eq!(report.records_expired, 10, "{report:?}");
    let left = read_all(&s.reader, 0).await;
    assert_eq!(left.len(), 20);
    assert_eq!(left[0].0, 10, "the log starts after the expired batch");
    // Two hours after the last batch: everything is gone.
    clock.advance(Duration::from_secs(2 * 3600));
    compactor.run_pass(None).await.expect("pass");
    let offsets = s.reader.partition_offsets("t", 0).await.expect("offsets");
    assert_eq!(offsets.log_start_offset, 30);
}
