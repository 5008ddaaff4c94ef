//! The catch-up scenario: read a topic written earlier from its first offset to its end,
//! as a consumer that fell behind (or replays history) does. Reports MiB/s and — for
//! Silt — object-store GETs and bytes per MiB read.

use std::time::{Duration, Instant};

use anyhow::bail;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use serde::Serialize;

use crate::report::{ObjectCounters, scrape};

#[derive(Debug, clap::Args)]
pub struct Options {
    #[arg(long, default_value = "127.0.0.1:9092")]
    bootstrap: String,
    /// The topic to read, every partition from its earliest offset.
    #[arg(long)]
    topic: String,
    /// Silt's /metrics URL: report object-store GETs of the run.
    #[arg(long)]
    metrics_url: Option<String>,
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Serialize)]
struct Outcome {
    topic: String,
    records: u64,
    bytes: u64,
    seconds: f64,
    mib_per_s: f64,
    object_store: Option<ObjectCounters>,
    gets_per_mib: Option<f64>,
}

pub async fn run(options: Options) -> anyhow::Result<()> {
    let bootstrap = options.bootstrap.clone();
    let topic = options.topic.clone();
    let before = match &options.metrics_url {
        Some(url) => Some(scrape(url).await?),
        None => None,
    };
    // librdkafka's poll loop is blocking: run it off the async runtime.
    let (records, bytes, seconds) =
        tokio::task::spawn_blocking(move || read_all(&bootstrap, &topic)).await??;
    let object_store = match (&options.metrics_url, before) {
        (Some(url), Some(before)) => Some(scrape(url).await?.since(&before)),
        _ => None,
    };
    let mib = bytes as f64 / 1048576.0;
    let outcome = Outcome {
        topic: options.topic.clone(),
        records,
        bytes,
        seconds,
        mib_per_s: mib / seconds,
        gets_per_mib: object_store
            .as_ref()
            .map(|o| o.requests.get("get").copied().unwrap_or(0.0) / mib.max(f64::MIN_POSITIVE)),
        object_store,
    };
    if options.json {
        println!("{}", serde_json::to_string_pretty(&outcome)?);
    } else {
        println!("topic        {}", outcome.topic);
        println!(
            "read         {} records, {:.1} MiB in {:.1} s: {:.1} MiB/s",
            outcome.records, mib, outcome.seconds, outcome.mib_per_s
        );
        if let Some(store) = &outcome.object_store {
            println!(
                "object store {:.0} GETs ({:.1} MiB) — {:.2} GETs per MiB read",
                store.requests.get("get").copied().unwrap_or(0.0),
                store.bytes.get("get").copied().unwrap_or(0.0) / 1048576.0,
                outcome.gets_per_mib.unwrap_or(0.0)
            );
        }
    }
    Ok(())
}

fn read_all(bootstrap: &str, topic: &str) -> anyhow::Result<(u64, u64, f64)> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set(
            "group.id",
            format!("silt-bench-{}", uuid::Uuid::now_v7().simple()),
        )
        .set("enable.auto.commit", "false")
        .set("fetch.max.bytes", "52428800")
        .set("max.partition.fetch.bytes", "16777216")
        .create()?;
    let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
    let Some(t) = metadata.topics().first().filter(|t| t.error().is_none()) else {
        bail!("topic {topic} not found");
    };
    let mut assignment = TopicPartitionList::new();
    let mut left = std::collections::HashMap::new();
    for p in t.partitions() {
        let (low, high) = consumer.fetch_watermarks(topic, p.id(), Duration::from_secs(10))?;
        if high > low {
            assignment.add_partition_offset(topic, p.id(), Offset::Offset(low))?;
            left.insert(p.id(), high);
        }
    }
    consumer.assign(&assignment)?;
    let started = Instant::now();
    let (mut records, mut bytes) = (0u64, 0u64);
    let mut quiet_since = Instant::now();
    while !left.is_empty() {
        match consumer.poll(Duration::from_millis(500)) {
            Some(Ok(message)) => {
                records += 1;
                bytes += message.payload().map_or(0, <[u8]>::len) as u64;
                if left
                    .get(&message.partition())
                    .is_some_and(|high| message.offset() + 1 >= *high)
                {
                    left.remove(&message.partition());
                }
                quiet_since = Instant::now();
            }
            Some(Err(e)) => bail!("fetch failed: {e}"),
            None if quiet_since.elapsed() > Duration::from_secs(30) => {
                bail!("no record for 30 s with {} partitions unread", left.len())
            }
            None => {}
        }
    }
    Ok((records, bytes, started.elapsed().as_secs_f64()))
}
