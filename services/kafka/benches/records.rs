//! Micro benchmarks of the Kafka record batch codec on Silt's paths: decoding a
//! producer's batch into records (produce) and encoding records read from a segment as
//! a batch (fetch). `cargo bench -p silt-kafka`; `cargo test --benches` runs each once.

use bytes::{Bytes, BytesMut};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::records::{
    Compression, NO_PARTITION_LEADER_EPOCH, NO_PRODUCER_EPOCH, NO_PRODUCER_ID, Record,
    RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use silt_kafka::codec::{decode_batches, encode_batch};
use silt_reader::ReadRecord;

const RECORDS: usize = 1000;
const VALUE: usize = 1024;

fn values() -> Vec<Bytes> {
    let mut state = 0x9E37_79B9_7F4A_7C15_u64;
    (0..RECORDS)
        .map(|_| {
            Bytes::from(
                (0..VALUE)
                    .map(|_| {
                        state ^= state << 13;
                        state ^= state >> 7;
                        state ^= state << 17;
                        // Hex digits: compressible about 2:1, like text payloads.
                        b"0123456789abcdef"[(state & 15) as usize]
                    })
                    .collect::<Vec<u8>>(),
            )
        })
        .collect()
}

/// One producer batch of 1,000 keyed 1 KiB records, as librdkafka would send it.
fn producer_batch(compression: Compression) -> Bytes {
    let records: Vec<Record> = values()
        .into_iter()
        .enumerate()
        .map(|(i, value)| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: NO_PARTITION_LEADER_EPOCH,
            producer_id: NO_PRODUCER_ID,
            producer_epoch: NO_PRODUCER_EPOCH,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: i as i32,
            timestamp: 1_790_000_000_000 + i as i64,
            key: Some(Bytes::from(format!("key-{i}"))),
            value: Some(value),
            headers: IndexMap::new(),
        })
        .collect();
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression,
    };
    RecordBatchEncoder::encode(&mut buf, records.iter(), &options).expect("encode");
    buf.freeze()
}

fn produce(c: &mut Criterion) {
    let mut group = c.benchmark_group("kafka produce: decode a batch of 1,000 x 1 KiB");
    group.throughput(Throughput::Bytes((RECORDS * VALUE) as u64));
    for (name, compression) in [
        ("none", Compression::None),
        ("lz4", Compression::Lz4),
        ("zstd", Compression::Zstd),
    ] {
        let batch = producer_batch(compression);
        group.bench_function(name, |b| {
            b.iter(|| decode_batches(batch.clone(), 0).expect("decode"))
        });
    }
    group.finish();
}

fn fetch(c: &mut Criterion) {
    let records: Vec<ReadRecord> = values()
        .into_iter()
        .enumerate()
        .map(|(i, value)| ReadRecord {
            offset: 5_000 + i as i64,
            record: silt_segment::Record {
                timestamp_ms: 1_790_000_000_000 + i as i64,
                key: Some(Bytes::from(format!("key-{i}"))),
                value: Some(value),
                headers: Vec::new(),
            },
            batch: None,
        })
        .collect();
    let mut group = c.benchmark_group("kafka fetch: encode 1,000 x 1 KiB as a batch");
    group.throughput(Throughput::Bytes((RECORDS * VALUE) as u64));
    group.bench_function("create time", |b| {
        b.iter(|| encode_batch(&records, false).expect("encode"))
    });
    group.finish();
}

criterion_group!(benches, produce, fetch);
criterion_main!(benches);
