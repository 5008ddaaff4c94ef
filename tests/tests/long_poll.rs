//! Long polling, timed against a real `silt dev` process. In a test binary of its own so
//! that the other end-to-end tests do not compete with it for the CPU.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use silt_e2e::{Backend, Node};

async fn long_poll(backend: Backend) {
    let node = Node::start(backend, &[]).await.expect("silt starts");
    node.create_topic("lp", 1).await.expect("topic");
    // No data: returns after wait_ms, and not much later.
    let started = Instant::now();
    let (s, body) = node
        .get("/v1/topics/lp/partitions/0/records?offset=0&wait_ms=500")
        .await
        .expect("poll");
    let waited = started.elapsed();
    assert_eq!(s, 200);
    assert_eq!(body["records"].as_array().map(Vec::len), Some(0));
    assert!(
        waited >= Duration::from_millis(500),
        "returned early: {waited:?}"
    );
    assert!(
        waited < Duration::from_millis(600),
        "returned late: {waited:?}"
    );
    // Data arrives during the wait: returns promptly.
    let http = node.http.clone();
    let url = format!(
        "{}/v1/topics/lp/partitions/0/records?offset=0&wait_ms=20000",
        node.base()
    );
    let started = Instant::now();
    let poll = tokio::spawn(async move {
        http.get(url)
            .send()
            .await
            .expect("poll")
            .json::<Value>()
            .await
            .expect("json")
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (s, _) = node
        .post(
            "/v1/topics/lp/records",
            json!({"records": [{"value": "wake"}]}),
        )
        .await
        .expect("produce");
    assert_eq!(s, 200);
    let body = poll.await.expect("poll");
    assert_eq!(body["records"][0]["value"], "wake");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "long poll was not woken: {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn long_poll_waits_out_wait_ms_or_wakes_on_data_local() {
    long_poll(Backend::Local).await;
}

#[tokio::test]
async fn long_poll_waits_out_wait_ms_or_wakes_on_data_s3() {
    long_poll(Backend::S3).await;
}
