//! `silt-bench`: drives a Kafka-compatible broker through librdkafka (the `rdkafka` crate)
//! and reports what users care about: produce throughput, produce-ack and end-to-end
//! latency percentiles, and — when the broker is Silt — object-store requests and bytes
//! (from its `/metrics`) and the broker's peak memory. `baseline` measures the storage
//! under Silt: raw PUT throughput of 8 MiB objects.

mod baseline;
mod consume;
mod produce;
mod report;

use std::time::Duration;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "silt-bench",
    version,
    about = "Benchmarks for Silt and other Kafka-compatible brokers"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Produce (and consume) for a while; report throughput and latency.
    Produce(produce::Options),
    /// Read a topic from its first offset to its end (a consumer catching up).
    Consume(consume::Options),
    /// PUT 8 MiB objects to an object store as fast as it takes them.
    Baseline(baseline::Options),
}

pub(crate) fn parse_duration(s: &str) -> Result<Duration, humantime::DurationError> {
    humantime::parse_duration(s)
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match cli.command {
        Command::Produce(options) => runtime.block_on(produce::run(options)),
        Command::Consume(options) => runtime.block_on(consume::run(options)),
        Command::Baseline(options) => runtime.block_on(baseline::run(options)),
    }
}
