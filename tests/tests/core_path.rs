//! The core data path end to end: a real `silt dev` process, HTTP clients, and objects in
//! a local folder or a real S3-compatible server over HTTP.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{Value, json};
use silt_e2e::{Backend, Node};
use tokio::sync::Mutex;

const PARTITIONS: i32 = 8;

/// Acknowledged records: (partition, offset) -> value.
type Acks = Arc<Mutex<BTreeMap<(i32, i64), String>>>;

/// `clients` concurrent producers, each sending `requests` requests of `per_request`
/// records; keyed and unkeyed records mixed. Returns every acknowledgement.
async fn produce(
    node: &Node,
    topic: &str,
    clients: usize,
    requests: usize,
    per_request: usize,
    acks: Acks,
) {
    let mut tasks = Vec::new();
    for c in 0..clients {
        let http = node.http.clone();
        let url = format!("{}/v1/topics/{topic}/records", node.base());
        let acks = acks.clone();
        tasks.push(tokio::spawn(async move {
            for r in 0..requests {
                let values: Vec<String> = (0..per_request)
                    .map(|i| format!("c{c}-r{r}-i{i}"))
                    .collect();
                let records: Vec<Value> = values
                    .iter()
                    .enumerate()
                    .map(|(i, v)| {
                        if i % 2 == 0 {
                            json!({"key": format!("key-{}", i % 13), "value": v})
                        } else {
                            json!({"value": v})
                        }
                    })
                    .collect();
                let response = http
                    .post(&url)
                    .json(&json!({ "records": records }))
                    .send()
                    .await
                    .expect("request");
                assert_eq!(response.status().as_u16(), 200);
                let body: Value = response.json().await.expect("json");
                let positions = body["records"].as_array().expect("positions");
                assert_eq!(positions.len(), per_request);
                let mut acks = acks.lock().await;
                for (v, p) in values.into_iter().zip(positions) {
                    let key = (
                        p["partition"].as_i64().expect("partition") as i32,
                        p["offset"].as_i64().expect("offset"),
                    );
                    assert!(
                        acks.insert(key, v).is_none(),
                        "offset {key:?} acknowledged twice"
                    );
                }
            }
        }));
    }
    for t in tasks {
        t.await.expect("producer");
    }
}

/// Every partition read back holds exactly the acknowledged records at their offsets,
/// offsets dense from 0, and each producer's records in the order it sent them.
async fn verify(node: &Node, topic: &str, acks: &BTreeMap<(i32, i64), String>) {
    let mut total = 0;
    for p in 0..PARTITIONS {
        let records = node.read_partition(topic, p).await.expect("read");
        let mut last_seen: HashMap<String, (usize, usize)> = HashMap::new();
        for (i, r) in records.iter().enumerate() {
            let offset = r["offset"].as_i64().expect("offset");
            assert_eq!(offset, i as i64, "partition {p}: offsets are not dense");
            let value = r["value"].as_str().expect("value");
            assert_eq!(
                acks.get(&(p, offset)).map(String::as_str),
                Some(value),
                "partition {p} offset {offset}"
            );
            // Per client: (request, index) increases with the offset.
            let (client, rest) = value.split_once("-r").expect("client");
            let (req, idx) = rest.split_once("-i").expect("index");
            let order = (
                req.parse::<usize>().expect("r"),
                idx.parse::<usize>().expect("i"),
            );
            if let Some(prev) = last_seen.insert(client.to_string(), order) {
                assert!(prev < order, "partition {p}: {client} out of order");
            }
        }
        total += records.len();
    }
    assert_eq!(
        total,
        acks.len(),
        "records read back != records acknowledged"
    );
}

async fn twenty_thousand_records(backend: Backend) {
    let node = Node::start(backend, &[]).await.expect("silt starts");
    node.create_topic("events", PARTITIONS)
        .await
        .expect("topic");
    let acks: Acks = Arc::default();
    produce(&node, "events", 8, 25, 100, acks.clone()).await;
    let acks = acks.lock().await.clone();
    assert_eq!(acks.len(), 20_000);
    verify(&node, "events", &acks).await;
    let (_, detail) = node.get("/v1/topics/events").await.expect("describe");
    let sum: i64 = detail["partitions"]
        .as_array()
        .expect("partitions")
        .iter()
        .map(|p| p["latest_offset"].as_i64().unwrap_or(0))
        .sum();
    assert_eq!(sum, 20_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_thousand_concurrent_records_read_back_exactly_local() {
    twenty_thousand_records(Backend::Local).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_thousand_concurrent_records_read_back_exactly_s3() {
    twenty_thousand_records(Backend::S3).await;
}

async fn kill_9(backend: Backend) {
    let mut node = Node::start(backend, &[]).await.expect("silt starts");
    node.create_topic("durable", PARTITIONS)
        .await
        .expect("topic");
    let acks: Acks = Arc::default();
    // Producers run while the process is killed; only acknowledged records count.
    let producers = {
        let http = node.http.clone();
        let url = format!("{}/v1/topics/durable/records", node.base());
        let acks = acks.clone();
        tokio::spawn(async move {
            let mut tasks = Vec::new();
            for c in 0..4 {
                let (http, url, acks) = (http.clone(), url.clone(), acks.clone());
                tasks.push(tokio::spawn(async move {
                    for r in 0.. {
                        let values: Vec<String> =
                            (0..20).map(|i| format!("c{c}-r{r}-i{i}")).collect();
                        let records: Vec<Value> =
                            values.iter().map(|v| json!({"value": v})).collect();
                        let Ok(response) = http
                            .post(&url)
                            .json(&json!({ "records": records }))
                            .send()
                            .await
                        else {
                            return;
                        };
                        if response.status().as_u16() != 200 {
                            return;
                        }
                        let Ok(body) = response.json::<Value>().await else {
                            return;
                        };
                        let mut acks = acks.lock().await;
                        for (v, p) in values
                            .into_iter()
                            .zip(body["records"].as_array().into_iter().flatten())
                        {
                            let key = (
                                p["partition"].as_i64().unwrap_or(-1) as i32,
                                p["offset"].as_i64().unwrap_or(-1),
                            );
                            acks.insert(key, v);
                        }
                    }
                }));
            }
            for t in tasks {
                let _ = t.await;
            }
        })
    };
    // Let acknowledgements accumulate, then kill -9 with requests in flight.
    let started = Instant::now();
    while acks.lock().await.len() < 2_000 && started.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    node.kill().expect("kill -9");
    producers.await.expect("producers stop");
    let acked = acks.lock().await.clone();
    assert!(
        acked.len() >= 2_000,
        "too few acknowledgements before the kill: {}",
        acked.len()
    );
    node.spawn().await.expect("restart");
    // Every acknowledged record is there, at its offset. Records whose request was cut off
    // by the kill may be there too (their outcome was unknown to the client).
    let mut found = 0;
    for p in 0..PARTITIONS {
        let records = node.read_partition("durable", p).await.expect("read");
        for (i, r) in records.iter().enumerate() {
            assert_eq!(r["offset"].as_i64(), Some(i as i64));
        }
        for ((ap, offset), value) in acked.range((p, 0)..(p + 1, 0)) {
            assert_eq!(*ap, p);
            let record = records
                .get(*offset as usize)
                .unwrap_or_else(|| panic!("acked {p}@{offset} lost"));
            assert_eq!(
                record["value"].as_str(),
                Some(value.as_str()),
                "acked {p}@{offset} changed"
            );
            found += 1;
        }
    }
    assert_eq!(found, acked.len());
    // And the node serves new writes after the restart.
    let (s, _) = node
        .post(
            "/v1/topics/durable/records",
            json!({"records": [{"value": "after"}]}),
        )
        .await
        .expect("produce");
    assert_eq!(s, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acked_records_survive_kill_9_local() {
    kill_9(Backend::Local).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acked_records_survive_kill_9_s3() {
    kill_9(Backend::S3).await;
}

async fn tail_without_gets(backend: Backend) {
    let node = Node::start(backend, &[]).await.expect("silt starts");
    node.create_topic("tail", 2).await.expect("topic");
    let gets_before = node
        .metric("silt_object_requests_total", "op=\"get\"")
        .await
        .expect("metrics");
    for round in 0..10 {
        let records: Vec<Value> = (0..50)
            .map(|i| json!({"value": format!("{round}-{i}"), "partition": i % 2}))
            .collect();
        let (s, _) = node
            .post("/v1/topics/tail/records", json!({ "records": records }))
            .await
            .expect("produce");
        assert_eq!(s, 200);
        for p in 0..2 {
            let (s, body) = node
                .get(&format!(
                    "/v1/topics/tail/partitions/{p}/records?offset={}&limit=1000",
                    round * 25
                ))
                .await
                .expect("consume");
            assert_eq!(s, 200);
            assert_eq!(body["records"].as_array().map(Vec::len), Some(25));
        }
    }
    let puts = node
        .metric("silt_object_requests_total", "op=\"put\"")
        .await
        .expect("metrics");
    let gets = node
        .metric("silt_object_requests_total", "op=\"get\"")
        .await
        .expect("metrics");
    assert!(puts >= 10.0, "segments were written: {puts}");
    assert_eq!(gets - gets_before, 0.0, "tailing reads fetched objects");
    let hits = node
        .metric("silt_reader_cache_requests_total", "result=\"hit\"")
        .await
        .expect("metrics");
    assert!(hits > 0.0);
}

#[tokio::test]
async fn tail_reads_on_the_writing_node_perform_no_get_local() {
    tail_without_gets(Backend::Local).await;
}

#[tokio::test]
async fn tail_reads_on_the_writing_node_perform_no_get_s3() {
    tail_without_gets(Backend::S3).await;
}

#[tokio::test]
async fn a_restarted_node_reads_segments_back_from_s3() {
    let mut node = Node::start(Backend::S3, &[]).await.expect("silt starts");
    node.create_topic("cold", 1).await.expect("topic");
    let records: Vec<Value> = (0..300)
        .map(|i| json!({"key": format!("k{i}"), "value": format!("v{i}"), "partition": 0}))
        .collect();
    let (s, _) = node
        .post("/v1/topics/cold/records", json!({ "records": records }))
        .await
        .expect("produce");
    assert_eq!(s, 200);
    node.terminate().expect("stops");
    // A new process with an empty cache directory must read from the bucket.
    std::fs::remove_dir_all(node.dir.path().join("data/cache")).expect("cache removed");
    node.spawn().await.expect("restart");
    let got = node.read_partition("cold", 0).await.expect("read");
    assert_eq!(got.len(), 300);
    assert_eq!(got[299]["value"], "v299");
    let gets = node
        .metric("silt_object_requests_total", "op=\"get\"")
        .await
        .expect("metrics");
    assert!(gets >= 2.0, "a cold read fetches footer and chunk: {gets}");
}

#[tokio::test]
async fn sigterm_flushes_buffered_records_before_exit() {
    // A long linger keeps records buffered until shutdown forces the flush.
    let mut node = Node::start(Backend::Local, &["--linger", "8s"])
        .await
        .expect("silt starts");
    node.create_topic("flush", 1).await.expect("topic");
    let http = node.http.clone();
    let url = format!("{}/v1/topics/flush/records", node.base());
    let pending = tokio::spawn(async move {
        let r = http
            .post(url)
            .json(&json!({"records": [{"value": "late"}]}))
            .send()
            .await
            .expect("request");
        (r.status().as_u16(), r.json::<Value>().await.expect("json"))
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !pending.is_finished(),
        "the record should still be lingering"
    );
    let started = Instant::now();
    let status = node.terminate().expect("terminates");
    assert!(status.success(), "exit status {status}\n{}", node.log());
    assert!(
        started.elapsed() < Duration::from_secs(7),
        "shutdown waited for the linger"
    );
    let (s, body) = pending.await.expect("response");
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["records"][0]["offset"], 0);
    node.spawn().await.expect("restart");
    let got = node.read_partition("flush", 0).await.expect("read");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["value"], "late");
}

#[tokio::test]
async fn the_live_tail_streams_new_records_as_server_sent_events() {
    let node = Node::start(Backend::Local, &[]).await.expect("silt starts");
    node.create_topic("live", 1).await.expect("topic");
    node.post(
        "/v1/topics/live/records",
        json!({"records": [{"value": "old"}]}),
    )
    .await
    .expect("produce");
    let response = node
        .http
        .get(format!(
            "{}/v1/topics/live/partitions/0/stream",
            node.base()
        ))
        .send()
        .await
        .expect("stream");
    assert_eq!(response.status().as_u16(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap_or("")
            .starts_with("text/event-stream")
    );
    let mut body = response.bytes_stream();
    for i in 0..3 {
        node.post(
            "/v1/topics/live/records",
            json!({"records": [{"value": format!("new-{i}")}]}),
        )
        .await
        .expect("produce");
    }
    let mut text = String::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while text.matches("event: record").count() < 3 && Instant::now() < deadline {
        let chunk = tokio::time::timeout(Duration::from_secs(10), body.next())
            .await
            .expect("event in time");
        text.push_str(&String::from_utf8_lossy(
            &chunk.expect("open").expect("bytes"),
        ));
    }
    // The tail starts at the end: the old record is not replayed.
    assert!(!text.contains("\"old\""), "{text}");
    for i in 0..3 {
        assert!(text.contains(&format!("id: {}", i + 1)), "{text}");
        assert!(text.contains(&format!("\"value\":\"new-{i}\"")), "{text}");
    }
}

#[tokio::test]
async fn bad_input_is_refused_and_the_node_keeps_serving() {
    let node = Node::start(Backend::Local, &[]).await.expect("silt starts");
    node.create_topic("t", 1).await.expect("topic");
    let raw = node
        .http
        .post(format!("{}/v1/topics/t/records", node.base()))
        .header("content-type", "application/json")
        .body("{\"records\": [")
        .send()
        .await
        .expect("request");
    assert_eq!(raw.status().as_u16(), 400);
    let big = "x".repeat((1 << 20) + 1);
    let (s, body) = node
        .post("/v1/topics/t/records", json!({"records": [{"value": big}]}))
        .await
        .expect("request");
    assert_eq!((s, body["code"].as_str()), (413, Some("record_too_large")));
    let (s, _) = node
        .post(
            "/v1/topics",
            json!({"name": "a".repeat(250), "partitions": 1}),
        )
        .await
        .expect("request");
    assert_eq!(s, 400);
    let (_, detail) = node.get("/v1/topics/t").await.expect("describe");
    assert_eq!(
        detail["partitions"][0]["latest_offset"], 0,
        "a refused request wrote something"
    );
    let (s, _) = node
        .post(
            "/v1/topics/t/records",
            json!({"records": [{"value": "ok"}]}),
        )
        .await
        .expect("request");
    assert_eq!(s, 200);
}
