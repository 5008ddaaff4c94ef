//! Ingest: turns appended records into committed segments.
//!
//! Callers append records for any topic and partition; [`Ingest`] buffers them across
//! partitions for a short linger (or until a size cap), encodes ONE segment object with a
//! chunk per partition (off the async runtime), PUTs it to the object store, announces it
//! to a [`SegmentListener`] (the binary wires this to the reader's cache), commits it to
//! the metadata service, and only then acknowledges each caller with its offsets. Bytes
//! waiting in ingest are capped: past the cap, callers wait. Depends on `silt-segment`,
//! `silt-metadata` (the log role) and `object_store`; knows nothing of the front doors or the reader.

mod batcher;
mod config;
mod error;
mod flush;
mod rules;

pub use batcher::{AppendAck, Ingest, PendingAppend, SegmentListener, WrittenSegment};
pub use config::IngestConfig;
pub use error::IngestError;
pub use rules::{ProduceRefusal, ProduceRules, TopicDefaults, partition_for_key};
pub use silt_metadata::{BatchKind, ProducerBatch};
pub use silt_segment::SegmentCompression;
