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
    /// Send the same value in every record (compresses to almost nothing) instead of
    /// fresh random alphanumeric values.
    #[arg(long)]
    repeated_values: bool,
    /// Seconds to run.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
}

const ALPHANUMERIC: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

fn request_body(
    rng: &mut fastrand::Rng,
    batch: usize,
    size: usize,
    repeated: bool,
) -> Result<Vec<u8>> {
    let records: Vec<Value> = (0..batch)
        .map(|i| {
            let value: String = if repeated {
                "x".repeat(size)
            } else {
                (0..size)
                    .map(|_| ALPHANUMERIC[rng.usize(..ALPHANUMERIC.len())] as char)
                    .collect()
            };
            json!({"key": format!("key-{}", rng.u32(..10_000) as usize + i), "value": value})
        })
        .collect();
    Ok(serde_json::to_vec(&json!({ "records": records }))?)
}

/// A metric from the node's `/metrics`, 0 if it cannot be read.
async fn metric(http: &reqwest::Client, base: &str, name: &str, labels: &str) -> f64 {
    silt_e2e::scrape(http, base, name, labels)
        .await
        .unwrap_or(0.0)
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
    let url = format!("{}/v1/topics/{}/records", args.url, args.topic);
    let puts_before = metric(&http, &args.url, "silt_object_requests_total", "op=\"put\"").await;
    let stored_before = metric(&http, &args.url, "silt_ingest_segment_bytes_total", "").await;
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..args.clients {
        let (http, url) = (http.clone(), url.clone());
        let (batch, size, repeated) = (args.batch, args.record_size, args.repeated_values);
        tasks.push(tokio::spawn(async move {
            let mut rng = fastrand::Rng::new();
            let mut latencies = Vec::new();
            while Instant::now() < deadline {
                let body = request_body(&mut rng, batch, size, repeated)?;
                let t = Instant::now();
                let r = http
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(body)
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
    let puts =
        metric(&http, &args.url, "silt_object_requests_total", "op=\"put\"").await - puts_before;
    let stored =
        metric(&http, &args.url, "silt_ingest_segment_bytes_total", "").await - stored_before;
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
    println!("object PUTs/s  {:>12.1}", puts / elapsed);
    println!(
        "stored MiB/s   {:>12.1}",
        stored / elapsed / (1 << 20) as f64
    );
    println!(
        "request ms     p50 {:.1} | p95 {:.1} | p99 {:.1} | max {:.1}",
        pct(0.50),
        pct(0.95),
        pct(0.99),
        pct(1.0)
    );
    Ok(())
}
