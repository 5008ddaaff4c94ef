//! The Parquet segment format and the object layout shared by ingest, reader and compactor.
//!
//! A raw segment is one immutable Parquet object holding chunks of many (topic, partition)
//! pairs, one row group per chunk. [`encode_segment`] turns chunks of [`Record`]s into the
//! object's bytes and tells, per chunk, where its row group lies ([`ChunkLocation`]), so a
//! reader can fetch just that byte range. [`SegmentFooter`] decodes the footer (fetched once
//! and cached) and [`SegmentFooter::decode_chunk`] decodes one row group from its bytes.
//!
//! The compactor rewrites a partition's records into lake files ([`encode_lake`]): one
//! partition per file, absolute offsets, row groups sized for scans; they decode the same
//! way, row group by row group.
//!
//! This crate knows nothing of object stores or the metadata service: it is the format only.

mod error;
mod lake;
mod layout;
mod read;
mod record;
mod schema;
mod write;

pub use error::{Result, SegmentError};
pub use lake::{LAKE_DIR, encode_lake, encode_lake_runs, lake_key, lake_schema};
pub use layout::{SEGMENTS_DIR, segment_key};
pub use read::SegmentFooter;
pub use record::{Header, Record};
pub use write::{
    CHUNK_CRC_KEY, ChunkInput, ChunkLocation, EncodedSegment, SegmentCompression, encode_segment,
    encode_segment_with,
};
