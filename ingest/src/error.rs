use std::sync::Arc;

use silt_metadata::{ErrorKind, MetadataError};
use silt_segment::SegmentError;
use thiserror::Error;

/// Why an append was not acknowledged. Nothing of a failed append is visible to readers.
/// Cheap to clone: one failed segment fails every caller waiting on it.
#[derive(Debug, Clone, Error)]
pub enum IngestError {
    #[error("ingest is shutting down")]
    ShuttingDown,
    #[error("batch of {size} bytes is larger than the ingest buffer ({max} bytes)")]
    BatchTooLarge { size: usize, max: usize },
    #[error("empty batch")]
    EmptyBatch,
    #[error("writing segment {key} failed: {source}")]
    ObjectStore {
        key: String,
        #[source]
        source: Arc<object_store::Error>,
    },
    #[error("encoding a segment failed: {source}")]
    Encode {
        #[source]
        source: Arc<SegmentError>,
    },
    #[error("committing segment {key} failed: {source}")]
    Commit {
        key: String,
        #[source]
        source: Arc<MetadataError>,
    },
    #[error(transparent)]
    Rejected { source: Arc<MetadataError> },
    #[error("internal error: {reason}")]
    Internal { reason: String },
}

impl IngestError {
    /// Whether the caller may retry, should fix its request, or neither.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::ShuttingDown | Self::ObjectStore { .. } => ErrorKind::Unavailable,
            Self::BatchTooLarge { .. } | Self::EmptyBatch => ErrorKind::Invalid,
            Self::Commit { source, .. } => match source.kind() {
                ErrorKind::Unavailable => ErrorKind::Unavailable,
                _ => ErrorKind::Internal,
            },
            Self::Rejected { source } => source.kind(),
            Self::Encode { .. } | Self::Internal { .. } => ErrorKind::Internal,
        }
    }
}
