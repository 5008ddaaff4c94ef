//! Segment-commit latency of a metadata store, in-process or through the network client.
//!
//!     cargo run --release -p silt-metadata-service --example commit_latency -- STORE [PARTITIONS] [CHUNKS] [COMMITS] [WRITERS]
//!
//! STORE is `sqlite:PATH` or a `postgres://` URL, measured in-process; prefixed with
//! `remote+` (`remote+postgres://...`) a metadata service on that store is started in this
//! process on a local TCP port and every commit goes through `MetadataClient` (HTTP/2,
//! MessagePack), as it does from an ingest node. Each commit is one segment with CHUNKS
//! chunks spread over a topic of PARTITIONS partitions (what one ingest flush commits);
//! WRITERS commit concurrently (as several ingest nodes would).

use std::sync::Arc;
use std::time::{Duration, Instant};

use silt_groups::GroupConfig;
use silt_metadata::{
    ChunkCommit, MetadataStore, PostgresStore, SegmentCommit, SqliteStore, TopicConfig,
};
use silt_metadata_service::{ClientConfig, MetadataClient, MetadataService, serve};
use tokio_util::sync::CancellationToken;

async fn open(url: &str) -> Result<Arc<dyn MetadataStore>, Box<dyn std::error::Error>> {
    Ok(match url.strip_prefix("sqlite:") {
        Some(path) => Arc::new(SqliteStore::open(std::path::Path::new(path)).await?),
        None => Arc::new(PostgresStore::connect(url).await?),
    })
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let store_url = args
        .get(1)
        .ok_or("usage: commit_latency STORE [PARTITIONS] [CHUNKS] [COMMITS] [WRITERS]")?;
    let partitions: i32 = args.get(2).map_or(Ok(16), |s| s.parse())?;
    let chunks: i32 = args.get(3).map_or(Ok(16), |s| s.parse())?;
    let commits: usize = args.get(4).map_or(Ok(2000), |s| s.parse())?;
    let writers: usize = args.get(5).map_or(Ok(1), |s| s.parse())?;
    let store: Arc<dyn MetadataStore> = match store_url.strip_prefix("remote+") {
        Some(inner) => {
            let service = MetadataService::new(open(inner).await?, GroupConfig::default());
            service.activate(0);
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            let url = format!("http://{}", listener.local_addr()?);
            tokio::spawn(serve(listener, service, None, CancellationToken::new()));
            let client = MetadataClient::connect(ClientConfig::new(vec![url]))?;
            client.wait_connected(Duration::from_secs(10)).await?;
            Arc::new(client)
        }
        None => open(store_url).await?,
    };
    let topic = format!("latency-{}", uuid_suffix());
    let started = Instant::now();
    store
        .create_topic(&topic, partitions, TopicConfig::default())
        .await?;
    let created = started.elapsed();
    let run = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..writers {
        let store = store.clone();
        let topic = topic.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            for i in (w..commits).step_by(writers) {
                let segment = SegmentCommit {
                    key: format!("{topic}/{i}"),
                    size: 1 << 20,
                    footer_len: 4096,
                    footer_crc: None,
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
                            kind: silt_metadata::BatchKind::Plain,
                        })
                        .collect(),
                };
                let t = Instant::now();
                store.commit_segment(&segment).await?;
                latencies.push(t.elapsed());
            }
            Ok::<_, silt_metadata::MetadataError>(latencies)
        }));
    }
    let mut latencies = Vec::with_capacity(commits);
    for t in tasks {
        latencies.extend(t.await??);
    }
    let elapsed = run.elapsed();
    latencies.sort();
    let pct = |p: f64| {
        latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)].as_secs_f64()
            * 1000.0
    };
    println!(
        "store {} | partitions {partitions} (created in {:.0} ms) | {chunks} chunks per commit | {commits} commits | {writers} writers",
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
    uuid::Uuid::now_v7().as_u128()
}
