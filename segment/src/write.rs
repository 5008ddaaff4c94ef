//! Encoding chunks of records into one segment object.

use std::sync::Arc;

use arrow_array::{
    ArrayRef, BinaryArray, Int32Array, ListArray, RecordBatch, StringArray, StructArray,
    TimestampMillisecondArray,
};
use arrow_buffer::OffsetBuffer;
use bytes::Bytes;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;

use crate::error::{Result, SegmentError, corrupt};
use crate::record::Record;
use crate::schema::{VALUE, header_fields, header_item_field, segment_schema};

/// The records of one (topic, partition) pair to put in a segment, in offset order.
#[derive(Debug, Clone, Copy)]
pub struct ChunkInput<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub records: &'a [Record],
}

/// Where one chunk landed in the segment: what a reader needs to fetch just that chunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkLocation {
    pub row_group: usize,
    /// Byte offset of the row group's first column chunk within the object.
    pub byte_start: u64,
    /// Length in bytes of the row group's column chunks.
    pub byte_len: u64,
    pub record_count: u32,
    pub min_timestamp_ms: i64,
    pub max_timestamp_ms: i64,
}

/// A fully encoded segment object.
#[derive(Debug, Clone)]
pub struct EncodedSegment {
    pub data: Bytes,
    /// Length of the Parquet footer (metadata, its length and the magic) at the end.
    pub footer_len: u64,
    /// CRC-32C of the footer bytes. The footer holds the row groups' checksums, so it
    /// cannot hold its own: the metadata index keeps it, and readers check it.
    pub footer_crc: u32,
    /// One entry per input chunk, in input order.
    pub chunks: Vec<ChunkLocation>,
}

impl EncodedSegment {
    /// The byte range of the footer within the object.
    pub fn footer_range(&self) -> std::ops::Range<u64> {
        let len = self.data.len() as u64;
        len - self.footer_len..len
    }
}

/// The codec of raw segment pages. Raw segments live until the compactor rewrites them
/// (lake files always use zstd), so the default favours the ingest CPU: LZ4 encodes
/// 1.4–1.7× faster than zstd level 1 (`cargo bench -p silt-segment`); zstd writes fewer
/// bytes when payloads compress well.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SegmentCompression {
    #[default]
    Lz4,
    /// zstd level 1.
    Zstd,
    None,
}

fn writer_properties(compression: SegmentCompression) -> Result<WriterProperties> {
    let compression = match compression {
        SegmentCompression::Lz4 => Compression::LZ4_RAW,
        SegmentCompression::Zstd => Compression::ZSTD(ZstdLevel::try_new(1)?),
        SegmentCompression::None => Compression::UNCOMPRESSED,
    };
    // Values are payloads: a dictionary rarely pays off (and hashing every value to find
    // out costs more than encoding it), and min/max statistics of them serve nobody.
    let value = ColumnPath::from(VALUE);
    Ok(WriterProperties::builder()
        .set_compression(compression)
        .set_column_dictionary_enabled(value.clone(), false)
        .set_column_statistics_enabled(value, EnabledStatistics::None)
        // One row group per chunk: the writer must never split a chunk on its own.
        .set_max_row_group_row_count(None)
        .set_max_row_group_bytes(None)
        .build())
}

/// Encodes `chunks` with the default compression (see [`encode_segment_with`]).
pub fn encode_segment(chunks: &[ChunkInput<'_>]) -> Result<EncodedSegment> {
    encode_segment_with(chunks, SegmentCompression::default())
}

/// Encodes `chunks` into one Parquet object, one row group per chunk, in the given order.
/// CPU-bound: call it off the async runtime for large segments.
pub fn encode_segment_with(
    chunks: &[ChunkInput<'_>],
    compression: SegmentCompression,
) -> Result<EncodedSegment> {
    let schema = segment_schema();
    // Sized for the records up front: growing an 8 MiB buffer by doubling copies it
    // several times over and faults in fresh pages each time.
    let estimate: usize = chunks
        .iter()
        .flat_map(|c| c.records)
        .map(Record::size_estimate)
        .sum();
    let output = Vec::with_capacity(estimate + estimate / 8 + 64 * 1024);
    let mut writer = ArrowWriter::try_new(
        output,
        schema.clone(),
        Some(writer_properties(compression)?),
    )?;
    let mut stats = Vec::with_capacity(chunks.len());
    for chunk in chunks {
        if chunk.records.is_empty() {
            return Err(corrupt(format!(
                "empty chunk for {}/{}",
                chunk.topic, chunk.partition
            )));
        }
        let count =
            i32::try_from(chunk.records.len()).map_err(|_| SegmentError::ChunkTooLarge {
                topic: chunk.topic.to_string(),
                partition: chunk.partition,
                records: chunk.records.len(),
            })?;
        let batch = chunk_batch(chunk, count)?;
        writer.write(&batch)?;
        writer.flush()?;
        let (min, max) = timestamp_range(chunk.records);
        stats.push((count as u32, min, max));
    }
    finish(writer, stats)
}

/// Row-group statistics gathered while writing: record count, min and max timestamp.
pub(crate) type GroupStats = (u32, i64, i64);

/// Min and max timestamp of some records.
pub(crate) fn timestamp_range(records: &[Record]) -> (i64, i64) {
    records.iter().fold((i64::MAX, i64::MIN), |(lo, hi), r| {
        (lo.min(r.timestamp_ms), hi.max(r.timestamp_ms))
    })
}

/// Key of the footer entry holding each row group's CRC-32C, in row-group order: hex
/// words separated by commas, each over the row group's byte range (its column chunks).
/// Parquet's own page checksums are optional and this writer does not produce them; a
/// flipped bit inside an LZ4 or uncompressed page would otherwise decode as a wrong value.
pub const CHUNK_CRC_KEY: &str = "silt.chunk_crc32c";

/// Byte range of a row group: from its first column chunk to the end of its last. A
/// footer read from storage may be damaged: a negative or overflowing position is an
/// error here (the Parquet crate's own `byte_range` panics on those).
pub(crate) fn row_group_range(
    rg: &parquet::file::metadata::RowGroupMetaData,
) -> Result<(u64, u64)> {
    let mut range = (u64::MAX, 0u64);
    for column in rg.columns() {
        let start = column
            .dictionary_page_offset()
            .unwrap_or_else(|| column.data_page_offset());
        let (Ok(start), Ok(len)) = (
            u64::try_from(start),
            u64::try_from(column.compressed_size()),
        ) else {
            return Err(corrupt("negative column chunk position"));
        };
        let end = start
            .checked_add(len)
            .ok_or_else(|| corrupt("column chunk past the end of any object"))?;
        range = (range.0.min(start), range.1.max(end));
    }
    if range.0 > range.1 {
        return Err(corrupt("row group without columns"));
    }
    Ok(range)
}

/// Closes the file and reports where each row group (one per `stats` entry) landed.
pub(crate) fn finish(
    mut writer: ArrowWriter<Vec<u8>>,
    stats: Vec<GroupStats>,
) -> Result<EncodedSegment> {
    // Every row group is flushed: checksum their bytes and record the sums in the footer.
    writer
        .sync()
        .map_err(|e| corrupt(format!("flushing the encoder: {e}")))?;
    let sums = writer
        .flushed_row_groups()
        .iter()
        .map(|rg| {
            let (start, end) = row_group_range(rg)?;
            let bytes = writer
                .inner()
                .get(start as usize..end as usize)
                .ok_or_else(|| corrupt("row group outside the written bytes"))?;
            Ok(format!("{:08x}", crc32c::crc32c(bytes)))
        })
        .collect::<Result<Vec<_>>>()?;
    writer.append_key_value_metadata(parquet::file::metadata::KeyValue::new(
        CHUNK_CRC_KEY.to_string(),
        sums.join(","),
    ));
    let metadata = writer.finish()?;
    let mut data = std::mem::take(writer.inner_mut());
    // The buffer was sized for uncompressed records: give back what compression saved,
    // or every holder of the segment's bytes would keep the slack alive.
    data.shrink_to_fit();
    let data = Bytes::from(data);
    let row_groups = metadata.row_groups();
    if row_groups.len() != stats.len() {
        return Err(corrupt(format!(
            "wrote {} row groups where {} were cut",
            row_groups.len(),
            stats.len()
        )));
    }
    let chunks = row_groups
        .iter()
        .zip(stats)
        .enumerate()
        .map(|(index, (rg, (count, min, max)))| {
            let (start, end) = row_group_range(rg)?;
            Ok(ChunkLocation {
                row_group: index,
                byte_start: start,
                byte_len: end - start,
                record_count: count,
                min_timestamp_ms: min,
                max_timestamp_ms: max,
            })
        })
        .collect::<Result<_>>()?;
    let footer_len = footer_len(&data)?;
    let footer_crc = crc32c::crc32c(&data[data.len() - footer_len as usize..]);
    Ok(EncodedSegment {
        data,
        footer_len,
        footer_crc,
        chunks,
    })
}

/// Length of the footer: metadata length (little-endian u32), then `PAR1`.
pub(crate) fn footer_len(data: &[u8]) -> Result<u64> {
    let n = data.len();
    if n < 12 || &data[n - 4..] != b"PAR1" {
        return Err(corrupt("missing parquet magic"));
    }
    let mut len = [0u8; 4];
    len.copy_from_slice(&data[n - 8..n - 4]);
    Ok(u64::from(u32::from_le_bytes(len)) + 8)
}

fn chunk_batch(chunk: &ChunkInput<'_>, count: i32) -> Result<RecordBatch> {
    let records = chunk.records;
    let n = records.len();
    let topic: ArrayRef = Arc::new(StringArray::from(vec![chunk.topic; n]));
    let partition: ArrayRef = Arc::new(Int32Array::from(vec![chunk.partition; n]));
    let relative: ArrayRef = Arc::new(Int32Array::from_iter_values(0..count));
    let timestamp: ArrayRef = Arc::new(
        TimestampMillisecondArray::from_iter_values(records.iter().map(|r| r.timestamp_ms))
            .with_timezone("UTC"),
    );
    let key: ArrayRef = Arc::new(BinaryArray::from_iter(
        records.iter().map(|r| r.key.as_deref()),
    ));
    let value: ArrayRef = Arc::new(BinaryArray::from_iter(
        records.iter().map(|r| r.value.as_deref()),
    ));
    let headers = headers_array(records)?;
    Ok(RecordBatch::try_new(
        segment_schema(),
        vec![topic, partition, relative, timestamp, key, value, headers],
    )?)
}

pub(crate) fn headers_array(records: &[Record]) -> Result<ArrayRef> {
    let lengths = records.iter().map(|r| r.headers.len());
    let offsets = OffsetBuffer::<i32>::from_lengths(lengths);
    let all = records.iter().flat_map(|r| r.headers.iter());
    let keys = StringArray::from_iter_values(all.clone().map(|h| h.key.as_str()));
    let values = BinaryArray::from_iter(all.map(|h| h.value.as_deref()));
    let entries = StructArray::try_new(
        header_fields(),
        vec![Arc::new(keys) as ArrayRef, Arc::new(values) as ArrayRef],
        None,
    )?;
    Ok(Arc::new(ListArray::try_new(
        header_item_field(),
        offsets,
        Arc::new(entries),
        None,
    )?))
}
