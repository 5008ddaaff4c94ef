use silt_metadata::{ErrorKind, MetadataError};
use silt_segment::SegmentError;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ReaderError {
    #[error(transparent)]
    Metadata(#[from] MetadataError),
    #[error(
        "offset {offset} of {topic}/{partition} is out of range [{log_start_offset}, {high_watermark}]"
    )]
    OffsetOutOfRange {
        topic: String,
        partition: i32,
        offset: i64,
        log_start_offset: i64,
        high_watermark: i64,
    },
    #[error("reading object {key} failed: {source}")]
    ObjectStore {
        key: String,
        #[source]
        source: object_store::Error,
    },
    #[error("decoding object {key} failed: {source}")]
    Segment {
        key: String,
        #[source]
        source: SegmentError,
    },
    /// The object decoded, but not into what the index says is there.
    #[error("object {key} is corrupt: {reason}")]
    Corrupt { key: String, reason: String },
    #[error("cache error: {source}")]
    Cache {
        #[source]
        source: foyer::Error,
    },
    #[error("internal error: {reason}")]
    Internal { reason: String },
}

impl ReaderError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Metadata(e) => e.kind(),
            Self::OffsetOutOfRange { .. } => ErrorKind::Invalid,
            Self::ObjectStore { source, .. } => match source {
                object_store::Error::NotFound { .. } => ErrorKind::Internal,
                _ => ErrorKind::Unavailable,
            },
            Self::Segment { .. }
            | Self::Corrupt { .. }
            | Self::Cache { .. }
            | Self::Internal { .. } => ErrorKind::Internal,
        }
    }
}
