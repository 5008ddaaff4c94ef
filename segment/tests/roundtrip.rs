//! Segment round trips: what is encoded is what a chunk read returns, reading only the
//! footer and the chunk's own byte range.

use bytes::Bytes;
use proptest::prelude::*;
use silt_segment::{
    ChunkInput, EncodedSegment, Header, Record, SegmentCompression, SegmentFooter, encode_segment,
    encode_segment_with,
};

fn footer(seg: &EncodedSegment) -> SegmentFooter {
    let range = seg.footer_range();
    SegmentFooter::decode(
        seg.data.slice(range.start as usize..range.end as usize),
        seg.data.len() as u64,
    )
    .expect("footer decodes")
}

fn read_chunk(seg: &EncodedSegment, footer: &SegmentFooter, index: usize) -> Vec<Record> {
    let loc = &seg.chunks[index];
    let start = loc.byte_start as usize;
    let bytes = seg.data.slice(start..start + loc.byte_len as usize);
    footer
        .decode_chunk(loc.row_group, loc.byte_start, bytes)
        .expect("chunk decodes")
}

fn record(i: usize) -> Record {
    Record {
        timestamp_ms: 1_700_000_000_000 + i as i64,
        key: Some(Bytes::from(format!("key-{i}"))),
        value: Some(Bytes::from(format!("value-{i}"))),
        headers: vec![],
    }
}

#[test]
fn nulls_empty_values_and_headers_round_trip() {
    let records = vec![
        Record {
            timestamp_ms: 5,
            key: None,
            value: None,
            headers: vec![],
        },
        Record {
            timestamp_ms: 3,
            key: Some(Bytes::new()),
            value: Some(Bytes::new()),
            headers: vec![
                Header {
                    key: "trace".into(),
                    value: Some(Bytes::from_static(b"abc")),
                },
                Header {
                    key: "".into(),
                    value: None,
                },
            ],
        },
        record(7),
    ];
    let seg = encode_segment(&[ChunkInput {
        topic: "t",
        partition: 0,
        records: &records,
    }])
    .expect("encodes");
    assert_eq!(seg.chunks[0].record_count, 3);
    assert_eq!(seg.chunks[0].min_timestamp_ms, 3);
    assert_eq!(seg.chunks[0].max_timestamp_ms, 1_700_000_000_007);
    let footer = footer(&seg);
    assert_eq!(read_chunk(&seg, &footer, 0), records);
}

#[test]
fn every_compression_round_trips() {
    let records: Vec<Record> = (0..300).map(record).collect();
    for compression in [
        SegmentCompression::Lz4,
        SegmentCompression::Zstd,
        SegmentCompression::None,
    ] {
        let inputs = [
            ChunkInput {
                topic: "a",
                partition: 0,
                records: &records[..100],
            },
            ChunkInput {
                topic: "a",
                partition: 1,
                records: &records[100..],
            },
        ];
        let seg = encode_segment_with(&inputs, compression).expect("encodes");
        let footer = footer(&seg);
        assert_eq!(
            read_chunk(&seg, &footer, 0),
            records[..100],
            "{compression:?}"
        );
        assert_eq!(
            read_chunk(&seg, &footer, 1),
            records[100..],
            "{compression:?}"
        );
    }
}

#[test]
fn one_mib_values_round_trip() {
    let records: Vec<Record> = (0..4)
        .map(|i| Record {
            timestamp_ms: i,
            key: None,
            value: Some(Bytes::from(vec![i as u8; 1 << 20])),
            headers: vec![],
        })
        .collect();
    let seg = encode_segment(&[ChunkInput {
        topic: "big",
        partition: 3,
        records: &records,
    }])
    .expect("encodes");
    let footer = footer(&seg);
    assert_eq!(read_chunk(&seg, &footer, 0), records);
}

#[test]
fn thousands_of_chunks_each_read_alone() {
    let chunks: Vec<(String, i32, Vec<Record>)> = (0..2000)
        .map(|c| {
            let n = 1 + c % 5;
            (
                format!("topic-{}", c % 7),
                c as i32,
                (0..n).map(|i| record(c * 10 + i)).collect(),
            )
        })
        .collect();
    let inputs: Vec<ChunkInput<'_>> = chunks
        .iter()
        .map(|(t, p, r)| ChunkInput {
            topic: t,
            partition: *p,
            records: r,
        })
        .collect();
    let seg = encode_segment(&inputs).expect("encodes");
    assert_eq!(seg.chunks.len(), 2000);
    let footer = footer(&seg);
    assert_eq!(footer.row_groups(), 2000);
    // Byte ranges do not overlap and are in order.
    for pair in seg.chunks.windows(2) {
        assert!(pair[0].byte_start + pair[0].byte_len <= pair[1].byte_start);
    }
    for index in [0, 1, 999, 1500, 1999] {
        assert_eq!(read_chunk(&seg, &footer, index), chunks[index].2);
    }
}

#[test]
fn a_read_outside_the_chunk_range_fails() {
    let a: Vec<Record> = (0..10).map(record).collect();
    let b: Vec<Record> = (10..20).map(record).collect();
    let seg = encode_segment(&[
        ChunkInput {
            topic: "t",
            partition: 0,
            records: &a,
        },
        ChunkInput {
            topic: "t",
            partition: 1,
            records: &b,
        },
    ])
    .expect("encodes");
    let footer = footer(&seg);
    // Handing chunk 0's bytes for chunk 1 must fail, not return wrong records.
    let loc = &seg.chunks[0];
    let bytes = seg
        .data
        .slice(loc.byte_start as usize..(loc.byte_start + loc.byte_len) as usize);
    assert!(footer.decode_chunk(1, loc.byte_start, bytes).is_err());
    assert!(footer.decode_chunk(2, 0, Bytes::new()).is_err());
}

#[test]
fn empty_chunks_are_rejected() {
    let err = encode_segment(&[ChunkInput {
        topic: "t",
        partition: 0,
        records: &[],
    }]);
    assert!(err.is_err());
}

fn arb_bytes() -> impl Strategy<Value = Option<Bytes>> {
    proptest::option::of(proptest::collection::vec(any::<u8>(), 0..64).prop_map(Bytes::from))
}

fn arb_record() -> impl Strategy<Value = Record> {
    (
        any::<i64>(),
        arb_bytes(),
        arb_bytes(),
        proptest::collection::vec((".{0,8}", arb_bytes()), 0..3),
    )
        .prop_map(|(timestamp_ms, key, value, headers)| Record {
            timestamp_ms,
            key,
            value,
            headers: headers
                .into_iter()
                .map(|(key, value)| Header { key, value })
                .collect(),
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn any_chunks_round_trip(chunks in proptest::collection::vec(proptest::collection::vec(arb_record(), 1..20), 1..8)) {
        let inputs: Vec<ChunkInput<'_>> = chunks
            .iter()
            .enumerate()
            .map(|(i, r)| ChunkInput { topic: "p", partition: i as i32, records: r })
            .collect();
        let seg = encode_segment(&inputs).expect("encodes");
        let footer = footer(&seg);
        for (i, records) in chunks.iter().enumerate() {
            prop_assert_eq!(&read_chunk(&seg, &footer, i), records);
            let loc = &seg.chunks[i];
            prop_assert_eq!(loc.min_timestamp_ms, records.iter().map(|r| r.timestamp_ms).min().unwrap_or_default());
        }
    }
}

/// Every single-bit flip anywhere in a segment either fails the read or leaves the
/// records exactly as written; inside a chunk's byte range or the footer it always fails
/// (the row groups' checksums in the footer, the footer's in the index).
#[test]
fn a_flipped_bit_never_reads_as_a_wrong_record() {
    let a: Vec<Record> = (0..6).map(record).collect();
    let b: Vec<Record> = (6..9).map(record).collect();
    for compression in [
        SegmentCompression::Lz4,
        SegmentCompression::Zstd,
        SegmentCompression::None,
    ] {
        let inputs = [
            ChunkInput {
                topic: "t",
                partition: 0,
                records: &a,
            },
            ChunkInput {
                topic: "t",
                partition: 1,
                records: &b,
            },
        ];
        let seg = encode_segment_with(&inputs, compression).expect("encodes");
        let len = seg.data.len();
        for position in 0..len {
            for bit in [0u8, 1, 7] {
                let mut data = seg.data.to_vec();
                data[position] ^= 1 << bit;
                let data = Bytes::from(data);
                let range = seg.footer_range();
                let footer = SegmentFooter::decode_checked(
                    data.slice(range.start as usize..range.end as usize),
                    len as u64,
                    Some(seg.footer_crc),
                );
                let Ok(footer) = footer else {
                    continue;
                };
                assert!(
                    !range.contains(&(position as u64)),
                    "{compression:?}: flip at {position} bit {bit} in the footer went unnoticed"
                );
                for (index, input) in inputs.iter().enumerate() {
                    let loc = &seg.chunks[index];
                    let (start, end) = (
                        loc.byte_start as usize,
                        (loc.byte_start + loc.byte_len) as usize,
                    );
                    let read =
                        footer.decode_chunk(loc.row_group, loc.byte_start, data.slice(start..end));
                    let inside = (start..end).contains(&position);
                    if let Ok(records) = read {
                        assert!(
                            !inside,
                            "{compression:?}: flip at {position} bit {bit} inside chunk {index} went unnoticed"
                        );
                        assert_eq!(
                            records, input.records,
                            "{compression:?}: flip at {position} bit {bit} changed chunk {index}"
                        );
                    }
                }
            }
        }
    }
}
