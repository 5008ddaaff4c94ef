//! The produce scenario: producers write timestamped records (at a target rate or as fast
//! as the broker takes them), consumers tail the topic from its end, and the run reports
//! throughput, produce-ack latency (send → acknowledgement) and end-to-end latency (the
//! producer's send time carried in the record → the consumer's receive time).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use serde::Serialize;
use tokio::sync::Mutex;

use crate::parse_duration;
use crate::report::{Latency, ObjectCounters, histogram, rss, scrape};

#[derive(Debug, clap::Args)]
pub struct Options {
    /// Kafka bootstrap servers.
    #[arg(long, default_value = "127.0.0.1:9092")]
    bootstrap: String,
    /// Topic (created with --partitions if missing); default: a fresh one per run.
    #[arg(long)]
    topic: Option<String>,
    #[arg(long, default_value_t = 16)]
    partitions: i32,
    /// Bytes per record value: random bytes (the first 8 carry the send time).
    #[arg(long, default_value_t = 1024)]
    record_size: usize,
    /// Distinct keys (records are keyed `k<n>`; 0 sends no key).
    #[arg(long, default_value_t = 1000)]
    keys: u64,
    /// Producer clients (each its own librdkafka instance).
    #[arg(long, default_value_t = 1)]
    producers: usize,
    /// Consumers tailing the topic (0: no end-to-end latency).
    #[arg(long, default_value_t = 1)]
    consumers: usize,
    /// Target rate in MiB/s over all producers; 0 produces as fast as possible.
    #[arg(long, default_value_t = 0.0)]
    rate_mib: f64,
    /// How long to produce.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    /// none, gzip, snappy, lz4, zstd.
    #[arg(long, default_value = "none")]
    compression: String,
    #[arg(long, default_value_t = 5)]
    linger_ms: u64,
    /// 0, 1 or all.
    #[arg(long, default_value = "all")]
    acks: String,
    #[arg(long)]
    idempotence: bool,
    /// Transactional producers: each commits a transaction every this many records
    /// (0: plain producers). Consumers then read read_committed.
    #[arg(long, default_value_t = 0)]
    transaction_records: usize,
    /// Silt's /metrics URL: report object-store requests and bytes of the run.
    #[arg(long)]
    metrics_url: Option<String>,
    /// The broker's process id: report its current and peak memory.
    #[arg(long)]
    broker_pid: Option<u32>,
    /// Print the result as JSON (no progress bar).
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Serialize)]
struct Outcome {
    bootstrap: String,
    topic: String,
    partitions: i32,
    record_size: usize,
    producers: usize,
    consumers: usize,
    target_mib_per_s: f64,
    seconds: f64,
    records_acked: u64,
    records_failed: u64,
    records_per_s: f64,
    mib_per_s: f64,
    produce_ack: Latency,
    end_to_end: Option<Latency>,
    records_consumed: u64,
    transaction_records: usize,
    transactions_committed: u64,
    transactions_per_s: f64,
    /// From the first send of a transaction to its commit's return.
    transaction: Option<Latency>,
    object_store: Option<ObjectCounters>,
    object_puts_per_s: Option<f64>,
    broker_rss_bytes: Option<u64>,
    broker_peak_rss_during_run_bytes: Option<u64>,
    broker_peak_rss_since_start_bytes: Option<u64>,
}

fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

fn client_config(options: &Options) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", &options.bootstrap);
    config
}

async fn ensure_topic(options: &Options, topic: &str) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> = client_config(options).create()?;
    let new = NewTopic::new(topic, options.partitions, TopicReplication::Fixed(1));
    let results = admin
        .create_topics(
            [&new],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
        )
        .await?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => bail!("creating topic {name}: {code}"),
        }
    }
    Ok(())
}

fn tailing_consumer(
    options: &Options,
    topic: &str,
    partitions: &[i32],
) -> anyhow::Result<StreamConsumer> {
    let consumer: StreamConsumer = client_config(options)
        .set(
            "group.id",
            format!("silt-bench-{}", uuid::Uuid::now_v7().simple()),
        )
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "100")
        .set(
            "isolation.level",
            if options.transaction_records > 0 {
                "read_committed"
            } else {
                "read_uncommitted"
            },
        )
        .create()?;
    let mut assignment = TopicPartitionList::new();
    for p in partitions {
        assignment.add_partition_offset(topic, *p, Offset::End)?;
    }
    consumer.assign(&assignment)?;
    Ok(consumer)
}

struct Shared {
    stop: AtomicBool,
    acked: AtomicU64,
    failed: AtomicU64,
    consumed: AtomicU64,
    ack_latency: Mutex<Histogram<u64>>,
    e2e_latency: Mutex<Histogram<u64>>,
    transactions: AtomicU64,
    txn_latency: Mutex<Histogram<u64>>,
}

async fn consume(consumer: StreamConsumer, shared: Arc<Shared>) {
    let mut local = histogram();
    loop {
        let next = tokio::time::timeout(Duration::from_millis(200), consumer.recv()).await;
        match next {
            Ok(Ok(message)) => {
                if let Some(payload) = message.payload().filter(|p| p.len() >= 8) {
                    let mut sent = [0u8; 8];
                    sent.copy_from_slice(&payload[..8]);
                    let sent = u64::from_be_bytes(sent);
                    let _ = local.record(now_micros().saturating_sub(sent).max(1));
                }
                shared.consumed.fetch_add(1, Ordering::Relaxed);
            }
            Ok(Err(_)) => {}
            Err(_) if shared.stop.load(Ordering::Relaxed) => break,
            Err(_) => {}
        }
    }
    let _ = shared.e2e_latency.lock().await.add(&local);
}

async fn produce(
    producer: FutureProducer,
    options: Arc<Options>,
    topic: String,
    records_per_s: f64,
    shared: Arc<Shared>,
) {
    let mut local = histogram();
    let mut in_flight = FuturesUnordered::new();
    // A pool of 1,024 distinct values of random bytes (a MiB at 1 KiB records): as little
    // compressible as real payloads can be, and never the same value twice in a row.
    let mut seed = 0x2545_F491_4F6C_DD1D_u64 ^ now_micros();
    let pool: Vec<Vec<u8>> = (0..1024)
        .map(|_| random_bytes(options.record_size.max(8), &mut seed))
        .collect();
    let started = Instant::now();
    let mut sent: u64 = 0;
    let deadline = started + options.duration;
    let mut key = String::new();
    while Instant::now() < deadline {
        if records_per_s > 0.0 {
            let due = started + Duration::from_secs_f64(sent as f64 / records_per_s);
            if due > Instant::now() {
                // Collect acknowledgements while waiting for the next send.
                tokio::select! {
                    () = tokio::time::sleep_until(due.into()) => {}
                    Some((at, result)) = in_flight.next(), if !in_flight.is_empty() => {
                        note(&mut local, &shared, at, result);
                    }
                }
                continue;
            }
        }
        let mut value = pool[(sent % 1024) as usize].clone();
        value[..8].copy_from_slice(&now_micros().to_be_bytes());
        let mut record = FutureRecord::to(&topic).payload(&value[..]);
        if options.keys > 0 {
            key.clear();
            key.push('k');
            key.push_str(&(sent % options.keys).to_string());
            record = record.key(key.as_str());
        }
        match producer.send_result(record) {
            Ok(delivery) => {
                let at = Instant::now();
                in_flight.push(async move { (at, delivery.await) });
                sent += 1;
            }
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                // librdkafka's queue is full: wait for acknowledgements (backpressure).
                if let Some((at, result)) = in_flight.next().await {
                    note(&mut local, &shared, at, result);
                }
            }
            Err(_) => {
                shared.failed.fetch_add(1, Ordering::Relaxed);
            }
        }
        // Keep the completion queue short without blocking.
        while let Some(Some((at, result))) = futures::FutureExt::now_or_never(in_flight.next()) {
            note(&mut local, &shared, at, result);
        }
    }
    while let Some((at, result)) = in_flight.next().await {
        note(&mut local, &shared, at, result);
    }
    let _ = shared.ack_latency.lock().await.add(&local);
}

/// A transactional producer: transactions of `--transaction-records` records, each sent,
/// acknowledged and committed before the next begins (as fast as the broker takes them).
async fn produce_transactions(
    producer: FutureProducer,
    options: Arc<Options>,
    topic: String,
    shared: Arc<Shared>,
) {
    let mut local = histogram();
    let mut transactions = histogram();
    let mut seed = 0x9E37_79B9_7F4A_7C15_u64 ^ now_micros();
    let value = random_bytes(options.record_size.max(8), &mut seed);
    let deadline = Instant::now() + options.duration;
    let mut sent: u64 = 0;
    let mut key = String::new();
    while Instant::now() < deadline {
        let began = Instant::now();
        if producer.begin_transaction().is_err() {
            shared.failed.fetch_add(1, Ordering::Relaxed);
            break;
        }
        let mut in_flight = FuturesUnordered::new();
        for _ in 0..options.transaction_records {
            let mut value = value.clone();
            value[..8].copy_from_slice(&now_micros().to_be_bytes());
            let mut record = FutureRecord::to(&topic).payload(&value[..]);
            if options.keys > 0 {
                key.clear();
                key.push('k');
                key.push_str(&(sent % options.keys).to_string());
                record = record.key(key.as_str());
            }
            match producer.send_result(record) {
                Ok(delivery) => {
                    let at = Instant::now();
                    in_flight.push(async move { (at, delivery.await) });
                    sent += 1;
                }
                Err(_) => {
                    shared.failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        let mut acks = Vec::new();
        while let Some((at, result)) = in_flight.next().await {
            acks.push((at.elapsed(), result.is_ok_and(|r| r.is_ok())));
        }
        let p = producer.clone();
        let committed =
            tokio::task::spawn_blocking(move || p.commit_transaction(Duration::from_secs(60)))
                .await
                .is_ok_and(|r| r.is_ok());
        // A record counts once its transaction has committed.
        for (latency, ok) in acks {
            if ok && committed {
                let _ = local.record((latency.as_micros() as u64).max(1));
                shared.acked.fetch_add(1, Ordering::Relaxed);
            } else {
                shared.failed.fetch_add(1, Ordering::Relaxed);
            }
        }
        if !committed {
            break;
        }
        let _ = transactions.record((began.elapsed().as_micros() as u64).max(1));
        shared.transactions.fetch_add(1, Ordering::Relaxed);
    }
    let _ = shared.ack_latency.lock().await.add(&local);
    let _ = shared.txn_latency.lock().await.add(&transactions);
}

/// `len` pseudo-random bytes (xorshift from `seed`, which moves on): incompressible values.
fn random_bytes(len: usize, seed: &mut u64) -> Vec<u8> {
    (0..len)
        .map(|_| {
            *seed ^= *seed << 13;
            *seed ^= *seed >> 7;
            *seed ^= *seed << 17;
            *seed as u8
        })
        .collect()
}

fn note<T, E>(
    local: &mut Histogram<u64>,
    shared: &Shared,
    at: Instant,
    result: Result<Result<T, E>, futures::channel::oneshot::Canceled>,
) {
    match result {
        Ok(Ok(_)) => {
            let _ = local.record((at.elapsed().as_micros() as u64).max(1));
            shared.acked.fetch_add(1, Ordering::Relaxed);
        }
        _ => {
            shared.failed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

pub async fn run(options: Options) -> anyhow::Result<()> {
    if options.record_size < 8 {
        bail!("--record-size must be at least 8 (the send time)");
    }
    let topic = options
        .topic
        .clone()
        .unwrap_or_else(|| format!("silt-bench-{}", uuid::Uuid::now_v7().simple()));
    ensure_topic(&options, &topic)
        .await
        .context("creating the topic")?;

    let shared = Arc::new(Shared {
        stop: AtomicBool::new(false),
        acked: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        consumed: AtomicU64::new(0),
        ack_latency: Mutex::new(histogram()),
        e2e_latency: Mutex::new(histogram()),
        transactions: AtomicU64::new(0),
        txn_latency: Mutex::new(histogram()),
    });

    // Consumers first, positioned at the end, so they see every record of the run.
    let mut consumers = Vec::new();
    for c in 0..options.consumers {
        let mine: Vec<i32> = (0..options.partitions)
            .filter(|p| (*p as usize) % options.consumers == c)
            .collect();
        let consumer = tailing_consumer(&options, &topic, &mine)?;
        consumers.push(tokio::spawn(consume(consumer, shared.clone())));
    }
    if options.consumers > 0 {
        tokio::time::sleep(Duration::from_secs(1)).await;
    }

    let before = match &options.metrics_url {
        Some(url) => Some(scrape(url).await.context("reading the broker's metrics")?),
        None => None,
    };
    let options = Arc::new(options);
    let records_per_s =
        options.rate_mib * 1024.0 * 1024.0 / options.record_size as f64 / options.producers as f64;
    let mut producers = Vec::new();
    for i in 0..options.producers {
        let mut config = client_config(&options);
        config
            .set("linger.ms", options.linger_ms.to_string())
            .set("acks", &options.acks)
            .set("compression.type", &options.compression)
            // (Transactions imply idempotence; librdkafka refuses it set to false.)
            .set(
                "enable.idempotence",
                (options.idempotence || options.transaction_records > 0).to_string(),
            )
            .set("queue.buffering.max.kbytes", "262144")
            .set("message.timeout.ms", "120000");
        if options.transaction_records > 0 {
            // librdkafka wants a record's timeout within the transaction's.
            config
                .set("transactional.id", format!("{topic}-{i}"))
                .set("message.timeout.ms", "60000")
                .set("transaction.timeout.ms", "60000");
        }
        let producer: FutureProducer = config.create()?;
        if options.transaction_records > 0 {
            let p = producer.clone();
            tokio::task::spawn_blocking(move || p.init_transactions(Duration::from_secs(60)))
                .await?
                .context("initialising the transactional producer")?;
            producers.push(tokio::spawn(produce_transactions(
                producer,
                options.clone(),
                topic.clone(),
                shared.clone(),
            )));
            continue;
        }
        producers.push(tokio::spawn(produce(
            producer,
            options.clone(),
            topic.clone(),
            records_per_s,
            shared.clone(),
        )));
    }

    let bar = if options.json {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(options.duration.as_secs())
    };
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len}s  {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let started = Instant::now();
    let mut peak_rss = 0;
    let mut last = (Instant::now(), 0u64);
    while producers.iter().any(|p| !p.is_finished()) {
        tokio::time::sleep(Duration::from_millis(500)).await;
        if let Some((now_rss, _)) = options.broker_pid.and_then(rss) {
            peak_rss = peak_rss.max(now_rss);
        }
        let acked = shared.acked.load(Ordering::Relaxed);
        let rate = (acked - last.1) as f64 / last.0.elapsed().as_secs_f64();
        last = (Instant::now(), acked);
        bar.set_position(started.elapsed().as_secs().min(options.duration.as_secs()));
        bar.set_message(format!(
            "{:.0} rec/s  {:.1} MiB/s  acked {acked}",
            rate,
            rate * options.record_size as f64 / 1048576.0
        ));
    }
    for p in producers {
        p.await?;
    }
    let seconds = started.elapsed().as_secs_f64();
    bar.finish_and_clear();

    // Let the consumers catch up with what was acknowledged, then stop them.
    let acked = shared.acked.load(Ordering::Relaxed);
    let catch_up = Instant::now();
    while options.consumers > 0
        && shared.consumed.load(Ordering::Relaxed) < acked
        && catch_up.elapsed() < Duration::from_secs(30)
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    shared.stop.store(true, Ordering::Relaxed);
    for c in consumers {
        c.await?;
    }

    let object_store = match (&options.metrics_url, before) {
        (Some(url), Some(before)) => Some(scrape(url).await?.since(&before)),
        _ => None,
    };
    let memory = options.broker_pid.and_then(rss);
    let failed = shared.failed.load(Ordering::Relaxed);
    let ack_latency = Latency::of(&*shared.ack_latency.lock().await);
    let transactions = shared.transactions.load(Ordering::Relaxed);
    let txn_latency = shared.txn_latency.lock().await;
    let e2e = shared.e2e_latency.lock().await;
    let outcome = Outcome {
        bootstrap: options.bootstrap.clone(),
        topic,
        partitions: options.partitions,
        record_size: options.record_size,
        producers: options.producers,
        consumers: options.consumers,
        target_mib_per_s: options.rate_mib,
        seconds,
        records_acked: acked,
        records_failed: failed,
        records_per_s: acked as f64 / seconds,
        mib_per_s: acked as f64 * options.record_size as f64 / 1048576.0 / seconds,
        produce_ack: ack_latency,
        end_to_end: (!e2e.is_empty()).then(|| Latency::of(&e2e)),
        records_consumed: shared.consumed.load(Ordering::Relaxed),
        transaction_records: options.transaction_records,
        transactions_committed: transactions,
        transactions_per_s: transactions as f64 / seconds,
        transaction: (!txn_latency.is_empty()).then(|| Latency::of(&txn_latency)),
        object_puts_per_s: object_store
            .as_ref()
            .map(|o| o.requests.get("put").copied().unwrap_or(0.0) / seconds),
        object_store,
        broker_rss_bytes: memory.map(|m| m.0),
        broker_peak_rss_during_run_bytes: memory.map(|m| peak_rss.max(m.0)),
        broker_peak_rss_since_start_bytes: memory.map(|m| m.1),
    };
    if options.json {
        println!("{}", serde_json::to_string_pretty(&outcome)?);
    } else {
        print_table(&outcome);
    }
    if failed > 0 {
        bail!("{failed} records were not acknowledged");
    }
    Ok(())
}

fn print_table(o: &Outcome) {
    let mib = |b: u64| b as f64 / 1048576.0;
    println!(
        "broker          {}  topic {} ({} partitions)",
        o.bootstrap, o.topic, o.partitions
    );
    println!(
        "load            {} producer(s), {} consumer(s), {} B records, target {}",
        o.producers,
        o.consumers,
        o.record_size,
        if o.target_mib_per_s > 0.0 {
            format!("{:.1} MiB/s", o.target_mib_per_s)
        } else {
            "max".into()
        }
    );
    println!(
        "throughput      {:.0} records/s  {:.1} MiB/s  ({} acked, {} failed, {:.1} s)",
        o.records_per_s, o.mib_per_s, o.records_acked, o.records_failed, o.seconds
    );
    println!("produce ack     {}", o.produce_ack.line());
    if let Some(t) = &o.transaction {
        println!(
            "transactions    {} committed, {:.1}/s, {} records each; begin → commit {}",
            o.transactions_committed,
            o.transactions_per_s,
            o.transaction_records,
            t.line()
        );
    }
    match &o.end_to_end {
        Some(e) => println!(
            "end to end      {}  ({} consumed)",
            e.line(),
            o.records_consumed
        ),
        None => println!("end to end      (no consumer)"),
    }
    if let Some(store) = &o.object_store {
        let ops: Vec<String> = store
            .requests
            .iter()
            .map(|(op, n)| {
                let bytes = store.bytes.get(op).copied().unwrap_or(0.0);
                format!("{op} {n:.0} ({:.1} MiB)", bytes / 1048576.0)
            })
            .collect();
        println!(
            "object store    {}  — {:.1} PUT/s",
            if ops.is_empty() {
                "no requests".to_string()
            } else {
                ops.join(", ")
            },
            o.object_puts_per_s.unwrap_or(0.0)
        );
    }
    if let (Some(now), Some(run), Some(peak)) = (
        o.broker_rss_bytes,
        o.broker_peak_rss_during_run_bytes,
        o.broker_peak_rss_since_start_bytes,
    ) {
        println!(
            "broker memory   RSS {:.0} MiB now, {:.0} MiB peak during the run, {:.0} MiB peak since start",
            mib(now),
            mib(run),
            mib(peak)
        );
    }
}
