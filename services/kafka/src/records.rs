//! Converting between Kafka record batches and Silt records.

use bytes::{Bytes, BytesMut};
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, NO_PARTITION_LEADER_EPOCH, NO_PRODUCER_EPOCH, NO_PRODUCER_ID,
    Record as KafkaRecord, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions,
    TimestampType,
};
use silt_ingest::ProducerBatch;
use silt_reader::ReadRecord;
use silt_segment::{Header, Record};

/// One record batch as a producer sent it.
#[derive(Debug)]
pub(crate) struct IncomingBatch {
    pub(crate) records: Vec<Record>,
    /// Set for idempotent producers.
    pub(crate) producer: Option<ProducerBatch>,
    pub(crate) transactional: bool,
    pub(crate) control: bool,
}

/// Decodes every batch in a partition's `records` field (any compression codec).
pub(crate) fn decode_batches(mut data: Bytes, now_ms: i64) -> Result<Vec<IncomingBatch>, String> {
    let sets = RecordBatchDecoder::decode_all(&mut data).map_err(|e| e.to_string())?;
    let mut batches = Vec::with_capacity(sets.len());
    for set in sets {
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
        let records = set
            .records
            .into_iter()
            .map(|r| Record {
                timestamp_ms: if r.timestamp < 0 { now_ms } else { r.timestamp },
                key: r.key,
                value: r.value,
                headers: r
                    .headers
                    .into_iter()
                    .map(|(k, v)| Header {
                        key: k.to_string(),
                        value: v,
                    })
                    .collect(),
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

/// Encodes records (consecutive offsets) as one uncompressed v2 record batch, marked
/// LogAppendTime when the topic's broker clock stamped them.
pub(crate) fn encode_batch(records: &[ReadRecord], log_append_time: bool) -> Result<Bytes, String> {
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
            KafkaRecord {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: NO_PARTITION_LEADER_EPOCH,
                producer_id: NO_PRODUCER_ID,
                producer_epoch: NO_PRODUCER_EPOCH,
                timestamp_type,
                offset: r.offset,
                // Relative to the batch, so the encoder keeps every record in one batch.
                sequence: (r.offset - first.offset) as i32,
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
    RecordBatchEncoder::encode(&mut buf, kafka.iter(), &options).map_err(|e| e.to_string())?;
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

    #[test]
    fn log_append_time_batches_carry_the_flag_and_a_valid_crc() {
        let encoded = encode_batch(&[read(7, "a"), read(8, "b")], true).expect("encodes");
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
    fn garbage_is_an_error_not_a_panic() {
        assert!(decode_batches(Bytes::from_static(b"\x00\x01garbage"), 0).is_err());
        let mut truncated = encode_batch(&[read(0, "x")], false)
            .expect("encodes")
            .to_vec();
        truncated.truncate(truncated.len() - 3);
        assert!(decode_batches(Bytes::from(truncated), 0).is_err());
    }
}
