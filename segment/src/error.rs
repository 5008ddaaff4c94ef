use thiserror::Error;

/// Errors from encoding or decoding a segment.
#[derive(Debug, Error)]
pub enum SegmentError {
    #[error("parquet error: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    #[error("arrow error: {0}")]
    Arrow(#[from] arrow_schema::ArrowError),
    #[error("segment is corrupt: {reason}")]
    Corrupt { reason: String },
    #[error("row group {row_group} does not exist (segment has {count})")]
    NoSuchRowGroup { row_group: usize, count: usize },
    #[error("chunk for {topic}/{partition} has {records} records, more than a chunk can hold")]
    ChunkTooLarge {
        topic: String,
        partition: i32,
        records: usize,
    },
}

pub type Result<T, E = SegmentError> = std::result::Result<T, E>;

pub(crate) fn corrupt(reason: impl Into<String>) -> SegmentError {
    SegmentError::Corrupt {
        reason: reason.into(),
    }
}
