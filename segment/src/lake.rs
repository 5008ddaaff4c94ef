//! The lake layout: per-partition Parquet files with absolute offsets, written by the
//! compactor, read in place by data-lake tools and by Silt's reader.

use std::sync::{Arc, LazyLock};

use arrow_array::{
    ArrayRef, BinaryArray, Int32Array, Int64Array, RecordBatch, TimestampMillisecondArray,
};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};

use crate::error::{Result, corrupt};
use crate::record::Record;
use crate::schema::{HEADERS, KEY, OFFSET, PARTITION, TIMESTAMP, VALUE, header_item_field};
use crate::write::{EncodedSegment, finish, headers_array, timestamp_range};

/// Folder (under the configured prefix) holding the lake files.
pub const LAKE_DIR: &str = "lake";

/// The object key of the lake file holding offsets `first..=last` of a partition:
/// `lake/<topic>/partition=<p>/<first>-<last>.parquet`, zero-padded so names sort by
/// offset (and Hive-style, so tools see a `partition` column).
pub fn lake_key(topic: &str, partition: i32, first: i64, last: i64) -> String {
    format!("{LAKE_DIR}/{topic}/partition={partition}/{first:020}-{last:020}.parquet")
}

static LAKE_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new(OFFSET, DataType::Int64, false),
        Field::new(
            TIMESTAMP,
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            false,
        ),
        Field::new(KEY, DataType::Binary, true),
        Field::new(VALUE, DataType::Binary, true),
        Field::new(HEADERS, DataType::List(header_item_field()), false),
        Field::new(PARTITION, DataType::Int32, false),
    ]))
});

/// The Arrow schema of lake files.
pub fn lake_schema() -> SchemaRef {
    LAKE_SCHEMA.clone()
}

fn lake_properties() -> Result<WriterProperties> {
    Ok(WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(3)?))
        // Row groups are cut by the caller; min/max per page and row group let readers
        // skip by offset and timestamp.
        .set_max_row_group_row_count(None)
        .set_max_row_group_bytes(None)
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_created_by("silt".into())
        .build())
}

/// Encodes consecutive records of one partition, starting at `first_offset`, into one
/// lake file with row groups of at most `rows_per_group` records. Each row group is
/// reported as a chunk (in order) so the index can point at it.
pub fn encode_lake(
    partition: i32,
    first_offset: i64,
    records: &[Record],
    rows_per_group: usize,
) -> Result<EncodedSegment> {
    encode_lake_runs(partition, &[(first_offset, records)], rows_per_group)
}

/// Encodes runs of consecutive records of one partition, each `(first offset, records)`,
/// in offset order, into one lake file: the offsets between runs (aborted transactions'
/// records, markers) are gaps, and no row group spans one, so each reported chunk still
/// holds consecutive offsets from its first.
pub fn encode_lake_runs(
    partition: i32,
    runs: &[(i64, &[Record])],
    rows_per_group: usize,
) -> Result<EncodedSegment> {
    if runs.iter().all(|(_, records)| records.is_empty()) {
        return Err(corrupt("a lake file needs at least one record"));
    }
    let mut last_end = i64::MIN;
    for (first, records) in runs {
        if *first < last_end {
            return Err(corrupt("lake runs overlap or are out of order"));
        }
        last_end = first + records.len() as i64;
    }
    let rows_per_group = rows_per_group.max(1);
    let mut writer = ArrowWriter::try_new(Vec::new(), lake_schema(), Some(lake_properties()?))?;
    let mut stats = Vec::new();
    let groups = runs.iter().flat_map(|(first, records)| {
        records
            .chunks(rows_per_group)
            .enumerate()
            .map(move |(i, group)| (first + (i * rows_per_group) as i64, group))
    });
    for (offset, group) in groups {
        let n = group.len() as i64;
        let batch = RecordBatch::try_new(
            lake_schema(),
            vec![
                Arc::new(Int64Array::from_iter_values(offset..offset + n)) as ArrayRef,
                Arc::new(
                    TimestampMillisecondArray::from_iter_values(
                        group.iter().map(|r| r.timestamp_ms),
                    )
                    .with_timezone("UTC"),
                ),
                Arc::new(BinaryArray::from_iter(
                    group.iter().map(|r| r.key.as_deref()),
                )),
                Arc::new(BinaryArray::from_iter(
                    group.iter().map(|r| r.value.as_deref()),
                )),
                headers_array(group)?,
                Arc::new(Int32Array::from(vec![partition; group.len()])),
            ],
        )?;
        writer.write(&batch)?;
        writer.flush()?;
        let (min, max) = timestamp_range(group);
        stats.push((group.len() as u32, min, max));
    }
    finish(writer, stats)
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::read::SegmentFooter;
    use crate::record::Header;

    fn record(i: i64) -> Record {
        Record {
            timestamp_ms: 1_700_000_000_000 + i,
            key: (i % 3 != 0).then(|| Bytes::from(format!("k{i}"))),
            value: Some(Bytes::from(format!("v{i}"))),
            headers: vec![Header {
                key: "h".into(),
                value: Some(Bytes::from_static(b"x")),
            }],
        }
    }

    #[test]
    fn lake_files_read_back_per_row_group_with_absolute_offsets() {
        let records: Vec<Record> = (0..25).map(record).collect();
        let encoded = encode_lake(3, 1000, &records, 10).expect("encodes");
        assert_eq!(
            encoded
                .chunks
                .iter()
                .map(|c| c.record_count)
                .collect::<Vec<_>>(),
            [10, 10, 5]
        );
        let footer = SegmentFooter::decode(
            encoded.data.slice(encoded.footer_range().start as usize..),
            encoded.data.len() as u64,
        )
        .expect("footer");
        let mut back = Vec::new();
        for c in &encoded.chunks {
            let bytes = encoded
                .data
                .slice(c.byte_start as usize..(c.byte_start + c.byte_len) as usize);
            back.extend(
                footer
                    .decode_chunk(c.row_group, c.byte_start, bytes)
                    .expect("decodes"),
            );
        }
        assert_eq!(back, records);
        assert_eq!(
            lake_key("orders", 3, 1000, 1024),
            "lake/orders/partition=3/00000000000000001000-00000000000000001024.parquet"
        );
    }

    #[test]
    fn runs_leave_gaps_and_no_row_group_spans_one() {
        use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
        let first: Vec<Record> = (0..5).map(record).collect();
        let second: Vec<Record> = (8..11).map(record).collect();
        let encoded = encode_lake_runs(0, &[(0, &first), (8, &second)], 4).expect("encodes");
        let counts: Vec<u32> = encoded.chunks.iter().map(|c| c.record_count).collect();
        assert_eq!(counts, [4, 1, 3], "a run's row groups end with it");
        let reader = ParquetRecordBatchReaderBuilder::try_new(encoded.data.clone())
            .expect("parquet")
            .build()
            .expect("reader");
        let mut offsets = Vec::new();
        for batch in reader {
            let batch = batch.expect("batch");
            let column = batch
                .column_by_name(OFFSET)
                .expect("offset column")
                .as_any()
                .downcast_ref::<Int64Array>()
                .expect("int64")
                .clone();
            offsets.extend(column.values().iter().copied());
        }
        assert_eq!(offsets, [0, 1, 2, 3, 4, 8, 9, 10]);
        assert!(encode_lake_runs(0, &[(8, &second), (0, &first)], 4).is_err());
        assert!(encode_lake_runs(0, &[(0, &[])], 4).is_err());
    }
}
