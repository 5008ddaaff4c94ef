//! Two metadata processes on one PostgreSQL (here: two services in one test process, each
//! with its own store and lease loop): exactly one is active, the other takes over when it
//! stops, and a client's commits carry on across the switch with dense offsets.

mod common;

use std::sync::Arc;
use std::time::Duration;

use silt_groups::GroupConfig;
use silt_metadata::{
    CatalogStore, ChunkCommit, ChunkOutcome, LogStore, PostgresStore, SegmentCommit,
};
use silt_metadata_service::lease::{self, LeaseTiming};
use silt_metadata_service::{ClientConfig, MetadataClient, MetadataService, serve};
use tokio_util::sync::CancellationToken;

struct Process {
    url: String,
    service: Arc<MetadataService>,
    stop: CancellationToken,
}

async fn start(db: &str, name: &str) -> Process {
    let store = Arc::new(PostgresStore::connect(db).await.expect("connects"));
    let service = MetadataService::new(store.clone(), GroupConfig::default());
    let stop = CancellationToken::new();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binds");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(serve(listener, service.clone(), None, stop.clone()));
    tokio::spawn(lease::run(
        service.clone(),
        store,
        db.to_string(),
        name.to_string(),
        LeaseTiming::default(),
        stop.clone(),
    ));
    Process { url, service, stop }
}

async fn wait_active(p: &Process) -> i64 {
    for _ in 0..100 {
        if let Some(epoch) = p.service.active_epoch() {
            return epoch;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{} never became active", p.url);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_standby_takes_over_and_commits_carry_on() {
    let db = common::fresh_postgres_database("silt_failover").await;
    let a = start(&db, "a").await;
    let first_epoch = wait_active(&a).await;
    let b = start(&db, "b").await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        b.service.active_epoch(),
        None,
        "b stands by while a is active"
    );

    let client = MetadataClient::connect(ClientConfig::new(vec![b.url.clone(), a.url.clone()]))
        .expect("client");
    client
        .create_topic("t", 2, Default::default())
        .await
        .expect("created through the standby's peer");

    let writer = {
        let client = client.clone();
        tokio::spawn(async move {
            let mut committed = 0u64;
            for i in 0..150u32 {
                let commit = SegmentCommit {
                    key: format!("segments/{i}.parquet"),
                    size: 100,
                    footer_len: 10,
                    footer_crc: None,
                    chunks: vec![ChunkCommit {
                        topic: "t".into(),
                        partition: (i % 2) as i32,
                        record_count: 3,
                        row_group: 0,
                        byte_start: 4,
                        byte_len: 50,
                        min_timestamp_ms: 0,
                        max_timestamp_ms: 0,
                        producer: None,
                        kind: silt_metadata::BatchKind::Plain,
                    }],
                };
                let outcomes = client.commit_segment(&commit).await.expect("commit");
                assert!(matches!(outcomes[0], ChunkOutcome::Committed { .. }));
                committed += 3;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            committed
        })
    };
    tokio::time::sleep(Duration::from_millis(800)).await;
    a.stop.cancel();
    let second_epoch = wait_active(&b).await;
    assert!(second_epoch > first_epoch);
    assert_eq!(a.service.active_epoch(), None);

    let committed = writer.await.expect("writer");
    let offsets = client.partition_offsets("t").await.expect("offsets");
    let total: i64 = offsets.iter().map(|o| o.high_watermark).sum();
    assert_eq!(total as u64, committed, "every commit landed exactly once");
    for o in offsets {
        let chunks = client
            .chunks_from("t", o.partition, 0, 1000)
            .await
            .expect("chunks");
        let mut next = 0;
        for c in chunks {
            assert_eq!(
                c.base_offset, next,
                "dense offsets in partition {}",
                o.partition
            );
            next = c.end_offset();
        }
        assert_eq!(next, o.high_watermark);
    }
    b.stop.cancel();
}
