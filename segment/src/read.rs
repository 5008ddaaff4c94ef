//! Decoding a segment's footer and single chunks from byte ranges.

use std::fmt;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Int32Type, Int64Type, TimestampMillisecondType};
use arrow_array::{Array, BinaryArray, RecordBatch};
use bytes::{Buf, Bytes};
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder,
};
use parquet::errors::ParquetError;
use parquet::file::metadata::{ParquetMetaData, ParquetMetaDataReader};
use parquet::file::reader::{ChunkReader, Length};

use crate::error::{Result, SegmentError, corrupt};
use crate::record::{Header, Record};
use crate::schema::{HEADERS, KEY, OFFSET, RELATIVE_OFFSET, TIMESTAMP, VALUE};
use crate::write::{CHUNK_CRC_KEY, row_group_range};

/// A window onto part of an object: `data` holds the bytes at `start..start + data.len()`
/// of an object `file_len` bytes long. Parquet reads outside the window are errors, which
/// proves that a chunk read needs nothing but the footer and its own byte range.
struct Window {
    file_len: u64,
    start: u64,
    data: Bytes,
}

impl Window {
    fn slice(&self, start: u64, length: usize) -> parquet::errors::Result<Bytes> {
        let end = start + length as u64;
        let window_end = self.start + self.data.len() as u64;
        if start < self.start || end > window_end {
            return Err(ParquetError::General(format!(
                "read of {start}..{end} outside the fetched range {}..{window_end}",
                self.start
            )));
        }
        let from = (start - self.start) as usize;
        Ok(self.data.slice(from..from + length))
    }
}

impl Length for Window {
    fn len(&self) -> u64 {
        self.file_len
    }
}

impl ChunkReader for Window {
    type T = bytes::buf::Reader<Bytes>;

    fn get_read(&self, start: u64) -> parquet::errors::Result<Self::T> {
        let window_end = self.start + self.data.len() as u64;
        let length = window_end.saturating_sub(start) as usize;
        Ok(self.slice(start, length)?.reader())
    }

    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<Bytes> {
        self.slice(start, length)
    }
}

/// The decoded footer of one segment object: enough to decode any of its chunks.
/// Cheap to clone (shared metadata).
#[derive(Clone)]
pub struct SegmentFooter {
    metadata: ArrowReaderMetadata,
    file_len: u64,
    /// CRC-32C of each row group's bytes ([`CHUNK_CRC_KEY`]).
    chunk_crcs: Arc<[u32]>,
}

impl fmt::Debug for SegmentFooter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SegmentFooter")
            .field("file_len", &self.file_len)
            .field("row_groups", &self.row_groups())
            .finish()
    }
}

impl SegmentFooter {
    /// Like [`decode`](Self::decode), after checking the footer bytes against the CRC-32C
    /// recorded when the object was written (`None`: nothing to check against).
    pub fn decode_checked(footer: Bytes, file_len: u64, crc: Option<u32>) -> Result<Self> {
        if let Some(stored) = crc {
            let computed = crc32c::crc32c(&footer);
            if computed != stored {
                return Err(corrupt(format!(
                    "the footer fails its checksum (stored {stored:08x}, computed {computed:08x})"
                )));
            }
        }
        Self::decode(footer, file_len)
    }

    /// Decodes the footer from the last `footer.len()` bytes of an object of `file_len` bytes.
    pub fn decode(footer: Bytes, file_len: u64) -> Result<Self> {
        let footer_len = footer.len() as u64;
        if footer_len > file_len {
            return Err(corrupt("footer longer than the object"));
        }
        let window = Window {
            file_len,
            start: file_len - footer_len,
            data: footer,
        };
        let metadata = std::panic::catch_unwind(|| {
            let mut reader = ParquetMetaDataReader::new();
            reader.try_parse_sized(&window, file_len)?;
            reader.finish()
        })
        .map_err(|panic| decoder_panic(panic.as_ref()))??;
        // Every column chunk must lie inside the object before anything reads it (a
        // damaged position would otherwise panic deep in the decoder).
        for rg in metadata.row_groups() {
            let (_, end) = row_group_range(rg)?;
            if end > file_len {
                return Err(corrupt("row group past the end of the object"));
            }
        }
        let chunk_crcs = chunk_crcs(&metadata)?;
        let metadata = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            ArrowReaderMetadata::try_new(metadata.into(), ArrowReaderOptions::new())
        }))
        .map_err(|panic| decoder_panic(panic.as_ref()))??;
        Ok(Self {
            metadata,
            file_len,
            chunk_crcs,
        })
    }

    pub fn row_groups(&self) -> usize {
        self.metadata.metadata().num_row_groups()
    }

    /// The byte range of row group `row_group` within the object (its column chunks).
    pub fn row_group_range(&self, row_group: usize) -> Result<std::ops::Range<u64>> {
        let count = self.row_groups();
        if row_group >= count {
            return Err(SegmentError::NoSuchRowGroup { row_group, count });
        }
        let (start, end) = row_group_range(self.metadata.metadata().row_group(row_group))?;
        Ok(start..end)
    }

    /// Approximate bytes of memory the decoded footer occupies (for cache weighting).
    pub fn memory_size(&self) -> usize {
        self.metadata.metadata().memory_size()
    }

    /// Decodes the records of row group `row_group`, given the bytes of the object at
    /// `byte_start..byte_start + bytes.len()` (the chunk's byte range). Records come back in
    /// offset order: element `i` has offset `base_offset + i`.
    pub fn decode_chunk(
        &self,
        row_group: usize,
        byte_start: u64,
        bytes: Bytes,
    ) -> Result<Vec<Record>> {
        let count = self.row_groups();
        if row_group >= count {
            return Err(SegmentError::NoSuchRowGroup { row_group, count });
        }
        let window = Window {
            file_len: self.file_len,
            start: byte_start,
            data: bytes,
        };
        let (start, end) = row_group_range(self.metadata.metadata().row_group(row_group))?;
        let length = usize::try_from(end.saturating_sub(start))
            .map_err(|_| corrupt("row group longer than memory"))?;
        let computed = crc32c::crc32c(&window.slice(start, length)?);
        let stored = self.chunk_crcs[row_group];
        if computed != stored {
            return Err(corrupt(format!(
                "row group {row_group} fails its checksum (stored {stored:08x}, computed {computed:08x})"
            )));
        }
        let metadata = self.metadata.clone();
        // The data passed its checksum, but a damaged footer can still describe it wrongly,
        // and the Parquet decoder panics on some such descriptions: turn those into errors.
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let reader = ParquetRecordBatchReaderBuilder::new_with_metadata(window, metadata)
                .with_row_groups(vec![row_group])
                .with_batch_size(8192)
                .build()?;
            let mut records = Vec::new();
            let mut first = None;
            for batch in reader {
                append_records(&batch?, &mut records, &mut first)?;
            }
            Ok(records)
        }))
        .unwrap_or_else(|panic| Err(decoder_panic(panic.as_ref())))
    }
}

/// The error for a panic of the Parquet decoder on damaged input.
fn decoder_panic(panic: &(dyn std::any::Any + Send)) -> SegmentError {
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_default();
    corrupt(format!(
        "the Parquet decoder failed on this data: {message}"
    ))
}

/// Reads the row-group checksums from the footer. Every object Silt writes has them: an
/// object without them is damaged (a footer whose entry was hit would otherwise turn the
/// checks off).
fn chunk_crcs(metadata: &ParquetMetaData) -> Result<Arc<[u32]>> {
    let entry = metadata
        .file_metadata()
        .key_value_metadata()
        .and_then(|kv| kv.iter().find(|e| e.key == CHUNK_CRC_KEY))
        .ok_or_else(|| corrupt("the footer holds no row-group checksums"))?;
    let text = entry.value.as_deref().unwrap_or_default();
    let crcs = if text.is_empty() {
        Vec::new()
    } else {
        text.split(',')
            .map(|word| u32::from_str_radix(word, 16))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| corrupt("unreadable row-group checksums"))?
    };
    if crcs.len() != metadata.num_row_groups() {
        return Err(corrupt(format!(
            "{} row-group checksums for {} row groups",
            crcs.len(),
            metadata.num_row_groups()
        )));
    }
    Ok(crcs.into())
}

fn column<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a dyn Array> {
    batch
        .column_by_name(name)
        .map(|c| c.as_ref())
        .ok_or_else(|| corrupt(format!("missing column {name}")))
}

fn binary<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a BinaryArray> {
    column(batch, name)?
        .as_binary_opt::<i32>()
        .ok_or_else(|| corrupt(format!("column {name} is not binary")))
}

fn opt_bytes(array: &BinaryArray, i: usize) -> Option<Bytes> {
    array
        .is_valid(i)
        .then(|| Bytes::copy_from_slice(array.value(i)))
}

/// How rows are numbered: raw segments count from 0 within a chunk, lake files carry
/// absolute offsets. Either way a row group's rows must be consecutive.
enum Numbering<'a> {
    Relative(&'a arrow_array::Int32Array),
    Absolute(&'a arrow_array::Int64Array),
}

fn append_records(
    batch: &RecordBatch,
    out: &mut Vec<Record>,
    first: &mut Option<i64>,
) -> Result<()> {
    let numbering = if batch.column_by_name(OFFSET).is_some() {
        Numbering::Absolute(
            column(batch, OFFSET)?
                .as_primitive_opt::<Int64Type>()
                .ok_or_else(|| corrupt("offset is not int64"))?,
        )
    } else {
        Numbering::Relative(
            column(batch, RELATIVE_OFFSET)?
                .as_primitive_opt::<Int32Type>()
                .ok_or_else(|| corrupt("relative_offset is not int32"))?,
        )
    };
    let timestamp = column(batch, TIMESTAMP)?
        .as_primitive_opt::<TimestampMillisecondType>()
        .ok_or_else(|| corrupt("timestamp is not timestamp(ms)"))?;
    let key = binary(batch, KEY)?;
    let value = binary(batch, VALUE)?;
    let headers = column(batch, HEADERS)?
        .as_list_opt::<i32>()
        .ok_or_else(|| corrupt("headers is not a list"))?;
    let entries = headers
        .values()
        .as_struct_opt()
        .ok_or_else(|| corrupt("header entries are not structs"))?;
    let header_keys = entries
        .column(0)
        .as_string_opt::<i32>()
        .ok_or_else(|| corrupt("header key is not a string"))?;
    let header_values = entries
        .column(1)
        .as_binary_opt::<i32>()
        .ok_or_else(|| corrupt("header value is not binary"))?;

    for i in 0..batch.num_rows() {
        let expected = out.len() as i64;
        let got = match numbering {
            Numbering::Relative(relative) => i64::from(relative.value(i)),
            Numbering::Absolute(absolute) => {
                absolute.value(i) - *first.get_or_insert(absolute.value(i))
            }
        };
        if got != expected {
            return Err(corrupt(format!(
                "row {got} of the chunk where {expected} was expected"
            )));
        }
        let offsets = headers.value_offsets();
        let (from, to) = (offsets[i] as usize, offsets[i + 1] as usize);
        let headers = (from..to)
            .map(|h| Header {
                key: header_keys.value(h).to_string(),
                value: opt_bytes(header_values, h),
            })
            .collect();
        out.push(Record {
            timestamp_ms: timestamp.value(i),
            key: opt_bytes(key, i),
            value: opt_bytes(value, i),
            headers,
        });
    }
    Ok(())
}
