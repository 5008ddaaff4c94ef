//! Behaviour every metadata store must show. Each check runs against the embedded SQLite
//! store, against PostgreSQL, and through the network client to a metadata service (on
//! SQLite): the three must be indistinguishable.

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use silt_groups::GroupConfig;
use silt_metadata::{
    AclBinding, AclOperation, AclPermission, CatalogStore, ChunkCommit, ChunkOutcome, ErrorKind,
    GroupOffset, MetadataError, MetadataStore, NodeInfo, PatternType, PostgresStore, ProducerBatch,
    ProducerIdentity, ProducerState, ResourceType, Role, ScramCredential, ScramMechanism,
    SegmentCommit, SqliteStore, TopicConfig, WatchEvent,
};
use silt_metadata_service::{ClientConfig, MetadataClient, MetadataService, serve};
use tokio_util::sync::CancellationToken;

fn chunk(topic: &str, partition: i32, count: u32, ts: i64) -> ChunkCommit {
    ChunkCommit {
        topic: topic.into(),
        partition,
        record_count: count,
        row_group: 0,
        byte_start: 4,
        byte_len: 100,
        min_timestamp_ms: ts,
        max_timestamp_ms: ts + 10,
        producer: None,
        kind: silt_metadata::BatchKind::Plain,
    }
}

/// Base offsets of a commit whose chunks must all be committed.
fn bases(outcomes: Vec<ChunkOutcome>) -> Vec<i64> {
    outcomes
        .into_iter()
        .map(|o| match o {
            ChunkOutcome::Committed { base_offset } => base_offset,
            other => panic!("chunk not committed: {other:?}"),
        })
        .collect()
}

fn segment(key: &str, chunks: Vec<ChunkCommit>) -> SegmentCommit {
    let mut chunks = chunks;
    for (i, c) in chunks.iter_mut().enumerate() {
        c.row_group = i as u32;
    }
    SegmentCommit {
        key: key.into(),
        size: 1000,
        footer_len: 200,
        // Above i32::MAX: the column must hold every u32.
        footer_crc: Some(0xfeed_f00d),
        chunks,
    }
}

/// Where a test's stores live: a SQLite file in a temporary folder, or a fresh database
/// on the PostgreSQL server named by `E2E_POSTGRES_URL` (scripts/test starts one; its
/// absence fails the PostgreSQL tests rather than skipping them).
enum Maker {
    Sqlite(tempfile::TempDir),
    Postgres(String),
    /// A metadata service on a SQLite store, started by the first `open`; every `open`
    /// returns a new client of it.
    Remote(tempfile::TempDir, tokio::sync::OnceCell<String>),
}

impl Maker {
    async fn sqlite() -> Self {
        Self::Sqlite(tempfile::tempdir().expect("tempdir"))
    }

    async fn remote() -> Self {
        Self::Remote(
            tempfile::tempdir().expect("tempdir"),
            tokio::sync::OnceCell::new(),
        )
    }

    async fn postgres() -> Self {
        Self::Postgres(common::fresh_postgres_database("silt_test").await)
    }

    /// Opens the store (again: a second call sees the first one's data).
    async fn open(&self) -> Arc<dyn MetadataStore> {
        match self {
            Self::Sqlite(dir) => Arc::new(
                SqliteStore::open(&dir.path().join("meta.db"))
                    .await
                    .expect("opens"),
            ),
            Self::Postgres(url) => Arc::new(PostgresStore::connect(url).await.expect("connects")),
            Self::Remote(dir, server) => {
                let url = server
                    .get_or_init(|| async {
                        let store = SqliteStore::open(&dir.path().join("meta.db"))
                            .await
                            .expect("opens");
                        let service = MetadataService::new(Arc::new(store), GroupConfig::default());
                        service.activate(0);
                        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                            .await
                            .expect("binds");
                        let url = format!("http://{}", listener.local_addr().expect("addr"));
                        tokio::spawn(serve(listener, service, None, CancellationToken::new()));
                        url
                    })
                    .await;
                let client =
                    MetadataClient::connect(ClientConfig::new(vec![url.clone()])).expect("client");
                client
                    .wait_connected(Duration::from_secs(10))
                    .await
                    .expect("connected");
                Arc::new(client)
            }
        }
    }
}

/// Runs each named check against both stores.
macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Maker::sqlite().await).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Maker::postgres().await).await;
                }
            )*
        }
        mod remote {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Maker::remote().await).await;
                }
            )*
        }
    };
}

conformance!(
    topics_are_created_listed_and_deleted,
    committing_assigns_dense_offsets_per_partition,
    a_commit_naming_a_missing_topic_changes_nothing,
    concurrent_commits_never_reuse_or_skip_offsets,
    idempotent_batches_are_committed_once_and_in_sequence,
    group_offsets_are_stored_and_replaced,
    watchers_wake_when_the_high_watermark_moves,
    state_survives_reopening,
    base_offsets_are_prefix_sums,
    a_retried_commit_is_answered_as_the_first_and_changes_nothing,
    nodes_are_live_until_their_heartbeat_expires,
    the_feed_reports_every_change,
    compaction_swaps_entries_and_gc_finds_unreferenced_segments,
    scram_credentials_are_stored_replaced_and_deleted,
    acl_bindings_are_stored_once_and_deleted_exactly,
    cluster_secrets_are_made_once,
    transactional_ids_keep_their_producer_and_fence_older_epochs,
    concurrent_first_inits_of_a_transactional_id_share_one_producer,
    partition_sizes_add_up_the_stored_bytes,
    a_partition_remembers_its_producers_last_batches,
    chunks_remember_their_producer_batch_and_kind,
    a_transaction_ends_in_every_partition_at_once,
    transactions_fence_older_epochs_and_refuse_records_outside_them,
    an_expired_transaction_is_fenced_only_if_it_is_still_the_one_seen,
);

async fn an_expired_transaction_is_fenced_only_if_it_is_still_the_one_seen(make: Maker) {
    use silt_metadata::TransactionEnd;
    let store = make.open().await;
    store
        .create_topic("ex", 1, TopicConfig::default())
        .await
        .expect("created");
    let id = "app-3";
    let p = store
        .init_transactional_producer(id, Duration::from_secs(1))
        .await
        .expect("init");
    store
        .add_offsets_to_transaction(id, p, "g")
        .await
        .expect("open");
    let seen = store
        .transaction(id)
        .await
        .expect("state")
        .and_then(|t| t.started_at_ms)
        .expect("open");
    // The producer ends it (offsets only) and opens another: the stale sighting fences
    // nothing.
    let end = TransactionEnd {
        transactional_id: id.into(),
        producer: p,
        commit: true,
    };
    let no_markers = segment("", Vec::new());
    assert!(
        store
            .end_transaction(&end, &no_markers)
            .await
            .expect("end")
            .is_empty()
    );
    // A resent end of offsets only (its first answer lost) answers as the first.
    assert!(
        store
            .end_transaction(&end, &no_markers)
            .await
            .expect("resent")
            .is_empty()
    );
    tokio::time::sleep(Duration::from_millis(5)).await;
    store
        .add_partitions_to_transaction(id, p, &[("ex".to_string(), 0)])
        .await
        .expect("reopen");
    assert_eq!(
        store
            .fence_expired_transaction(id, seen)
            .await
            .expect("fence"),
        None
    );
    assert_eq!(
        store
            .transaction(id)
            .await
            .expect("state")
            .expect("known")
            .epoch,
        p.epoch,
        "the producer was left alone"
    );
    // The current sighting fences: the next epoch, which then ends it.
    let now = store
        .transaction(id)
        .await
        .expect("state")
        .and_then(|t| t.started_at_ms)
        .expect("open");
    let fenced = store
        .fence_expired_transaction(id, now)
        .await
        .expect("fence")
        .expect("fenced");
    assert_eq!(fenced.epoch, p.epoch + 1);
    let late = store
        .add_partitions_to_transaction(id, p, &[("ex".to_string(), 0)])
        .await;
    assert!(
        matches!(late, Err(MetadataError::ProducerFenced { .. })),
        "{late:?}"
    );
    let abort = TransactionEnd {
        transactional_id: id.into(),
        producer: fenced,
        commit: false,
    };
    store
        .end_transaction(
            &abort,
            &segment("expired-markers", vec![marker("ex", 0, fenced)]),
        )
        .await
        .expect("aborted by the new epoch");
    assert!(
        !store
            .transaction(id)
            .await
            .expect("state")
            .expect("known")
            .open
    );
}

fn txn_batch(
    topic: &str,
    partition: i32,
    count: u32,
    p: ProducerIdentity,
    seq: i32,
) -> ChunkCommit {
    ChunkCommit {
        kind: silt_metadata::BatchKind::Transactional,
        ..batch(topic, partition, count, p.producer_id, p.epoch, seq)
    }
}

fn marker(topic: &str, partition: i32, p: ProducerIdentity) -> ChunkCommit {
    ChunkCommit {
        kind: silt_metadata::BatchKind::Marker,
        ..batch(topic, partition, 1, p.producer_id, p.epoch, -1)
    }
}

fn offsets_of(offsets: &[silt_metadata::PartitionOffsets]) -> Vec<(i64, i64)> {
    offsets
        .iter()
        .map(|o| (o.high_watermark, o.last_stable_offset))
        .collect()
}

async fn a_transaction_ends_in_every_partition_at_once(make: Maker) {
    use silt_metadata::{AbortedTransaction, TransactionEnd};
    let store = make.open().await;
    store
        .create_topic("tx", 2, TopicConfig::default())
        .await
        .expect("created");
    let id = "app-1";
    let p = store
        .init_transactional_producer(id, Duration::from_secs(60))
        .await
        .expect("init");
    let parts = [("tx".to_string(), 0), ("tx".to_string(), 1)];
    store
        .add_partitions_to_transaction(id, p, &parts)
        .await
        .expect("add partitions");
    store
        .add_offsets_to_transaction(id, p, "g")
        .await
        .expect("add offsets");
    let pending = GroupOffset {
        topic: "tx".into(),
        partition: 0,
        offset: 5,
        metadata: None,
        commit_time_ms: 0,
    };
    store
        .txn_offset_commit(id, p, "g", std::slice::from_ref(&pending))
        .await
        .expect("txn offsets");
    // Plain records, the transaction's records in both partitions, plain again.
    for (key, chunks) in [
        ("plain-1", vec![chunk("tx", 0, 3, 0)]),
        (
            "txn-1",
            vec![txn_batch("tx", 0, 2, p, 0), txn_batch("tx", 1, 4, p, 0)],
        ),
        ("plain-2", vec![chunk("tx", 0, 1, 0)]),
    ] {
        let outcomes = store
            .commit_segment(&segment(key, chunks))
            .await
            .expect("commit");
        bases(outcomes);
    }
    // Readers of committed records stop at the transaction's first offsets.
    assert_eq!(
        offsets_of(&store.partition_offsets("tx").await.expect("offsets")),
        [(6, 3), (4, 0)]
    );
    let state = store.transaction(id).await.expect("state").expect("known");
    assert!(state.open && state.started_at_ms.is_some());
    assert_eq!(state.partitions, parts);
    assert_eq!(state.groups, ["g"]);
    assert!(
        store.group_offsets("g").await.expect("offsets").is_empty(),
        "pending until commit"
    );

    // Commit: markers at their own offsets, the pending offsets, everything stable.
    let end = TransactionEnd {
        transactional_id: id.into(),
        producer: p,
        commit: true,
    };
    let markers = segment("markers-1", vec![marker("tx", 0, p), marker("tx", 1, p)]);
    let ended = bases(store.end_transaction(&end, &markers).await.expect("end"));
    assert_eq!(ended, [6, 4]);
    assert_eq!(
        offsets_of(&store.partition_offsets("tx").await.expect("offsets")),
        [(7, 7), (5, 5)]
    );
    let committed = store.group_offsets("g").await.expect("offsets");
    assert_eq!(
        committed
            .iter()
            .map(|o| (o.partition, o.offset))
            .collect::<Vec<_>>(),
        [(0, 5)]
    );
    assert!(
        !store
            .transaction(id)
            .await
            .expect("state")
            .expect("known")
            .open
    );
    // A resent end answers as the first and changes nothing.
    assert_eq!(
        bases(store.end_transaction(&end, &markers).await.expect("resent")),
        [6, 4]
    );
    assert_eq!(
        store
            .partition_offset("tx", 0)
            .await
            .expect("offset")
            .high_watermark,
        7
    );
    let chunks = store.chunks_from("tx", 0, 6, 10).await.expect("chunks");
    assert_eq!(chunks[0].kind, silt_metadata::BatchKind::Marker);

    // Abort: the range is recorded, the pending offsets dropped.
    store
        .add_partitions_to_transaction(id, p, &parts[1..])
        .await
        .expect("add");
    store
        .add_offsets_to_transaction(id, p, "g")
        .await
        .expect("add offsets");
    store
        .txn_offset_commit(
            id,
            p,
            "g",
            &[GroupOffset {
                offset: 9,
                ..pending.clone()
            }],
        )
        .await
        .expect("txn offsets");
    bases(
        store
            .commit_segment(&segment("txn-2", vec![txn_batch("tx", 1, 3, p, 4)]))
            .await
            .expect("commit"),
    );
    let abort = TransactionEnd {
        commit: false,
        ..end.clone()
    };
    let ended = bases(
        store
            .end_transaction(&abort, &segment("markers-2", vec![marker("tx", 1, p)]))
            .await
            .expect("abort"),
    );
    assert_eq!(ended, [8]);
    assert_eq!(
        store
            .aborted_transactions("tx", 1, 0, 100)
            .await
            .expect("aborted"),
        [AbortedTransaction {
            producer_id: p.producer_id,
            first_offset: 5,
            last_offset: 8
        }]
    );
    assert!(
        store
            .aborted_transactions("tx", 1, 9, 100)
            .await
            .expect("aborted")
            .is_empty()
    );
    assert!(
        store
            .aborted_transactions("tx", 0, 0, 100)
            .await
            .expect("aborted")
            .is_empty()
    );
    let kept = store.group_offsets("g").await.expect("offsets");
    assert_eq!(
        kept[0].offset, 5,
        "the aborted transaction's offsets were dropped"
    );
    assert_eq!(
        offsets_of(&store.partition_offsets("tx").await.expect("offsets")),
        [(7, 7), (9, 9)]
    );
    // No open transaction: another end is refused.
    let again = store
        .end_transaction(&abort, &segment("markers-3", vec![marker("tx", 1, p)]))
        .await;
    assert_eq!(again.expect_err("nothing open").kind(), ErrorKind::Invalid);
    let listed = store.transactions().await.expect("list");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].transactional_id, id);
}

async fn transactions_fence_older_epochs_and_refuse_records_outside_them(make: Maker) {
    use silt_metadata::TransactionEnd;
    let store = make.open().await;
    store
        .create_topic("fz", 1, TopicConfig::default())
        .await
        .expect("created");
    let id = "app-2";
    let old = store
        .init_transactional_producer(id, Duration::from_secs(60))
        .await
        .expect("init");
    let rejected = |outcomes: Vec<ChunkOutcome>| match &outcomes[..] {
        [ChunkOutcome::Rejected(e)] => e.to_string(),
        other => panic!("{other:?}"),
    };
    // Outside a transaction, a transactional batch is refused and writes nothing.
    let refused = store
        .commit_segment(&segment("outside", vec![txn_batch("fz", 0, 2, old, 0)]))
        .await
        .expect("commit");
    assert!(rejected(refused).contains("has not added partition"));
    assert_eq!(
        store
            .partition_offset("fz", 0)
            .await
            .expect("offset")
            .high_watermark,
        0
    );
    let part = [("fz".to_string(), 0)];
    store
        .add_partitions_to_transaction(id, old, &part)
        .await
        .expect("add");
    assert!(
        store
            .add_partitions_to_transaction(id, old, &[("fz".into(), 7)])
            .await
            .is_err(),
        "a missing partition"
    );
    // A new producer of the same id fences the old one.
    let new = store
        .init_transactional_producer(id, Duration::from_secs(60))
        .await
        .expect("init");
    assert_eq!(new.epoch, old.epoch + 1);
    let fenced = store.add_partitions_to_transaction(id, old, &part).await;
    assert!(
        matches!(fenced, Err(MetadataError::ProducerFenced { .. })),
        "{fenced:?}"
    );
    store
        .add_partitions_to_transaction(id, new, &part)
        .await
        .expect("the new producer adds");
    let zombie = store
        .commit_segment(&segment("zombie", vec![txn_batch("fz", 0, 2, old, 0)]))
        .await
        .expect("commit");
    assert!(rejected(zombie).contains("fenced"));
    let end = TransactionEnd {
        transactional_id: id.into(),
        producer: old,
        commit: true,
    };
    let late = store
        .end_transaction(&end, &segment("zombie-markers", vec![marker("fz", 0, old)]))
        .await;
    assert!(
        matches!(late, Err(MetadataError::ProducerFenced { .. })),
        "{late:?}"
    );
    // Markers must cover exactly the transaction's partitions.
    store
        .create_topic("other", 1, TopicConfig::default())
        .await
        .expect("created");
    let wrong = store
        .end_transaction(
            &TransactionEnd {
                producer: new,
                ..end.clone()
            },
            &segment("wrong-markers", vec![marker("other", 0, new)]),
        )
        .await;
    assert!(wrong.is_err());
    assert_eq!(
        store
            .partition_offset("other", 0)
            .await
            .expect("offset")
            .high_watermark,
        0
    );
}

async fn chunks_remember_their_producer_batch_and_kind(make: Maker) {
    use silt_metadata::BatchKind;
    let store = make.open().await;
    store
        .create_topic("k", 1, TopicConfig::default())
        .await
        .expect("created");
    let p = store
        .init_transactional_producer("kinds", Duration::from_secs(60))
        .await
        .expect("id");
    store
        .add_partitions_to_transaction("kinds", p, &[("k".to_string(), 0)])
        .await
        .expect("add");
    let transactional = ChunkCommit {
        kind: BatchKind::Transactional,
        ..batch("k", 0, 3, p.producer_id, p.epoch, 0)
    };
    let marker = ChunkCommit {
        kind: BatchKind::Marker,
        ..chunk("k", 0, 1, 5)
    };
    store
        .commit_segment(&segment(
            "kinds",
            vec![chunk("k", 0, 2, 0), transactional, marker],
        ))
        .await
        .expect("commit");
    let chunks = store.chunks_from("k", 0, 0, 10).await.expect("chunks");
    let seen: Vec<(i64, Option<i64>, BatchKind)> = chunks
        .iter()
        .map(|c| (c.base_offset, c.producer.map(|b| b.producer_id), c.kind))
        .collect();
    assert_eq!(
        seen,
        [
            (0, None, BatchKind::Plain),
            (2, Some(p.producer_id), BatchKind::Transactional),
            (5, None, BatchKind::Marker),
        ]
    );
    assert_eq!(
        chunks[1].producer.map(|b| (b.epoch, b.base_sequence)),
        Some((p.epoch, 0))
    );
}

async fn topics_are_created_listed_and_deleted(make: Maker) {
    let store = make.open().await;
    let config = TopicConfig::from_pairs([("retention.ms", "60000")]).expect("config");
    let t = store
        .create_topic("orders", 3, config.clone())
        .await
        .expect("created");
    assert_eq!(t.partitions, 3);
    assert_eq!(store.topic("orders").await.expect("found"), t);
    assert_eq!(store.topic("orders").await.expect("found").config, config);

    let dup = store
        .create_topic("orders", 1, TopicConfig::default())
        .await;
    assert_eq!(dup.expect_err("duplicate").kind(), ErrorKind::Conflict);
    let bad = store
        .create_topic("no/slash", 1, TopicConfig::default())
        .await;
    assert_eq!(bad.expect_err("invalid").kind(), ErrorKind::Invalid);
    let zero = store.create_topic("zero", 0, TopicConfig::default()).await;
    assert_eq!(zero.expect_err("invalid").kind(), ErrorKind::Invalid);

    store
        .create_topic("alpha", 1, TopicConfig::default())
        .await
        .expect("created");
    let names: Vec<String> = store
        .topics()
        .await
        .expect("list")
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(names, ["alpha", "orders"]);

    let offsets = store.partition_offsets("orders").await.expect("offsets");
    assert_eq!(offsets.len(), 3);
    assert!(
        offsets
            .iter()
            .all(|o| o.high_watermark == 0 && o.log_start_offset == 0)
    );

    // Configs are replaced; partitions only grow, and new ones start empty.
    let changed = TopicConfig::from_pairs([("max.message.bytes", "2048")]).expect("config");
    let t2 = store
        .set_topic_config("orders", changed.clone())
        .await
        .expect("altered");
    assert_eq!(t2.config, changed);
    assert_eq!(store.topic("orders").await.expect("found").config, changed);
    assert_eq!(
        store
            .set_topic_config("nope", changed)
            .await
            .expect_err("missing")
            .kind(),
        ErrorKind::NotFound
    );
    let grown = store.add_partitions("orders", 5).await.expect("grown");
    assert_eq!(grown.partitions, 5);
    let offsets = store.partition_offsets("orders").await.expect("offsets");
    assert_eq!(
        offsets.iter().map(|o| o.partition).collect::<Vec<_>>(),
        [0, 1, 2, 3, 4]
    );
    assert_eq!(
        store
            .add_partitions("orders", 5)
            .await
            .expect_err("not more")
            .kind(),
        ErrorKind::Invalid
    );
    assert_eq!(
        store
            .add_partitions("orders", 2)
            .await
            .expect_err("shrink")
            .kind(),
        ErrorKind::Invalid
    );

    store.delete_topic("orders").await.expect("deleted");
    assert_eq!(
        store.topic("orders").await.expect_err("gone").kind(),
        ErrorKind::NotFound
    );
    assert_eq!(
        store.delete_topic("orders").await.expect_err("gone").kind(),
        ErrorKind::NotFound
    );
    // A re-created topic starts from offset 0 with a new id.
    let again = store
        .create_topic("orders", 1, TopicConfig::default())
        .await
        .expect("created");
    assert_ne!(again.id, t.id);
    assert_eq!(
        store.partition_offsets("orders").await.expect("offsets")[0].high_watermark,
        0
    );
}

async fn committing_assigns_dense_offsets_per_partition(make: Maker) {
    let store = make.open().await;
    store
        .create_topic("a", 2, TopicConfig::default())
        .await
        .expect("created");
    store
        .create_topic("b", 1, TopicConfig::default())
        .await
        .expect("created");

    let first = store
        .commit_segment(&segment(
            "s1",
            vec![
                chunk("a", 0, 5, 100),
                chunk("a", 1, 3, 100),
                chunk("b", 0, 7, 100),
            ],
        ))
        .await
        .expect("commit");
    assert_eq!(bases(first), [0, 0, 0]);
    let second = store
        .commit_segment(&segment(
            "s2",
            vec![chunk("a", 0, 2, 200), chunk("b", 0, 1, 200)],
        ))
        .await
        .expect("commit");
    assert_eq!(bases(second), [5, 7]);

    let hwm: Vec<i64> = store
        .partition_offsets("a")
        .await
        .expect("offsets")
        .iter()
        .map(|o| o.high_watermark)
        .collect();
    assert_eq!(hwm, [7, 3]);

    // Index lookups: from the start, from the middle of a chunk, past the end.
    let all = store.chunks_from("a", 0, 0, 10).await.expect("chunks");
    assert_eq!(
        all.iter()
            .map(|c| (c.base_offset, c.record_count))
            .collect::<Vec<_>>(),
        [(0, 5), (5, 2)]
    );
    assert_eq!(all[0].segment.key, "s1");
    assert_eq!(all[1].segment.key, "s2");
    assert_eq!(
        (all[0].segment.footer_len, all[0].segment.footer_crc),
        (200, Some(0xfeed_f00d)),
        "the footer's length and checksum come back with the index entry"
    );
    let mid = store.chunks_from("a", 0, 3, 10).await.expect("chunks");
    assert_eq!(mid[0].base_offset, 0);
    let second_chunk = store.chunks_from("a", 0, 5, 10).await.expect("chunks");
    assert_eq!(second_chunk.len(), 1);
    assert_eq!(second_chunk[0].base_offset, 5);
    assert!(
        store
            .chunks_from("a", 0, 7, 10)
            .await
            .expect("chunks")
            .is_empty()
    );
    assert_eq!(
        store.chunks_from("a", 0, 0, 1).await.expect("chunks").len(),
        1
    );
    assert_eq!(
        store
            .chunks_from("a", 5, 0, 1)
            .await
            .expect_err("no partition")
            .kind(),
        ErrorKind::NotFound
    );

    // Timestamp lookup: first chunk whose max timestamp reaches T.
    let by_ts = store
        .chunk_for_timestamp("a", 0, 150)
        .await
        .expect("lookup")
        .expect("found");
    assert_eq!(by_ts.base_offset, 5);
    assert_eq!(
        store
            .chunk_for_timestamp("a", 0, 0)
            .await
            .expect("lookup")
            .expect("found")
            .base_offset,
        0
    );
    assert!(
        store
            .chunk_for_timestamp("a", 0, 10_000)
            .await
            .expect("lookup")
            .is_none()
    );
}

async fn a_commit_naming_a_missing_topic_changes_nothing(make: Maker) {
    let store = make.open().await;
    store
        .create_topic("a", 1, TopicConfig::default())
        .await
        .expect("created");
    let err = store
        .commit_segment(&segment(
            "s1",
            vec![chunk("a", 0, 5, 1), chunk("missing", 0, 1, 1)],
        ))
        .await
        .expect_err("unknown topic");
    assert_eq!(err.kind(), ErrorKind::NotFound);
    let err = store
        .commit_segment(&segment(
            "s2",
            vec![chunk("a", 0, 5, 1), chunk("a", 9, 1, 1)],
        ))
        .await
        .expect_err("unknown partition");
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert_eq!(
        store.partition_offsets("a").await.expect("offsets")[0].high_watermark,
        0
    );
    assert!(
        store
            .chunks_from("a", 0, 0, 10)
            .await
            .expect("chunks")
            .is_empty()
    );
    // The same object key can be committed after a failed attempt.
    store
        .commit_segment(&segment("s1", vec![chunk("a", 0, 5, 1)]))
        .await
        .expect("commit");
}

/// Eight writers over two store instances (two nodes) commit to the same partitions.
async fn concurrent_commits_never_reuse_or_skip_offsets(make: Maker) {
    let store = make.open().await;
    store
        .create_topic("hot", 4, TopicConfig::default())
        .await
        .expect("created");
    // Two store instances on the same database, as two nodes would have.
    let other = make.open().await;
    let mut tasks = Vec::new();
    for w in 0..8 {
        let store = if w % 2 == 0 {
            store.clone()
        } else {
            other.clone()
        };
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            for i in 0..25u32 {
                let p = ((w + i) % 4) as i32;
                let n = 1 + (i % 7);
                let base = bases(
                    store
                        .commit_segment(&segment(&format!("w{w}-{i}"), vec![chunk("hot", p, n, 0)]))
                        .await
                        .expect("commit"),
                );
                got.push((p, base[0], n));
            }
            got
        }));
    }
    let mut ranges: Vec<(i32, i64, u32)> = Vec::new();
    for t in tasks {
        ranges.extend(t.await.expect("task"));
    }
    for p in 0..4 {
        let mut mine: Vec<(i64, u32)> = ranges
            .iter()
            .filter(|r| r.0 == p)
            .map(|r| (r.1, r.2))
            .collect();
        mine.sort();
        let mut next = 0;
        for (base, n) in &mine {
            assert_eq!(*base, next, "partition {p} has a gap or overlap");
            next += i64::from(*n);
        }
        let hwm = store.partition_offsets("hot").await.expect("offsets")[p as usize].high_watermark;
        assert_eq!(hwm, next);
        let index = store.chunks_from("hot", p, 0, 1000).await.expect("chunks");
        let bases: HashSet<i64> = index.iter().map(|c| c.base_offset).collect();
        assert_eq!(bases.len(), mine.len());
    }
}

fn batch(
    topic: &str,
    partition: i32,
    count: u32,
    producer_id: i64,
    epoch: i16,
    seq: i32,
) -> ChunkCommit {
    ChunkCommit {
        producer: Some(ProducerBatch {
            producer_id,
            epoch,
            base_sequence: seq,
        }),
        ..chunk(topic, partition, count, 0)
    }
}

async fn idempotent_batches_are_committed_once_and_in_sequence(make: Maker) {
    let store = make.open().await;
    store
        .create_topic("i", 2, TopicConfig::default())
        .await
        .expect("created");
    let a = store.init_producer_id().await.expect("id");
    let b = store.init_producer_id().await.expect("id");
    assert_ne!(a.producer_id, b.producer_id);
    assert_eq!(a.epoch, 0);
    let (pa, e) = (a.producer_id, a.epoch);

    // Two batches of one producer in one segment, and another producer between them.
    let got = store
        .commit_segment(&segment(
            "s1",
            vec![
                batch("i", 0, 5, pa, e, 0),
                chunk("i", 0, 2, 0),
                batch("i", 0, 3, pa, e, 5),
            ],
        ))
        .await
        .expect("commit");
    assert_eq!(bases(got), [0, 5, 7]);

    // A retry of the first batch (same producer, epoch, sequences) answers its original offsets.
    let retry = store
        .commit_segment(&segment("s2", vec![batch("i", 0, 5, pa, e, 0)]))
        .await
        .expect("commit");
    assert!(
        matches!(retry[..], [ChunkOutcome::Duplicate { base_offset: 0 }]),
        "{retry:?}"
    );
    assert_eq!(
        store
            .partition_offset("i", 0)
            .await
            .expect("offsets")
            .high_watermark,
        10
    );

    // A gap is refused, alone: the other chunk of the segment commits.
    let gap = store
        .commit_segment(&segment(
            "s3",
            vec![batch("i", 0, 1, pa, e, 9), chunk("i", 1, 1, 0)],
        ))
        .await
        .expect("commit");
    assert!(
        matches!(
            &gap[0],
            ChunkOutcome::Rejected(MetadataError::OutOfOrderSequence {
                expected: 8,
                got: 9,
                ..
            })
        ),
        "{gap:?}"
    );
    assert!(matches!(gap[1], ChunkOutcome::Committed { base_offset: 0 }));
    assert_eq!(
        store
            .partition_offset("i", 0)
            .await
            .expect("offsets")
            .high_watermark,
        10
    );

    // A producer starts each partition at sequence 0; other partitions are independent.
    let first_elsewhere = store
        .commit_segment(&segment("s4", vec![batch("i", 1, 2, pa, e, 3)]))
        .await
        .expect("commit");
    assert!(matches!(
        first_elsewhere[0],
        ChunkOutcome::Rejected(MetadataError::OutOfOrderSequence { expected: 0, .. })
    ));
    let ok = store
        .commit_segment(&segment("s5", vec![batch("i", 1, 2, pa, e, 0)]))
        .await
        .expect("commit");
    assert_eq!(bases(ok), [1]);

    // A newer epoch must start its sequence at 0; unknown producers are refused.
    let bumped_mid_sequence = store
        .commit_segment(&segment("s6", vec![batch("i", 0, 1, pa, 3, 8)]))
        .await
        .expect("commit");
    assert!(matches!(
        bumped_mid_sequence[0],
        ChunkOutcome::Rejected(MetadataError::OutOfOrderSequence { expected: 0, .. })
    ));
    let unknown = store
        .commit_segment(&segment("s7", vec![batch("i", 0, 1, 999_999, 0, 0)]))
        .await
        .expect("commit");
    assert!(matches!(
        unknown[0],
        ChunkOutcome::Rejected(MetadataError::UnknownProducerId { .. })
    ));

    // Only the last five batches are remembered: an old retry is no longer a duplicate.
    for k in 0..5 {
        let seq = 8 + k;
        let r = store
            .commit_segment(&segment(
                &format!("w{k}"),
                vec![batch("i", 0, 1, pa, e, seq)],
            ))
            .await
            .expect("commit");
        assert!(matches!(r[0], ChunkOutcome::Committed { .. }));
    }
    let stale = store
        .commit_segment(&segment("s8", vec![batch("i", 0, 3, pa, e, 5)]))
        .await
        .expect("commit");
    assert!(
        matches!(
            stale[0],
            ChunkOutcome::Rejected(MetadataError::OutOfOrderSequence { .. })
        ),
        "{stale:?}"
    );
    let recent = store
        .commit_segment(&segment("s9", vec![batch("i", 0, 1, pa, e, 12)]))
        .await
        .expect("commit");
    assert!(
        matches!(recent[0], ChunkOutcome::Duplicate { base_offset: 14 }),
        "{recent:?}"
    );

    // The producer bumps its own epoch (KIP-360): the new epoch starts at sequence 0 in
    // every partition, and from then on the old epoch is fenced.
    let bumped = store
        .commit_segment(&segment(
            "b1",
            vec![
                batch("i", 0, 2, pa, e + 1, 0),
                batch("i", 0, 1, pa, e + 1, 2),
            ],
        ))
        .await
        .expect("commit");
    assert!(
        bumped
            .iter()
            .all(|o| matches!(o, ChunkOutcome::Committed { .. })),
        "{bumped:?}"
    );
    let other_partition = store
        .commit_segment(&segment("b2", vec![batch("i", 1, 1, pa, e + 1, 0)]))
        .await
        .expect("commit");
    assert!(matches!(other_partition[0], ChunkOutcome::Committed { .. }));
    let old_epoch = store
        .commit_segment(&segment("b3", vec![batch("i", 0, 1, pa, e, 13)]))
        .await
        .expect("commit");
    assert!(
        matches!(
            old_epoch[0],
            ChunkOutcome::Rejected(MetadataError::ProducerFenced { .. })
        ),
        "{old_epoch:?}"
    );
    let retry_in_new_epoch = store
        .commit_segment(&segment("b4", vec![batch("i", 0, 2, pa, e + 1, 0)]))
        .await
        .expect("commit");
    assert!(
        matches!(retry_in_new_epoch[0], ChunkOutcome::Duplicate { .. }),
        "{retry_in_new_epoch:?}"
    );
}

async fn group_offsets_are_stored_and_replaced(make: Maker) {
    let store = make.open().await;
    let o = |p, offset| GroupOffset {
        topic: "t".into(),
        partition: p,
        offset,
        metadata: Some("m".into()),
        commit_time_ms: 1,
    };
    store
        .commit_group_offsets("g1", &[o(0, 5), o(1, 7)])
        .await
        .expect("commit");
    store
        .commit_group_offsets("g1", &[o(0, 9)])
        .await
        .expect("commit");
    store
        .commit_group_offsets("g2", &[o(0, 1)])
        .await
        .expect("commit");
    let got = store.group_offsets("g1").await.expect("fetch");
    assert_eq!(
        got.iter()
            .map(|g| (g.partition, g.offset))
            .collect::<Vec<_>>(),
        [(0, 9), (1, 7)]
    );
    assert_eq!(store.groups().await.expect("groups"), ["g1", "g2"]);
    assert!(
        store
            .group_offsets("nobody")
            .await
            .expect("fetch")
            .is_empty()
    );
    assert_eq!(
        store
            .commit_group_offsets("", &[o(0, 1)])
            .await
            .expect_err("bad")
            .kind(),
        ErrorKind::Invalid
    );
    // A negative offset (kafkajs's reset to the earliest commits -2) clears the
    // partition's committed offset, as clients read it, and keeps the others.
    store
        .commit_group_offsets("g1", &[o(0, -2)])
        .await
        .expect("a negative offset clears");
    let got = store.group_offsets("g1").await.expect("fetch");
    assert_eq!(
        got.iter()
            .map(|g| (g.partition, g.offset))
            .collect::<Vec<_>>(),
        [(1, 7)]
    );
}

async fn watchers_wake_when_the_high_watermark_moves(make: Maker) {
    let store = make.open().await;
    store
        .create_topic("w", 2, TopicConfig::default())
        .await
        .expect("created");
    let mut rx0 = store.watch("w", 0);
    let mut rx1 = store.watch("w", 1);
    let writer = store.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(50)).await;
        writer
            .commit_segment(&segment("s", vec![chunk("w", 0, 3, 0)]))
            .await
            .expect("commit");
    });
    tokio::time::timeout(Duration::from_secs(5), rx0.changed())
        .await
        .expect("woken")
        .expect("open");
    assert_eq!(*rx0.borrow(), 3);
    // Partition 1 did not move.
    assert!(
        tokio::time::timeout(Duration::from_millis(100), rx1.changed())
            .await
            .is_err()
    );
}

async fn state_survives_reopening(make: Maker) {
    {
        let store = make.open().await;
        store
            .create_topic("keep", 2, TopicConfig::default())
            .await
            .expect("created");
        store
            .commit_segment(&segment("s", vec![chunk("keep", 1, 4, 0)]))
            .await
            .expect("commit");
    }
    let store = make.open().await;
    assert_eq!(
        store.partition_offsets("keep").await.expect("offsets")[1].high_watermark,
        4
    );
    assert_eq!(
        store
            .chunks_from("keep", 1, 0, 10)
            .await
            .expect("chunks")
            .len(),
        1
    );
}

/// Any sequence of segment commits gives each partition's chunks consecutive ranges:
/// every base offset is the sum of the record counts committed before it. Random cases
/// (proptest's generator, seeded per run), each on a topic of its own.
async fn base_offsets_are_prefix_sums(make: Maker) {
    use proptest::strategy::{Strategy, ValueTree};
    use proptest::test_runner::TestRunner;
    let store = make.open().await;
    let strategy =
        proptest::collection::vec(proptest::collection::vec((0..3i32, 1..50u32), 1..6), 1..20);
    let mut runner = TestRunner::default();
    for case in 0..24 {
        let commits = strategy.new_tree(&mut runner).expect("case").current();
        let topic = format!("p{case}");
        store
            .create_topic(&topic, 3, TopicConfig::default())
            .await
            .expect("created");
        let mut next = [0i64; 3];
        for (i, chunks) in commits.iter().enumerate() {
            let seg = segment(
                &format!("{topic}-s{i}"),
                chunks
                    .iter()
                    .map(|(p, n)| chunk(&topic, *p, *n, 0))
                    .collect(),
            );
            let got = bases(store.commit_segment(&seg).await.expect("commit"));
            for ((p, n), base) in chunks.iter().zip(got) {
                assert_eq!(base, next[*p as usize], "case {commits:?}");
                next[*p as usize] += i64::from(*n);
            }
        }
        for p in 0..3 {
            let o = store.partition_offset(&topic, p).await.expect("offset");
            assert_eq!(o.high_watermark, next[p as usize]);
            let index = store
                .chunks_from(&topic, p, 0, 10_000)
                .await
                .expect("index");
            let mut expect = 0;
            for c in index {
                assert_eq!(c.base_offset, expect);
                expect = c.end_offset();
            }
            assert_eq!(expect, next[p as usize]);
        }
    }
}

/// Outcomes as comparable values.
fn outcome_view(outcomes: &[ChunkOutcome]) -> Vec<String> {
    outcomes
        .iter()
        .map(|o| match o {
            ChunkOutcome::Committed { base_offset } => format!("committed {base_offset}"),
            ChunkOutcome::Duplicate { base_offset } => format!("duplicate {base_offset}"),
            ChunkOutcome::Rejected(e) => format!("rejected {:?}", e.kind()),
        })
        .collect()
}

/// A commit whose answer was lost is retried with the same object key: the retry gets the
/// first answer and nothing is committed twice.
async fn a_retried_commit_is_answered_as_the_first_and_changes_nothing(make: Maker) {
    let store = make.open().await;
    store
        .create_topic("r", 2, TopicConfig::default())
        .await
        .expect("created");
    let p = store.init_producer_id().await.expect("id");
    let commit = segment(
        "retried",
        vec![
            chunk("r", 0, 3, 0),
            batch("r", 1, 4, p.producer_id, p.epoch, 0),
            // A gap: refused the first time, and again on the retry.
            batch("r", 0, 2, p.producer_id, p.epoch, 9),
        ],
    );
    let first = outcome_view(&store.commit_segment(&commit).await.expect("commit"));
    assert_eq!(first[..2], ["committed 0", "committed 0"]);
    assert!(first[2].starts_with("rejected"), "{first:?}");
    let again = outcome_view(&store.commit_segment(&commit).await.expect("retry"));
    assert_eq!(again, first);
    for (partition, hwm) in [(0, 3), (1, 4)] {
        let o = store
            .partition_offset("r", partition)
            .await
            .expect("offsets");
        assert_eq!(o.high_watermark, hwm, "partition {partition}");
        let chunks = store
            .chunks_from("r", partition, 0, 10)
            .await
            .expect("chunks");
        assert_eq!(chunks.len(), 1, "partition {partition}: one index entry");
    }
    // The producer's next batch still follows its first one.
    let next = store
        .commit_segment(&segment(
            "after",
            vec![batch("r", 1, 1, p.producer_id, p.epoch, 4)],
        ))
        .await
        .expect("commit");
    assert_eq!(bases(next), [4]);
}

async fn compaction_swaps_entries_and_gc_finds_unreferenced_segments(make: Maker) {
    let store = make.open().await;
    store
        .create_topic("c", 2, TopicConfig::default())
        .await
        .expect("created");
    store
        .commit_segment(&segment(
            "s1",
            vec![chunk("c", 0, 3, 10), chunk("c", 1, 1, 10)],
        ))
        .await
        .expect("commit");
    store
        .commit_segment(&segment("s2", vec![chunk("c", 0, 2, 20)]))
        .await
        .expect("commit");
    let far = i64::MAX / 2;
    let raw = store.raw_chunks("c", 0, 0, far, 100).await.expect("raw");
    assert_eq!(
        raw.iter().map(|c| c.base_offset).collect::<Vec<_>>(),
        [0, 3]
    );
    assert!(
        store
            .raw_chunks("c", 0, 0, 0, 100)
            .await
            .expect("raw")
            .is_empty(),
        "too young"
    );

    let lake = silt_metadata::SegmentRef {
        key: "lake/c/partition=0/0-4.parquet".into(),
        size: 500,
        footer_len: 100,
        footer_crc: None,
    };
    let entry = |base, count, row_group| silt_metadata::ChunkEntry {
        partition: 0,
        base_offset: base,
        record_count: count,
        segment: lake.clone(),
        row_group,
        byte_start: 4,
        byte_len: 200,
        min_timestamp_ms: 10,
        max_timestamp_ms: 30,
        producer: None,
        kind: silt_metadata::BatchKind::Plain,
    };
    let new = [entry(0, 4, 0), entry(4, 1, 1)];
    // New entries out of order, or past the replaced offsets, are refused.
    let swapped = [new[1].clone(), new[0].clone()];
    assert!(store.replace_chunks("c", 0, &raw, &swapped).await.is_err());
    assert!(
        store
            .replace_chunks("c", 0, &raw, &[entry(0, 6, 0)])
            .await
            .is_err()
    );
    assert_eq!(
        store
            .raw_chunks("c", 0, 3, far, 100)
            .await
            .expect("raw")
            .iter()
            .map(|c| c.base_offset)
            .collect::<Vec<_>>(),
        [3],
        "from an offset on"
    );
    store
        .replace_chunks("c", 0, &raw, &new)
        .await
        .expect("swap");
    let now = store.chunks_from("c", 0, 0, 10).await.expect("chunks");
    assert_eq!(now, new, "readers now find the lake entries");
    assert!(
        store
            .raw_chunks("c", 0, 0, far, 100)
            .await
            .expect("raw")
            .is_empty()
    );
    let again = store.replace_chunks("c", 0, &raw, &new).await;
    assert!(
        matches!(again, Err(MetadataError::Stale { .. })),
        "a second swap of the same entries is stale: {again:?}"
    );

    // s2 is no longer referenced; s1 still is (partition 1). Unreferenced objects are
    // only handed out once their grace period has passed.
    assert!(
        store
            .unreferenced_segments(Duration::from_secs(3600), 10)
            .await
            .expect("gc")
            .is_empty()
    );
    assert_eq!(
        store
            .unreferenced_segments(Duration::ZERO, 10)
            .await
            .expect("gc"),
        ["s2"]
    );

    // Retention of partition 1 drops its only entry: s1 is unreferenced too.
    let o = store.advance_log_start("c", 1, 1).await.expect("advanced");
    assert_eq!((o.log_start_offset, o.high_watermark), (1, 1));
    assert!(
        store
            .chunks_from("c", 1, 0, 10)
            .await
            .expect("chunks")
            .is_empty()
    );
    let mut gone = store
        .unreferenced_segments(Duration::ZERO, 10)
        .await
        .expect("gc");
    gone.sort();
    assert_eq!(gone, ["s1", "s2"]);
    let keys = [
        "s1".to_string(),
        "s2".to_string(),
        "nope".to_string(),
        lake.key.clone(),
    ];
    let mut known = store.known_segments(&keys).await.expect("known");
    known.sort();
    assert_eq!(
        known,
        [lake.key.clone(), "s1".to_string(), "s2".to_string()]
    );
    store.forget_segments(&gone).await.expect("forgotten");
    assert_eq!(
        store.known_segments(&keys).await.expect("known"),
        std::slice::from_ref(&lake.key)
    );
    // A referenced segment is never forgotten.
    store
        .forget_segments(std::slice::from_ref(&lake.key))
        .await
        .expect("refused quietly");
    assert_eq!(
        store.known_segments(&keys).await.expect("known"),
        std::slice::from_ref(&lake.key)
    );

    // The log start moves forward only, within [log start, high watermark].
    let o = store.advance_log_start("c", 0, 2).await.expect("advanced");
    assert_eq!(o.log_start_offset, 2);
    assert_eq!(
        store
            .chunks_from("c", 0, 2, 10)
            .await
            .expect("chunks")
            .len(),
        2
    );
    assert_eq!(
        store
            .advance_log_start("c", 0, 1)
            .await
            .expect("kept")
            .log_start_offset,
        2
    );
    assert_eq!(
        store
            .advance_log_start("c", 0, 99)
            .await
            .expect("clamped")
            .log_start_offset,
        5
    );
    assert!(
        store
            .chunks_from("c", 0, 5, 10)
            .await
            .expect("chunks")
            .is_empty()
    );
}

fn node(id: i32) -> NodeInfo {
    NodeInfo {
        node_id: id,
        kafka_host: "127.0.0.1".into(),
        kafka_port: 9000 + id as u16,
        http_url: format!("http://127.0.0.1:{}", 8000 + id),
        roles: vec![Role::Ingest, Role::Reader],
        rack: None,
    }
}

async fn nodes_are_live_until_their_heartbeat_expires(make: Maker) {
    let store = make.open().await;
    assert!(store.live_nodes().await.expect("nodes").is_empty());
    store
        .heartbeat_node(&node(2), Duration::from_millis(800))
        .await
        .expect("heartbeat");
    store
        .heartbeat_node(&node(1), Duration::from_secs(60))
        .await
        .expect("heartbeat");
    let ids = |nodes: Vec<NodeInfo>| nodes.into_iter().map(|n| n.node_id).collect::<Vec<_>>();
    assert_eq!(ids(store.live_nodes().await.expect("nodes")), [1, 2]);
    // A renewal replaces the node's details.
    let mut moved = node(1);
    moved.kafka_port = 19_001;
    store
        .heartbeat_node(&moved, Duration::from_secs(60))
        .await
        .expect("heartbeat");
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let live = store.live_nodes().await.expect("nodes");
    assert_eq!(live, [moved]);
    store.remove_node(1).await.expect("removed");
    assert!(store.live_nodes().await.expect("nodes").is_empty());
}

async fn the_feed_reports_every_change(make: Maker) {
    let store = make.open().await;
    store
        .create_topic("f", 2, TopicConfig::default())
        .await
        .expect("created");
    let mut feed = store.watch_feed();
    store
        .commit_segment(&segment(
            "f1",
            vec![chunk("f", 0, 2, 0), chunk("f", 1, 5, 0)],
        ))
        .await
        .expect("commit");
    store.delete_topic("f").await.expect("deleted");
    let mut events = Vec::new();
    for _ in 0..3 {
        let event = tokio::time::timeout(Duration::from_secs(5), feed.recv())
            .await
            .expect("an event in time")
            .expect("feed open");
        events.push(event);
    }
    let moved = |partition, high_watermark| WatchEvent::Moved {
        topic: "f".into(),
        partition,
        high_watermark,
    };
    assert!(events[..2].contains(&moved(0, 2)), "{events:?}");
    assert!(events[..2].contains(&moved(1, 5)), "{events:?}");
    assert_eq!(events[2], WatchEvent::TopicDeleted { topic: "f".into() });
}

/// The metadata-service lease: one holder at a time; a new holder fences the old one's
/// writes, even through a store instance that still believes it is active.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_lease_has_one_holder_and_fences_the_last() {
    let make = Maker::postgres().await;
    let Maker::Postgres(url) = &make else {
        unreachable!()
    };
    let a = PostgresStore::connect(url).await.expect("connects");
    let b = PostgresStore::connect(url).await.expect("connects");
    let lease_a = a.try_lease(url, "a").await.expect("tries").expect("free");
    assert!(
        b.try_lease(url, "b").await.expect("tries").is_none(),
        "held by a"
    );
    a.create_topic("x", 1, TopicConfig::default())
        .await
        .expect("a is active");
    lease_a.release().await;
    let lease_b = b
        .try_lease(url, "b")
        .await
        .expect("tries")
        .expect("released");
    assert!(lease_b.epoch() > 0);
    let err = a
        .create_topic("y", 1, TopicConfig::default())
        .await
        .expect_err("a is fenced");
    assert!(matches!(err, MetadataError::NotActive { .. }), "{err:?}");
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    b.create_topic("y", 1, TopicConfig::default())
        .await
        .expect("b is active");
    lease_b.release().await;
}

fn credential(user: &str, mechanism: ScramMechanism, seed: u8) -> ScramCredential {
    ScramCredential {
        user: user.into(),
        mechanism,
        iterations: 4096,
        salt: vec![seed; 16],
        stored_key: vec![seed.wrapping_add(1); 32],
        server_key: vec![seed.wrapping_add(2); 32],
    }
}

async fn scram_credentials_are_stored_replaced_and_deleted(make: Maker) {
    let store = make.open().await;
    assert!(store.scram_credentials().await.expect("list").is_empty());
    let alice = credential("alice", ScramMechanism::Sha512, 1);
    store.set_scram_credential(&alice).await.expect("set");
    store
        .set_scram_credential(&credential("alice", ScramMechanism::Sha256, 2))
        .await
        .expect("set");
    store
        .set_scram_credential(&credential("bob", ScramMechanism::Sha512, 3))
        .await
        .expect("set");
    assert_eq!(
        store
            .scram_credential("alice", ScramMechanism::Sha512)
            .await
            .expect("get"),
        Some(alice)
    );
    // A new password replaces the old credential.
    let changed = credential("alice", ScramMechanism::Sha512, 9);
    store.set_scram_credential(&changed).await.expect("set");
    let all = store.scram_credentials().await.expect("list");
    let view: Vec<(String, ScramMechanism, u8)> = all
        .iter()
        .map(|c| (c.user.clone(), c.mechanism, c.salt[0]))
        .collect();
    assert_eq!(
        view,
        [
            ("alice".to_string(), ScramMechanism::Sha256, 2),
            ("alice".to_string(), ScramMechanism::Sha512, 9),
            ("bob".to_string(), ScramMechanism::Sha512, 3),
        ]
    );
    assert!(
        store
            .delete_scram_credential("alice", ScramMechanism::Sha512)
            .await
            .expect("delete")
    );
    assert!(
        !store
            .delete_scram_credential("alice", ScramMechanism::Sha512)
            .await
            .expect("delete")
    );
    assert_eq!(
        store
            .scram_credential("alice", ScramMechanism::Sha512)
            .await
            .expect("get"),
        None
    );
    // Nonsense is refused and stores nothing.
    let mut empty = credential("carol", ScramMechanism::Sha256, 4);
    empty.salt.clear();
    let e = store
        .set_scram_credential(&empty)
        .await
        .expect_err("no salt");
    assert!(matches!(e, MetadataError::InvalidRequest { .. }), "{e:?}");
    assert_eq!(store.scram_credentials().await.expect("list").len(), 2);
}

fn acl(principal: &str, name: &str, op: AclOperation, permission: AclPermission) -> AclBinding {
    AclBinding {
        principal: principal.into(),
        host: "*".into(),
        resource_type: ResourceType::Topic,
        resource_name: name.into(),
        pattern_type: PatternType::Literal,
        operation: op,
        permission,
    }
}

async fn acl_bindings_are_stored_once_and_deleted_exactly(make: Maker) {
    let store = make.open().await;
    assert!(store.acls().await.expect("list").is_empty());
    let read = acl(
        "User:alice",
        "orders",
        AclOperation::Read,
        AclPermission::Allow,
    );
    let write = acl(
        "User:alice",
        "orders",
        AclOperation::Write,
        AclPermission::Allow,
    );
    let deny = acl("User:bob", "orders", AclOperation::All, AclPermission::Deny);
    let mut prefixed = acl(
        "User:*",
        "pay",
        AclOperation::Describe,
        AclPermission::Allow,
    );
    prefixed.pattern_type = PatternType::Prefixed;
    store
        .create_acls(&[read.clone(), write.clone(), deny.clone()])
        .await
        .expect("create");
    // Creating one again changes nothing.
    store
        .create_acls(&[read.clone(), prefixed.clone()])
        .await
        .expect("create");
    let mut all = store.acls().await.expect("list");
    all.sort_by_key(|b| format!("{b:?}"));
    let mut want = vec![read.clone(), write.clone(), deny.clone(), prefixed.clone()];
    want.sort_by_key(|b| format!("{b:?}"));
    assert_eq!(all, want);
    // An invalid binding adds nothing, not even the valid ones beside it.
    let mut bad = acl("alice", "x", AclOperation::Read, AclPermission::Allow);
    let e = store
        .create_acls(&[
            acl("User:z", "z", AclOperation::Read, AclPermission::Allow),
            bad.clone(),
        ])
        .await
        .expect_err("principal without a type");
    assert!(matches!(e, MetadataError::InvalidRequest { .. }), "{e:?}");
    bad.principal = "User:alice".into();
    bad.pattern_type = PatternType::Match;
    assert!(store.create_acls(&[bad]).await.is_err());
    assert_eq!(store.acls().await.expect("list").len(), 4);
    // Deletion removes exactly the bindings named.
    let removed = store
        .delete_acls(&[
            write.clone(),
            acl(
                "User:nobody",
                "orders",
                AclOperation::Read,
                AclPermission::Allow,
            ),
        ])
        .await
        .expect("delete");
    assert_eq!(removed, 1);
    let left = store.acls().await.expect("list");
    assert_eq!(left.len(), 3);
    assert!(!left.contains(&write));
}

async fn cluster_secrets_are_made_once(make: Maker) {
    let store = make.open().await;
    let first = store
        .cluster_secret("stand-in", &[1; 32])
        .await
        .expect("secret");
    assert_eq!(first, vec![1; 32]);
    // Later proposals lose: every caller, on every node, gets the first one.
    let again = store
        .cluster_secret("stand-in", &[2; 32])
        .await
        .expect("secret");
    assert_eq!(again, first);
    let other = store
        .cluster_secret("other", &[3; 16])
        .await
        .expect("secret");
    assert_eq!(other, vec![3; 16]);
    assert!(store.cluster_secret("empty", &[]).await.is_err());
    drop(store);
    let reopened = make.open().await;
    assert_eq!(
        reopened
            .cluster_secret("stand-in", &[4; 32])
            .await
            .expect("secret"),
        first
    );
}

async fn transactional_ids_keep_their_producer_and_fence_older_epochs(make: Maker) {
    let store = make.open().await;
    store
        .create_topic("tx", 1, TopicConfig::default())
        .await
        .expect("created");
    let timeout = Duration::from_secs(60);
    let first = store
        .init_transactional_producer("app-1", timeout)
        .await
        .expect("init");
    assert_eq!(first.epoch, 0);
    let other = store
        .init_transactional_producer("app-2", timeout)
        .await
        .expect("init");
    let idempotent = store.init_producer_id().await.expect("id");
    assert_ne!(other.producer_id, first.producer_id);
    assert_ne!(idempotent.producer_id, first.producer_id);
    assert_ne!(idempotent.producer_id, other.producer_id);

    let (pid, _) = (first.producer_id, first.epoch);
    let got = store
        .commit_segment(&segment("t1", vec![batch("tx", 0, 2, pid, 0, 0)]))
        .await
        .expect("commit");
    assert_eq!(bases(got), [0]);

    // Initialising again keeps the producer id, bumps the epoch, and fences the old one.
    let second = store
        .init_transactional_producer("app-1", timeout)
        .await
        .expect("init");
    assert_eq!((second.producer_id, second.epoch), (pid, 1));
    let fenced = store
        .commit_segment(&segment("t2", vec![batch("tx", 0, 2, pid, 0, 2)]))
        .await
        .expect("commit");
    assert!(
        matches!(
            fenced[..],
            [ChunkOutcome::Rejected(MetadataError::ProducerFenced {
                current: 1,
                ..
            })]
        ),
        "{fenced:?}"
    );
    // The new epoch starts its sequences at 0.
    let got = store
        .commit_segment(&segment("t3", vec![batch("tx", 0, 1, pid, 1, 0)]))
        .await
        .expect("commit");
    assert_eq!(bases(got), [2]);

    // The mapping is durable.
    let reopened = make.open().await;
    let third = reopened
        .init_transactional_producer("app-1", timeout)
        .await
        .expect("init");
    assert_eq!((third.producer_id, third.epoch), (pid, 2));
    let err = reopened
        .init_transactional_producer("", timeout)
        .await
        .expect_err("an empty id is refused");
    assert_eq!(err.kind(), ErrorKind::Invalid, "{err}");
}

async fn concurrent_first_inits_of_a_transactional_id_share_one_producer(make: Maker) {
    let store = make.open().await;
    let inits: Vec<_> = (0..8)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .init_transactional_producer("shared", Duration::from_secs(60))
                    .await
                    .expect("init")
            })
        })
        .collect();
    let mut identities = Vec::new();
    for init in inits {
        identities.push(init.await.expect("joins"));
    }
    let ids: HashSet<i64> = identities.iter().map(|p| p.producer_id).collect();
    assert_eq!(ids.len(), 1, "{identities:?}");
    let mut epochs: Vec<i16> = identities.iter().map(|p| p.epoch).collect();
    epochs.sort_unstable();
    assert_eq!(epochs, (0..8).collect::<Vec<i16>>());
}

async fn partition_sizes_add_up_the_stored_bytes(make: Maker) {
    let store = make.open().await;
    store
        .create_topic("sized", 3, TopicConfig::default())
        .await
        .expect("created");
    assert_eq!(
        store.partition_sizes("sized").await.expect("sizes"),
        [(0, 0), (1, 0), (2, 0)]
    );
    // Each test chunk covers 100 bytes of its segment.
    let got = store
        .commit_segment(&segment(
            "sz1",
            vec![
                chunk("sized", 0, 5, 0),
                chunk("sized", 1, 5, 0),
                chunk("sized", 0, 5, 0),
            ],
        ))
        .await
        .expect("commit");
    assert_eq!(bases(got), [0, 0, 5]);
    assert_eq!(
        store.partition_sizes("sized").await.expect("sizes"),
        [(0, 200), (1, 100), (2, 0)]
    );
    // Entries below the log start no longer count.
    store
        .advance_log_start("sized", 0, 5)
        .await
        .expect("retention");
    assert_eq!(
        store.partition_sizes("sized").await.expect("sizes"),
        [(0, 100), (1, 100), (2, 0)]
    );
    let err = store
        .partition_sizes("no-such-topic")
        .await
        .expect_err("unknown topic");
    assert!(matches!(err, MetadataError::UnknownTopic { .. }), "{err}");
}

async fn a_partition_remembers_its_producers_last_batches(make: Maker) {
    let store = make.open().await;
    store
        .create_topic("producers", 2, TopicConfig::default())
        .await
        .expect("created");
    let a = store.init_producer_id().await.expect("id");
    let b = store.init_producer_id().await.expect("id");
    let got = store
        .commit_segment(&segment(
            "pp1",
            vec![
                batch("producers", 0, 5, a.producer_id, 0, 0),
                chunk("producers", 0, 2, 0),
                batch("producers", 0, 3, b.producer_id, 0, 0),
                batch("producers", 0, 4, a.producer_id, 0, 5),
            ],
        ))
        .await
        .expect("commit");
    assert_eq!(bases(got), [0, 5, 7, 10]);
    let states = store
        .partition_producers("producers", 0)
        .await
        .expect("producers");
    let mut expected = vec![
        ProducerState {
            producer_id: a.producer_id,
            epoch: 0,
            last_sequence: 8,
            last_base_offset: 10,
            txn_start_offset: None,
        },
        ProducerState {
            producer_id: b.producer_id,
            epoch: 0,
            last_sequence: 2,
            last_base_offset: 7,
            txn_start_offset: None,
        },
    ];
    expected.sort_by_key(|p| p.producer_id);
    assert_eq!(states, expected);
    assert!(
        store
            .partition_producers("producers", 1)
            .await
            .expect("producers")
            .is_empty()
    );
    let err = store
        .partition_producers("producers", 2)
        .await
        .expect_err("no partition 2");
    assert!(
        matches!(err, MetadataError::UnknownPartition { .. }),
        "{err}"
    );
}
