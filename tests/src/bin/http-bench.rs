//! Produce load over the HTTP API: concurrent clients POST batches of records for a
//! fixed time; prints records/s, MiB/s and request latency percentiles.
//!
//! cargo run --release -p silt-e2e --bin http-bench -- --url http://127.0.0.1:8080

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use serde_json::{Value, json};

#[derive(Debug, Parser)]
struct Args {
    /// Base URL of a running silt node.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    #[arg(long, default_value = "http-bench")]
    topic: String,
    #[arg(long, default_value_t = 16)]
    partitions: i32,
    /// Concurrent HTTP clients, each with one request in flight.
    #[arg(long, default_value_t = 32)]
    clients: usize,
    /// Records per request.
    #[arg(long, default_value_t = 100)]
    batch: usize,
    /// Value size in bytes.
    #[arg(long, default_value_t = 1024)]
    record_size: usize,
    /// Seconds to run.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let http = reqwest::Client::new();
    let created = http
        .post(format!("{}/v1/topics", args.url))
        .json(&json!({"name": args.topic, "partitions": args.partitions}))
        .send()
        .await
        .context("is silt running?")?;
    if !matches!(created.status().as_u16(), 201 | 409) {
        bail!(
            "creating topic: {} {}",
            created.status(),
            created.text().await?
        );
    }
    let value = "x".repeat(args.record_size);
    let records: Vec<Value> = (0..args.batch)
        .map(|i| json!({"key": format!("key-{i}"), "value": value}))
        .collect();
    let body = serde_json::to_vec(&json!({ "records": records }))?;
    let url = format!("{}/v1/topics/{}/records", args.url, args.topic);
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..args.clients {
        let (http, url, body) = (http.clone(), url.clone(), body.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            while Instant::now() < deadline {
                let t = Instant::now();
                let r = http
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(body.clone())
                    .send()
                    .await?;
                if !r.status().is_success() {
                    bail!("produce failed: {} {}", r.status(), r.text().await?);
                }
                r.bytes().await?;
                latencies.push(t.elapsed());
            }
            Ok::<_, anyhow::Error>(latencies)
        }));
    }
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await??);
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort();
    let requests = latencies.len();
    let records = requests * args.batch;
    let pct = |p: f64| {
        let i = ((requests as f64 * p).ceil() as usize).clamp(1, requests.max(1)) - 1;
        latencies.get(i).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    println!(
        "clients {} | batch {} | record {} B | partitions {} | {elapsed:.1}s",
        args.clients, args.batch, args.record_size, args.partitions
    );
    println!("records/s      {:>12.0}", records as f64 / elapsed);
    println!(
        "MiB/s (values) {:>12.1}",
        (records * args.record_size) as f64 / elapsed / (1 << 20) as f64
    );
    println!("requests       {requests:>12}");
    println!(
        "request ms     p50 {:.1} | p95 {:.1} | p99 {:.1} | max {:.1}",
        pct(0.50),
        pct(0.95),
        pct(0.99),
        pct(1.0)
    );
    Ok(())
}
