//! Segment-commit latency of a metadata store, measured in-process.
//!
//!     cargo run --release -p silt-metadata --example commit_latency -- STORE [PARTITIONS] [CHUNKS] [COMMITS]
//!
//! STORE is `sqlite:PATH` or a `postgres://` URL. Each commit is one segment with CHUNKS
//! chunks spread over a topic of PARTITIONS partitions (what one ingest flush commits).

use std::time::Instant;

use silt_metadata::{
    ChunkCommit, MetadataStore, PostgresStore, SegmentCommit, SqliteStore, TopicConfig,
};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let store_url = args
        .get(1)
        .ok_or("usage: commit_latency STORE [PARTITIONS] [CHUNKS] [COMMITS]")?;
    let partitions: i32 = args.get(2).map_or(Ok(16), |s| s.parse())?;
    let chunks: i32 = args.get(3).map_or(Ok(16), |s| s.parse())?;
    let commits: usize = args.get(4).map_or(Ok(2000), |s| s.parse())?;
    let store: Box<dyn MetadataStore> = match store_url.strip_prefix("sqlite:") {
        Some(path) => Box::new(SqliteStore::open(std::path::Path::new(path)).await?),
        None => Box::new(PostgresStore::connect(store_url).await?),
    };
    let topic = format!("latency-{}", uuid_suffix());
    let started = Instant::now();
    store
        .create_topic(&topic, partitions, TopicConfig::default())
        .await?;
    let created = started.elapsed();
    let mut latencies = Vec::with_capacity(commits);
    let run = Instant::now();
    for i in 0..commits {
        let segment = SegmentCommit {
            key: format!("{topic}/{i}"),
            size: 1 << 20,
            footer_len: 4096,
            chunks: (0..chunks)
                .map(|c| ChunkCommit {
                    topic: topic.clone(),
                    partition: (i as i32 * chunks + c) % partitions,
                    record_count: 100,
                    row_group: c as u32,
                    byte_start: 4 + c as u64 * 1000,
                    byte_len: 1000,
                    min_timestamp_ms: 0,
                    max_timestamp_ms: 0,
                    producer: None,
                })
                .collect(),
        };
        let t = Instant::now();
        store.commit_segment(&segment).await?;
        latencies.push(t.elapsed());
    }
    let elapsed = run.elapsed();
    latencies.sort();
    let pct = |p: f64| {
        latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)].as_secs_f64()
            * 1000.0
    };
    println!(
        "store {} | partitions {partitions} (created in {:.0} ms) | {chunks} chunks per commit | {commits} commits",
        store_url.split('@').next_back().unwrap_or(store_url),
        created.as_secs_f64() * 1000.0
    );
    println!(
        "commits/s {:.0} | latency ms p50 {:.2} p99 {:.2} max {:.2}",
        commits as f64 / elapsed.as_secs_f64(),
        pct(0.5),
        pct(0.99),
        pct(1.0)
    );
    Ok(())
}

fn uuid_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}
