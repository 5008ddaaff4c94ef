//! The store takes its time from an injected clock: heartbeat expiry and the grace of
//! unreferenced segments are tested by moving the clock, not by sleeping.

use std::time::Duration;

use silt_metadata::{ManualClock, NodeInfo, NodeStore, Role, SqliteStore};

fn node(id: i32) -> NodeInfo {
    NodeInfo {
        node_id: id,
        kafka_host: "127.0.0.1".into(),
        kafka_port: 9092,
        http_url: "http://127.0.0.1:8080".into(),
        roles: vec![Role::Ingest, Role::Reader],
        rack: None,
    }
}

#[tokio::test]
async fn a_node_leaves_the_live_list_when_the_clock_passes_its_ttl() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::new(1_000_000);
    let store = SqliteStore::open(&dir.path().join("m.db"))
        .await
        .expect("open")
        .with_clock(clock.clone());
    store
        .heartbeat_node(&node(1), Duration::from_secs(5))
        .await
        .expect("heartbeat");
    store
        .heartbeat_node(&node(2), Duration::from_secs(60))
        .await
        .expect("heartbeat");
    let live = |nodes: Vec<NodeInfo>| nodes.iter().map(|n| n.node_id).collect::<Vec<_>>();
    assert_eq!(live(store.live_nodes().await.expect("nodes")), [1, 2]);
    clock.advance(Duration::from_millis(4_999));
    assert_eq!(live(store.live_nodes().await.expect("nodes")), [1, 2]);
    clock.advance(Duration::from_millis(1));
    assert_eq!(live(store.live_nodes().await.expect("nodes")), [2]);
    // A renewal keeps it for another ttl from the clock's now.
    store
        .heartbeat_node(&node(1), Duration::from_secs(5))
        .await
        .expect("heartbeat");
    assert_eq!(live(store.live_nodes().await.expect("nodes")), [1, 2]);
    clock.advance(Duration::from_secs(61));
    assert!(store.live_nodes().await.expect("nodes").is_empty());
}
