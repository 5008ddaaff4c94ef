//! The storage ceiling: raw PUT throughput of 8 MiB objects (the size of a full Silt
//! segment) to the same object store Silt uses, with Silt's object-store client. Silt's
//! produce throughput is reported against it.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;
use bytes::Bytes;
use futures::StreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use serde::Serialize;
use silt_storage::{S3Settings, StoreSettings, build_store};

use crate::parse_duration;
use crate::report::{Latency, histogram};

#[derive(Debug, clap::Args)]
pub struct Options {
    /// A local folder to write to (Silt's local-folder store).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// S3-compatible endpoint (with --s3-bucket); credentials from the AWS environment.
    #[arg(long)]
    s3_endpoint: Option<String>,
    #[arg(long)]
    s3_bucket: Option<String>,
    #[arg(long, default_value = "us-east-1")]
    s3_region: String,
    #[arg(long)]
    s3_path_style: bool,
    #[arg(long)]
    s3_allow_http: bool,
    #[arg(long)]
    create_bucket: bool,
    /// Object size in bytes.
    #[arg(long, default_value_t = 8 << 20)]
    object_bytes: usize,
    /// PUTs in flight at once (Silt's ingest default is 4).
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Serialize)]
struct Outcome {
    store: String,
    object_bytes: usize,
    concurrency: usize,
    seconds: f64,
    objects: u64,
    mib_per_s: f64,
    puts_per_s: f64,
    put_latency: Latency,
}

pub async fn run(options: Options) -> anyhow::Result<()> {
    let settings = match (&options.dir, &options.s3_bucket) {
        (Some(dir), None) => StoreSettings::Local { root: dir.clone() },
        (None, Some(bucket)) => StoreSettings::S3(S3Settings {
            endpoint: options.s3_endpoint.clone(),
            bucket: bucket.clone(),
            region: options.s3_region.clone(),
            path_style: options.s3_path_style,
            allow_http: options.s3_allow_http,
            create_bucket: options.create_bucket,
            ..S3Settings::default()
        }),
        _ => bail!("give either --dir or --s3-bucket"),
    };
    let store = build_store(&settings).await?;
    // Random bytes: what compressed segments look like to the store.
    let data = Bytes::from(
        (0..options.object_bytes)
            .map(|i| {
                (i as u64)
                    .wrapping_mul(0x9E37_79B9_7F4A_7C15)
                    .rotate_left(17) as u8
            })
            .collect::<Vec<u8>>(),
    );
    let run = uuid::Uuid::now_v7().simple().to_string();
    let started = Instant::now();
    let deadline = started + options.duration;
    let mut latency = histogram();
    let mut written: Vec<Path> = Vec::new();
    let mut in_flight = futures::stream::FuturesUnordered::new();
    let mut next = 0u64;
    loop {
        while in_flight.len() < options.concurrency && Instant::now() < deadline {
            let path = Path::from(format!("silt-bench-baseline/{run}/{next:08}"));
            next += 1;
            let store: Arc<dyn ObjectStore> = store.clone();
            let payload = PutPayload::from(data.clone());
            in_flight.push(async move {
                let at = Instant::now();
                let result = store.put(&path, payload).await;
                (path, at.elapsed(), result)
            });
        }
        let Some((path, took, result)) = in_flight.next().await else {
            break;
        };
        result?;
        let _ = latency.record((took.as_micros() as u64).max(1));
        written.push(path);
    }
    let seconds = started.elapsed().as_secs_f64();
    let objects = written.len() as u64;
    for path in &written {
        let _ = store.delete(path).await;
    }
    let outcome = Outcome {
        store: store.to_string(),
        object_bytes: options.object_bytes,
        concurrency: options.concurrency,
        seconds,
        objects,
        mib_per_s: objects as f64 * options.object_bytes as f64 / 1048576.0 / seconds,
        puts_per_s: objects as f64 / seconds,
        put_latency: Latency::of(&latency),
    };
    if options.json {
        println!("{}", serde_json::to_string_pretty(&outcome)?);
    } else {
        println!("store        {}", outcome.store);
        println!(
            "PUT          {} objects of {:.1} MiB, {} at once, {:.1} s",
            outcome.objects,
            outcome.object_bytes as f64 / 1048576.0,
            outcome.concurrency,
            outcome.seconds
        );
        println!(
            "throughput   {:.1} MiB/s  {:.1} PUT/s",
            outcome.mib_per_s, outcome.puts_per_s
        );
        println!("PUT latency  {}", outcome.put_latency.line());
    }
    Ok(())
}
