//! Micro benchmarks of the segment codec: encoding a segment of many partitions (the
//! ingest path), decoding one chunk (the fetch path) and encoding a lake file (the
//! compactor). `cargo bench -p silt-segment`; `cargo test --benches` runs each once.

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use silt_segment::{
    ChunkInput, Header, Record, SegmentCompression, SegmentFooter, encode_lake, encode_segment,
    encode_segment_with,
};

/// `count` records of `size`-byte values, keyed, with one header each. Values are
/// xorshift bytes that do not compress, or (`json`) JSON events with repeated field
/// names, ids and numbers, like clickstream payloads.
fn records(count: usize, size: usize, seed: u64, json: bool) -> Vec<Record> {
    let mut state = seed | 1;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    const ACTIONS: [&str; 4] = ["view", "click", "add_to_cart", "purchase"];
    (0..count)
        .map(|i| {
            let value: Vec<u8> = if json {
                let mut v = String::from("[");
                while v.len() < size {
                    let r = next();
                    v.push_str(&format!(
                        "{{\"id\":\"{:016x}\",\"user\":\"user-{}\",\"action\":\"{}\",\"path\":\"/products/{}\",\"ms\":{}}},",
                        r,
                        r % 1000,
                        ACTIONS[(r >> 10) as usize % 4],
                        (r >> 20) % 500,
                        (r >> 30) % 100_000
                    ));
                }
                v.truncate(size);
                v.into_bytes()
            } else {
                (0..size).map(|_| next() as u8).collect()
            };
            Record {
                timestamp_ms: 1_790_000_000_000 + i as i64,
                key: Some(Bytes::from(format!("key-{}", i % 1000))),
                value: Some(Bytes::from(value)),
                headers: vec![Header {
                    key: "trace".into(),
                    value: Some(Bytes::from_static(b"0123456789abcdef")),
                }],
            }
        })
        .collect()
}

/// 16 partitions × 512 records of 1 KiB: an 8 MiB segment, the ingest default cap.
fn partitions(json: bool) -> Vec<(String, i32, Vec<Record>)> {
    (0..16)
        .map(|p| {
            (
                "bench".to_string(),
                p,
                records(512, 1024, p as u64 + 7, json),
            )
        })
        .collect()
}

fn inputs(parts: &[(String, i32, Vec<Record>)]) -> Vec<ChunkInput<'_>> {
    parts
        .iter()
        .map(|(topic, partition, records)| ChunkInput {
            topic,
            partition: *partition,
            records,
        })
        .collect()
}

fn payload_bytes(parts: &[(String, i32, Vec<Record>)]) -> u64 {
    parts
        .iter()
        .flat_map(|(_, _, r)| r)
        .map(|r| r.size_estimate() as u64)
        .sum()
}

fn segment(c: &mut Criterion) {
    let mut group = c.benchmark_group("segment");
    group.sample_size(20);
    let text = partitions(true);
    let parts = partitions(false);
    group.throughput(Throughput::Bytes(payload_bytes(&text)));
    for (name, compression) in [
        ("lz4", SegmentCompression::Lz4),
        ("zstd", SegmentCompression::Zstd),
        ("none", SegmentCompression::None),
    ] {
        for (values, data) in [("json", &text), ("random", &parts)] {
            let size = encode_segment_with(&inputs(data), compression)
                .expect("encode")
                .data
                .len();
            println!(
                "segment of 16 x 512 x 1 KiB {values} values, {name}: {size} bytes ({:.2}:1)",
                payload_bytes(data) as f64 / size as f64
            );
            group.bench_function(format!("encode 16 x 512 x 1 KiB {values}, {name}"), |b| {
                b.iter(|| encode_segment_with(&inputs(data), compression).expect("encode"))
            });
        }
    }

    let encoded = encode_segment(&inputs(&parts)).expect("encode");
    let len = encoded.data.len() as u64;
    let footer = encoded.data.slice(encoded.footer_range().start as usize..);
    let chunk = encoded.chunks[3].clone();
    let bytes = encoded
        .data
        .slice(chunk.byte_start as usize..(chunk.byte_start + chunk.byte_len) as usize);
    let decoded = SegmentFooter::decode(footer.clone(), len).expect("footer");
    group.throughput(Throughput::Bytes(payload_bytes(&parts[3..4])));
    group.bench_function("decode one chunk (512 x 1 KiB)", |b| {
        b.iter(|| {
            decoded
                .decode_chunk(chunk.row_group, chunk.byte_start, bytes.clone())
                .expect("decode")
        })
    });
    group.throughput(Throughput::Elements(1));
    group.bench_function("decode footer (16 row groups)", |b| {
        b.iter(|| SegmentFooter::decode(footer.clone(), len).expect("footer"))
    });
    group.finish();
}

fn lake(c: &mut Criterion) {
    let records = records(16_384, 1024, 99, true);
    let mut group = c.benchmark_group("lake");
    group.throughput(Throughput::Bytes(
        records.iter().map(|r| r.size_estimate() as u64).sum(),
    ));
    group.sample_size(10);
    group.bench_function("encode 16,384 x 1 KiB", |b| {
        b.iter(|| encode_lake(0, 0, &records, 16_384).expect("lake"))
    });
    group.finish();
}

criterion_group!(benches, segment, lake);
criterion_main!(benches);
