//! A short run of each benchmark mode against a real `silt dev`, to keep the harness
//! working. It checks what the harness reports, never how fast anything was.

use serde_json::Value;
use silt_e2e::{Backend, Node, bench_bin};

fn bench(args: &[&str]) -> Value {
    let out = std::process::Command::new(bench_bin())
        .args(args)
        .output()
        .expect("silt-bench runs (built by `cargo build --workspace`)");
    assert!(
        out.status.success(),
        "silt-bench {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON output")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_and_baseline_runs_report_their_figures() {
    let node = Node::start(Backend::Local, &[]).await.expect("silt starts");
    let bootstrap = format!("127.0.0.1:{}", node.kafka_port);
    let metrics = format!("{}/metrics", node.base());
    let pid = node.pid().expect("running").to_string();

    // Max rate, with a tailing consumer, object-store counts and broker memory.
    let max = bench(&[
        "produce",
        "--bootstrap",
        &bootstrap,
        "--duration",
        "2s",
        "--partitions",
        "4",
        "--metrics-url",
        &metrics,
        "--broker-pid",
        &pid,
        "--json",
    ]);
    let acked = max["records_acked"].as_u64().expect("acked");
    assert!(acked > 0);
    assert_eq!(max["records_failed"], 0);
    assert_eq!(
        max["records_consumed"].as_u64(),
        Some(acked),
        "the consumer saw every record"
    );
    assert_eq!(max["end_to_end"]["count"].as_u64(), Some(acked));
    assert!(max["produce_ack"]["p99_ms"].as_f64().expect("p99") > 0.0);
    assert!(
        max["object_store"]["requests"]["put"]
            .as_f64()
            .expect("puts")
            >= 1.0
    );
    assert!(
        max["broker_peak_rss_since_start_bytes"]
            .as_u64()
            .expect("rss")
            > 0
    );

    // Catch-up: the whole topic again from its first offset.
    let topic = max["topic"].as_str().expect("topic").to_string();
    let read = bench(&[
        "consume",
        "--bootstrap",
        &bootstrap,
        "--topic",
        &topic,
        "--metrics-url",
        &metrics,
        "--json",
    ]);
    assert_eq!(read["records"].as_u64(), Some(acked));
    assert!(read["gets_per_mib"].as_f64().is_some());

    // A fixed rate, keyed records, idempotence and compression.
    let fixed = bench(&[
        "produce",
        "--bootstrap",
        &bootstrap,
        "--duration",
        "2s",
        "--rate-mib",
        "1",
        "--record-size",
        "512",
        "--keys",
        "10",
        "--idempotence",
        "--compression",
        "zstd",
        "--json",
    ]);
    assert!(fixed["records_acked"].as_u64().expect("acked") > 0);
    assert_eq!(fixed["records_failed"], 0);

    // The storage ceiling: PUTs to a local folder.
    let dir = tempfile::tempdir().expect("tempdir");
    let base = bench(&[
        "baseline",
        "--dir",
        dir.path().to_str().expect("utf-8"),
        "--duration",
        "1s",
        "--object-bytes",
        "1048576",
        "--json",
    ]);
    assert!(base["objects"].as_u64().expect("objects") > 0);
    assert!(base["mib_per_s"].as_f64().expect("rate") > 0.0);
}

/// Scenario 7 in small: producers far faster than a node with a 2 MiB ingest budget and
/// a 1 MiB request pool can write. They are slowed down (appends wait for budget),
/// nothing fails, and every acknowledged record is there afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overload_is_throttled_and_loses_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("silt.toml");
    std::fs::write(
        &config,
        "[ingest]\nmax_buffered_bytes = 2097152\nmax_segment_bytes = 1048576\n[kafka]\nmax_queued_request_bytes = 1048576\n",
    )
    .expect("config");
    let node = Node::start(
        Backend::Local,
        &["--config", config.to_str().expect("utf-8")],
    )
    .await
    .expect("silt starts");
    let bootstrap = format!("127.0.0.1:{}", node.kafka_port);
    let metrics = format!("{}/metrics", node.base());
    let run = bench(&[
        "produce",
        "--bootstrap",
        &bootstrap,
        "--duration",
        "3s",
        "--rate-mib",
        "2000",
        "--partitions",
        "4",
        "--consumers",
        "0",
        "--topic",
        "overload",
        "--metrics-url",
        &metrics,
        "--json",
    ]);
    let acked = run["records_acked"].as_u64().expect("acked");
    assert!(acked > 0);
    assert_eq!(run["records_failed"], 0);
    let read = bench(&[
        "consume",
        "--bootstrap",
        &bootstrap,
        "--topic",
        "overload",
        "--json",
    ]);
    assert_eq!(read["records"].as_u64(), Some(acked), "every ack is stored");
    let text = reqwest::get(&metrics)
        .await
        .expect("metrics")
        .text()
        .await
        .expect("body");
    let waits: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("silt_ingest_backpressure_waits_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0);
    assert!(waits > 0.0, "producers were never held back:\n{text}");
}
