//! Reader: serves consumption by offset or timestamp.
//!
//! [`Reader::fetch`] looks the offset up in the metadata service's segment index, reads
//! only the byte ranges of the chunks it needs (the segment footer once, then one range per
//! chunk) through a foyer hybrid cache (memory + local disk), and returns records in offset
//! order. When the consumer is at the high watermark it long-polls on the metadata
//! service's notification. Segments written by ingest on the same node are handed to
//! [`Reader::cache_segment`] so a tailing consumer reads no object at all.
//! Depends on `silt-segment`, `silt-metadata` (the log role) and `object_store`.

mod cache;
mod config;
mod error;
mod fetch;
mod wait;

pub use config::ReaderConfig;
pub use error::ReaderError;
pub use fetch::{BatchOrigin, FetchRequest, FetchResult, ReadRecord, Reader};
pub use wait::{PartitionWatch, Woken};
