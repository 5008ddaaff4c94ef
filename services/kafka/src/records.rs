//! Converting between Kafka record batches and Silt records.

use bytes::{Bytes, BytesMut};
use integer_encoding::VarInt;
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, NO_PARTITION_LEADER_EPOCH, NO_PRODUCER_EPOCH, NO_PRODUCER_ID,
    Record as KafkaRecord, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions,
    TimestampType,
};
use silt_ingest::ProducerBatch;
use silt_metadata::BatchKind;
use silt_reader::ReadRecord;
use silt_segment::{Header, Record};

/// One record batch as a producer sent it.
#[derive(Debug)]
pub struct IncomingBatch {
    pub records: Vec<Record>,
    /// Set for idempotent producers.
    pub producer: Option<ProducerBatch>,
    pub transactional: bool,
    pub control: bool,
}

/// Decodes every batch in a partition's `records` field (any compression codec).
pub fn decode_batches(mut data: Bytes, now_ms: i64) -> Result<Vec<IncomingBatch>, String> {
    check_batch_headers(&data)?;
    let mut batches = Vec::new();
    while !data.is_empty() {
        // The codec keeps a record's headers in a map, so a key sent twice would keep only
        // its last value: the records section (decompressed once, by the codec's own
        // decompressors) is kept to read the headers again, in order, repeats included.
        let section = std::cell::RefCell::new(Bytes::new());
        let set = RecordBatchDecoder::decode_with_custom_compression(
            &mut data,
            Some(|buf: &mut Bytes, compression: Compression| {
                let plain = decompress(buf, compression)?;
                *section.borrow_mut() = plain.clone();
                Ok(plain)
            }),
        )
        .map_err(|e| e.to_string())?;
        if set.version != 2 {
            return Err(format!(
                "record batch magic {} is not supported (only 2)",
                set.version
            ));
        }
        let Some(first) = set.records.first() else {
            continue;
        };
        let producer = (first.producer_id >= 0).then_some(ProducerBatch {
            producer_id: first.producer_id,
            epoch: first.producer_epoch,
            base_sequence: first.sequence,
        });
        let (transactional, control) = (first.transactional, first.control);
        let mut headers = if set.records.iter().any(|r| !r.headers.is_empty()) {
            record_headers(section.take(), set.records.len())?
        } else {
            Vec::new()
        }
        .into_iter();
        let records = set
            .records
            .into_iter()
            .map(|r| Record {
                timestamp_ms: if r.timestamp < 0 { now_ms } else { r.timestamp },
                key: r.key,
                value: r.value,
                headers: headers.next().unwrap_or_default(),
            })
            .collect();
        batches.push(IncomingBatch {
            records,
            producer,
            transactional,
            control,
        });
    }
    Ok(batches)
}

/// Decompresses a batch's records section with the codec crate's decompressors.
fn decompress(buf: &mut Bytes, compression: Compression) -> anyhow::Result<Bytes> {
    use kafka_protocol::compression::{Decompressor, Gzip, Lz4, Snappy, Zstd};
    let whole = |b: &mut Bytes| Ok(b.split_to(b.len()));
    match compression {
        Compression::None => whole(buf),
        Compression::Gzip => Gzip::decompress(buf, whole),
        Compression::Snappy => Snappy::decompress(buf, whole),
        Compression::Lz4 => Lz4::decompress(buf, whole),
        Compression::Zstd => Zstd::decompress(buf, whole),
    }
}

/// Reads a Kafka varint (zigzag, as the codec writes them) from the front of `buf`.
fn take_varint<T: VarInt>(buf: &mut Bytes) -> Result<T, String> {
    use bytes::Buf;
    let (value, used) = T::decode_var(buf).ok_or("a truncated varint in a record")?;
    buf.advance(used);
    Ok(value)
}

/// Reads the headers of `count` records from a decompressed v2 records section, in order,
/// a key sent twice kept twice. The codec has already checked the section; this walks its
/// length-prefixed fields.
fn record_headers(mut buf: Bytes, count: usize) -> Result<Vec<Vec<Header>>, String> {
    use bytes::Buf;
    let field = |record: &mut Bytes| -> Result<Option<Bytes>, String> {
        match usize::try_from(take_varint::<i32>(record)?) {
            Ok(len) if len <= record.len() => Ok(Some(record.split_to(len))),
            Ok(_) => Err("a record field longer than its record".into()),
            Err(_) => Ok(None),
        }
    };
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        let mut record = field(&mut buf)?.ok_or("a negative record length")?;
        if record.is_empty() {
            return Err("an empty record".into());
        }
        record.advance(1); // attributes
        take_varint::<i64>(&mut record)?; // timestamp delta
        take_varint::<i32>(&mut record)?; // offset delta
        field(&mut record)?; // key
        field(&mut record)?; // value
        let n = usize::try_from(take_varint::<i32>(&mut record)?)
            .map_err(|_| "a negative header count")?;
        let mut headers = Vec::with_capacity(n.min(record.len()));
        for _ in 0..n {
            let key = field(&mut record)?.ok_or("a header without a key")?;
            let key = String::from_utf8(key.to_vec()).map_err(|_| "a header key is not UTF-8")?;
            headers.push(Header {
                key,
                value: field(&mut record)?,
            });
        }
        out.push(headers);
    }
    Ok(out)
}

/// Whether some record repeats a header key (the codec's map cannot carry it).
fn repeats_a_header_key(records: &[ReadRecord]) -> bool {
    records.iter().any(|r| {
        let h = &r.record.headers;
        h.len() > 1
            && h.iter()
                .enumerate()
                .any(|(i, a)| h[..i].iter().any(|b| b.key == a.key))
    })
}

/// Writes `records` as a v2 records section (offsets and timestamps relative to the
/// batch's first), every header in order: used, through the codec's compression hook, for
/// batches the codec's header map would shorten. The batch header, length and CRC are
/// still the codec's.
fn write_records_section(out: &mut BytesMut, records: &[ReadRecord]) -> anyhow::Result<()> {
    use bytes::BufMut;
    fn varint<T: VarInt>(buf: &mut BytesMut, value: T) {
        let mut scratch = [0u8; 10];
        let used = value.encode_var(&mut scratch);
        buf.put_slice(&scratch[..used]);
    }
    fn field(buf: &mut BytesMut, bytes: Option<&[u8]>) -> anyhow::Result<()> {
        match bytes {
            Some(b) => {
                varint(buf, i32::try_from(b.len())?);
                buf.put_slice(b);
            }
            None => varint(buf, -1i32),
        }
        Ok(())
    }
    let base_offset = records.iter().map(|r| r.offset).min().unwrap_or(0);
    let base_timestamp = records
        .iter()
        .map(|r| r.record.timestamp_ms)
        .min()
        .unwrap_or(0);
    let mut body = BytesMut::new();
    for r in records {
        body.clear();
        body.put_i8(0); // attributes
        varint(&mut body, r.record.timestamp_ms - base_timestamp);
        varint(&mut body, i32::try_from(r.offset - base_offset)?);
        field(&mut body, r.record.key.as_deref())?;
        field(&mut body, r.record.value.as_deref())?;
        varint(&mut body, i32::try_from(r.record.headers.len())?);
        for h in &r.record.headers {
            field(&mut body, Some(h.key.as_bytes()))?;
            field(&mut body, h.value.as_deref())?;
        }
        varint(out, i32::try_from(body.len())?);
        out.put_slice(&body);
    }
    Ok(())
}

/// Byte positions in a v2 record batch header, and its size.
const MAGIC: usize = 16;
const RECORD_COUNT: usize = 57;
const HEADER: usize = 61;
/// The smallest encoding of one record (length, attributes, timestamp and offset deltas,
/// key and value lengths, header count: one byte each).
const MIN_RECORD: usize = 7;
/// Most records a compressed batch may claim.
const MAX_COMPRESSED_RECORDS: usize = 1_000_000;

/// Checks the batch headers before the codec sees them: the codec reserves memory for the
/// record count a batch claims, so a forged count must not reach it.
fn check_batch_headers(data: &[u8]) -> Result<(), String> {
    let mut start = 0;
    while start < data.len() {
        let header = data
            .get(start..start + HEADER)
            .ok_or("truncated record batch header")?;
        let int = |at: usize| {
            i32::from_be_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]])
        };
        let length = usize::try_from(int(BATCH_LENGTH)).map_err(|_| "negative batch length")?;
        let end = start + BATCH_LENGTH + 4 + length;
        if end > data.len() || end < start + HEADER {
            return Err("record batch length outside the request".into());
        }
        if header[MAGIC] != 2 {
            return Err(format!(
                "record batch magic {} is not supported (only 2)",
                header[MAGIC]
            ));
        }
        let count = usize::try_from(int(RECORD_COUNT)).map_err(|_| "negative record count")?;
        let compressed = header[ATTRIBUTES + 1] & 0x07 != 0;
        let limit = if compressed {
            MAX_COMPRESSED_RECORDS
        } else {
            (end - start - HEADER) / MIN_RECORD
        };
        if count > limit {
            return Err(format!(
                "record batch claims {count} records, more than its bytes can hold"
            ));
        }
        start = end;
    }
    Ok(())
}

/// Encodes records (consecutive offsets) as one uncompressed v2 record batch, marked
/// LogAppendTime when the topic's broker clock stamped them.
pub fn encode_batch(records: &[ReadRecord], log_append_time: bool) -> Result<Bytes, String> {
    let timestamp_type = if log_append_time {
        TimestampType::LogAppend
    } else {
        TimestampType::Creation
    };
    let Some(first) = records.first() else {
        return Ok(Bytes::new());
    };
    let kafka: Vec<KafkaRecord> = records
        .iter()
        .map(|r| {
            let mut headers = IndexMap::new();
            for h in &r.record.headers {
                headers.insert(StrBytes::from_string(h.key.clone()), h.value.clone());
            }
            // A producer's batch goes out as its own batch, with its producer, sequences
            // and transactional flags (read_committed clients filter by them); other
            // records get sequences relative to the first, so they share one batch.
            let (producer_id, producer_epoch, sequence) =
                match r.batch.and_then(|b| b.producer.map(|p| (b, p))) {
                    Some((b, p)) => (
                        p.producer_id,
                        p.epoch,
                        p.base_sequence
                            .wrapping_add((r.offset - b.batch_offset) as i32),
                    ),
                    None => (
                        NO_PRODUCER_ID,
                        NO_PRODUCER_EPOCH,
                        (r.offset - first.offset) as i32,
                    ),
                };
            let kind = r.batch.map_or(BatchKind::Plain, |b| b.kind);
            KafkaRecord {
                transactional: kind != BatchKind::Plain,
                control: kind == BatchKind::Marker,
                delete_horizon: false,
                partition_leader_epoch: NO_PARTITION_LEADER_EPOCH,
                producer_id,
                producer_epoch,
                timestamp_type,
                offset: r.offset,
                sequence,
                timestamp: r.record.timestamp_ms,
                key: r.record.key.clone(),
                value: r.record.value.clone(),
                headers,
            }
        })
        .collect();
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    // One encoder call per batch, split where the encoder would split (another producer,
    // epoch, kind or sequence run), and for LogAppendTime where the time changes: clients
    // take such a batch's max timestamp for all of its records.
    let same_batch = |a: &KafkaRecord, b: &KafkaRecord| {
        a.producer_id == b.producer_id
            && a.producer_epoch == b.producer_epoch
            && a.transactional == b.transactional
            && a.control == b.control
            && (a.offset as i32).wrapping_sub(a.sequence)
                == (b.offset as i32).wrapping_sub(b.sequence)
            && (!log_append_time || a.timestamp == b.timestamp)
    };
    let mut start = 0;
    for same in kafka.chunk_by(same_batch) {
        let these = &records[start..start + same.len()];
        start += same.len();
        if repeats_a_header_key(these) {
            RecordBatchEncoder::encode_with_custom_compression(
                &mut buf,
                same.iter(),
                &options,
                Some(|_: &mut BytesMut, out: &mut BytesMut, _: Compression| {
                    write_records_section(out, these)
                }),
            )
        } else {
            RecordBatchEncoder::encode(&mut buf, same.iter(), &options)
        }
        .map_err(|e| e.to_string())?;
    }
    if log_append_time {
        mark_log_append_time(&mut buf)?;
    }
    Ok(buf.freeze())
}

/// Byte positions in a v2 record batch header.
const BATCH_LENGTH: usize = 8;
const CRC: usize = 17;
const ATTRIBUTES: usize = 21;
/// Attribute bit 3: the timestamps are LogAppendTime.
const LOG_APPEND_TIME_BIT: u8 = 1 << 3;

/// Sets the timestamp-type bit of every batch in `buf` and recomputes its CRC-32C (which
/// covers everything from the attributes on). The codec crate does not write this bit.
fn mark_log_append_time(buf: &mut BytesMut) -> Result<(), String> {
    let mut start = 0;
    while start < buf.len() {
        let header = buf
            .get(start + BATCH_LENGTH..start + BATCH_LENGTH + 4)
            .ok_or("truncated batch header")?;
        let length =
            u32::from_be_bytes(header.try_into().map_err(|_| "bad batch length")?) as usize;
        let end = start + BATCH_LENGTH + 4 + length;
        if end > buf.len() || length < ATTRIBUTES - BATCH_LENGTH {
            return Err("batch length beyond the buffer".into());
        }
        // Attributes are a big-endian i16: the bit is in the low byte.
        buf[start + ATTRIBUTES + 1] |= LOG_APPEND_TIME_BIT;
        let crc = crc32c::crc32c(&buf[start + ATTRIBUTES..end]);
        buf[start + CRC..start + CRC + 4].copy_from_slice(&crc.to_be_bytes());
        start = end;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(offset: i64, value: &str) -> ReadRecord {
        ReadRecord {
            offset,
            record: Record {
                timestamp_ms: 1000 + offset,
                key: Some(Bytes::from(format!("k{offset}"))),
                value: Some(Bytes::from(value.to_string())),
                headers: vec![Header {
                    key: "h".into(),
                    value: None,
                }],
            },
            batch: None,
        }
    }

    #[test]
    fn fetched_records_round_trip_through_one_batch() {
        let records = vec![read(40, "a"), read(41, "b"), read(42, "c")];
        let encoded = encode_batch(&records, false).expect("encodes");
        let batches = decode_batches(encoded.clone(), 0).expect("decodes");
        assert_eq!(batches.len(), 1, "one batch");
        let got: Vec<Record> = batches.into_iter().flat_map(|b| b.records).collect();
        let want: Vec<Record> = records.iter().map(|r| r.record.clone()).collect();
        assert_eq!(got, want);
        // The base offset is the first record's.
        assert_eq!(
            i64::from_be_bytes(encoded[..8].try_into().expect("8 bytes")),
            40
        );
    }

    fn with_headers(offset: i64, headers: &[(&str, Option<&str>)]) -> ReadRecord {
        let mut r = read(offset, "v");
        r.record.headers = headers
            .iter()
            .map(|(k, v)| Header {
                key: k.to_string(),
                value: v.map(|v| Bytes::from(v.to_string())),
            })
            .collect();
        r
    }

    #[test]
    fn producer_batches_go_out_as_their_own_batches_with_their_producer() {
        use silt_metadata::ProducerBatch;
        use silt_reader::BatchOrigin;
        let producer = |batch_offset, kind, base_sequence| {
            Some(BatchOrigin {
                batch_offset,
                producer: Some(ProducerBatch {
                    producer_id: 42,
                    epoch: 3,
                    base_sequence,
                }),
                kind,
            })
        };
        let mut records: Vec<ReadRecord> = (10..17).map(|o| read(o, "v")).collect();
        // 10, 11 plain; 12..15 a transactional batch of producer 42 (sequences from 7);
        // 15 its marker; 16 plain again.
        for r in &mut records[2..5] {
            r.batch = producer(12, BatchKind::Transactional, 7);
        }
        records[5].batch = producer(15, BatchKind::Marker, 0);
        let encoded = encode_batch(&records, false).expect("encodes");
        let mut buf = encoded.clone();
        let sets = RecordBatchDecoder::decode_all(&mut buf).expect("the codec reads it");
        let seen: Vec<(i64, i64, i16, i32, bool, bool)> = sets
            .iter()
            .flat_map(|s| &s.records)
            .map(|r| {
                (
                    r.offset,
                    r.producer_id,
                    r.producer_epoch,
                    r.sequence,
                    r.transactional,
                    r.control,
                )
            })
            .collect();
        assert_eq!(
            seen,
            [
                (10, -1, -1, 0, false, false),
                (11, -1, -1, 1, false, false),
                (12, 42, 3, 7, true, false),
                (13, 42, 3, 8, true, false),
                (14, 42, 3, 9, true, false),
                (15, 42, 3, 0, true, true),
                (16, -1, -1, 6, false, false),
            ]
        );
        assert_eq!(sets.len(), 4, "plain, transactional, marker, plain");
    }

    #[test]
    fn repeated_header_keys_survive_both_ways_in_order() {
        let records = vec![
            with_headers(7, &[("x", Some("1")), ("y", None), ("x", Some("2"))]),
            with_headers(8, &[]),
            with_headers(9, &[("", Some("a")), ("", Some("b"))]),
        ];
        for log_append_time in [false, true] {
            let encoded = encode_batch(&records, log_append_time).expect("encodes");
            // The codec still reads the batch (lengths and CRC are right)...
            let mut check = encoded.clone();
            RecordBatchDecoder::decode_all(&mut check).expect("the codec reads it");
            // ...and Silt reads every header back, in order.
            let got: Vec<Record> = decode_batches(encoded, 0)
                .expect("decodes")
                .into_iter()
                .flat_map(|b| b.records)
                .collect();
            let want: Vec<Record> = records.iter().map(|r| r.record.clone()).collect();
            assert_eq!(got, want);
        }
    }

    #[test]
    fn headers_are_read_back_from_every_compression() {
        let mut headers = IndexMap::new();
        headers.insert(StrBytes::from_static_str("trace"), Some(Bytes::from("t-1")));
        headers.insert(StrBytes::from_static_str("empty"), None);
        let records: Vec<KafkaRecord> = (0..5)
            .map(|i| KafkaRecord {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: NO_PARTITION_LEADER_EPOCH,
                producer_id: NO_PRODUCER_ID,
                producer_epoch: NO_PRODUCER_EPOCH,
                timestamp_type: TimestampType::Creation,
                offset: i,
                sequence: i as i32,
                timestamp: 1_000 + i,
                key: Some(Bytes::from(format!("k{i}"))),
                value: (i != 2).then(|| Bytes::from(vec![b'v'; 100 * i as usize])),
                headers: headers.clone(),
            })
            .collect();
        for compression in [
            Compression::None,
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let mut buf = BytesMut::new();
            let options = RecordEncodeOptions {
                version: 2,
                compression,
            };
            RecordBatchEncoder::encode(&mut buf, records.iter(), &options).expect("encodes");
            let got = decode_batches(buf.freeze(), 0).expect("decodes");
            let got: Vec<&Record> = got.iter().flat_map(|b| &b.records).collect();
            assert_eq!(got.len(), 5, "{compression:?}");
            for (r, k) in got.iter().zip(&records) {
                assert_eq!((&r.key, &r.value), (&k.key, &k.value), "{compression:?}");
                let names: Vec<&str> = r.headers.iter().map(|h| h.key.as_str()).collect();
                assert_eq!(names, ["trace", "empty"], "{compression:?}");
                assert_eq!(r.headers[0].value.as_deref(), Some(&b"t-1"[..]));
                assert_eq!(r.headers[1].value, None);
            }
        }
    }

    #[test]
    fn log_append_time_batches_carry_the_flag_and_a_valid_crc() {
        let (a, mut b) = (read(7, "a"), read(8, "b"));
        b.record.timestamp_ms = a.record.timestamp_ms;
        let encoded = encode_batch(&[a, b], true).expect("encodes");
        assert_eq!(
            encoded[ATTRIBUTES + 1] & LOG_APPEND_TIME_BIT,
            LOG_APPEND_TIME_BIT
        );
        let stored = u32::from_be_bytes(encoded[CRC..CRC + 4].try_into().expect("4 bytes"));
        assert_eq!(stored, crc32c::crc32c(&encoded[ATTRIBUTES..]));
        // The codec still reads it, and sees the timestamp type.
        let mut data = encoded.clone();
        let set = RecordBatchDecoder::decode(&mut data).expect("decodes");
        assert!(
            set.records
                .iter()
                .all(|r| r.timestamp_type == TimestampType::LogAppend)
        );
    }

    #[test]
    fn a_forged_record_count_is_refused_before_decoding() {
        let mut forged = encode_batch(&[read(0, "x")], false)
            .expect("encodes")
            .to_vec();
        forged[RECORD_COUNT..RECORD_COUNT + 4].copy_from_slice(&i32::MAX.to_be_bytes());
        let err = decode_batches(Bytes::from(forged), 0).expect_err("refused");
        assert!(err.contains("more than its bytes can hold"), "{err}");
    }

    #[test]
    fn log_append_time_records_of_different_times_get_their_own_batches() {
        let mut records = vec![read(0, "a"), read(1, "b"), read(2, "c")];
        records[1].record.timestamp_ms = records[0].record.timestamp_ms;
        let encoded = encode_batch(&records, true).expect("encodes");
        let batches = decode_batches(encoded, 0).expect("decodes");
        assert_eq!(batches.len(), 2);
        assert_eq!(batches[0].records.len(), 2);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(decode_batches(Bytes::from_static(b"\x00\x01garbage"), 0).is_err());
        let mut truncated = encode_batch(&[read(0, "x")], false)
            .expect("encodes")
            .to_vec();
        truncated.truncate(truncated.len() - 3);
        assert!(decode_batches(Bytes::from(truncated), 0).is_err());
    }
}
