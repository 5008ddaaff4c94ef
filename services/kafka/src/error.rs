//! Errors of the Kafka door, and the mapping of Silt's errors to Kafka error codes.

use kafka_protocol::ResponseError;
use silt_ingest::IngestError;
use silt_metadata::{ErrorKind, MetadataError};
use silt_reader::ReaderError;
use thiserror::Error;

/// Errors that close a connection (the client sent something we cannot answer).
#[derive(Debug, Error)]
pub enum KafkaError {
    #[error("i/o: {0}")]
    Io(#[source] std::io::Error),
    #[error("frame of {size} bytes (the limit is {max})")]
    FrameSize { size: i32, max: usize },
    #[error("malformed request: {0}")]
    Malformed(String),
    #[error("unknown API key {key} (version {version})")]
    UnknownApi { key: i16, version: i16 },
    #[error("unsupported version {version} of {api}")]
    UnsupportedVersion { api: String, version: i16 },
    #[error("encoding a response failed: {0}")]
    Encode(String),
    /// A request that takes no answer (acks=0) was refused by ACLs: as Kafka, the
    /// connection is closed so the client notices.
    #[error("not authorised: {0}")]
    Unauthorized(String),
}

/// The Kafka error code for a metadata error.
pub(crate) fn metadata_code(e: &MetadataError) -> i16 {
    let error = match e {
        MetadataError::UnknownTopic { .. } | MetadataError::UnknownPartition { .. } => {
            ResponseError::UnknownTopicOrPartition
        }
        MetadataError::TopicExists { .. } => ResponseError::TopicAlreadyExists,
        MetadataError::InvalidTopicName { .. } => ResponseError::InvalidTopicException,
        MetadataError::InvalidPartitionCount { .. } => ResponseError::InvalidPartitions,
        MetadataError::InvalidConfig { .. } => ResponseError::InvalidConfig,
        MetadataError::OutOfOrderSequence { .. } => ResponseError::OutOfOrderSequenceNumber,
        MetadataError::ProducerFenced { .. } => ResponseError::InvalidProducerEpoch,
        MetadataError::UnknownProducerId { .. } => ResponseError::UnknownProducerId,
        MetadataError::InvalidGroupId { .. } => ResponseError::InvalidGroupId,
        MetadataError::InvalidRequest { .. } => ResponseError::InvalidRequest,
        MetadataError::InvalidTxnState { .. } => ResponseError::InvalidTxnState,
        other => match other.kind() {
            ErrorKind::Unavailable => ResponseError::KafkaStorageError,
            _ => ResponseError::UnknownServerError,
        },
    };
    error.code()
}

/// The Kafka error code for a failed append.
///
/// Idempotent producers act on the difference between "not written" and "maybe written":
/// librdkafka re-sends a batch it believes was not written under a new epoch and new
/// sequence numbers once it bumps its epoch (a duplicate if it was written after all),
/// while a batch that may have been written is retried with its own sequence numbers
/// (which the commit recognises). So:
/// - a commit whose outcome is unknown (the metadata service's answer was lost, or none
///   answered in time) is REQUEST_TIMED_OUT, Kafka's "may have been written";
/// - a batch refused because an earlier batch of its producer is missing (a sequence gap:
///   that batch failed on this node, for instance its upload failed, and its retry has not
///   arrived yet) is KAFKA_STORAGE_ERROR, retriable and "not written", rather than
///   OUT_OF_ORDER_SEQUENCE_NUMBER, on which librdkafka bumps its epoch. The retries then
///   arrive in sequence order and are committed in order.
pub(crate) fn ingest_code(e: &IngestError) -> i16 {
    match e {
        IngestError::Rejected { source } => match source.as_ref() {
            MetadataError::OutOfOrderSequence { expected, got, .. } if got > expected => {
                ResponseError::KafkaStorageError.code()
            }
            other => metadata_code(other),
        },
        IngestError::BatchTooLarge { .. } => ResponseError::MessageTooLarge.code(),
        IngestError::EmptyBatch => ResponseError::CorruptMessage.code(),
        IngestError::Commit { source, .. } if source.kind() == ErrorKind::Unavailable => {
            ResponseError::RequestTimedOut.code()
        }
        IngestError::Commit { source, .. } => metadata_code(source),
        // Retriable: the producer sends the batch again (idempotence keeps it single).
        IngestError::ShuttingDown | IngestError::ObjectStore { .. } => {
            ResponseError::KafkaStorageError.code()
        }
        IngestError::Encode { .. } | IngestError::Internal { .. } => {
            ResponseError::UnknownServerError.code()
        }
    }
}

/// The Kafka error code for a failed fetch.
pub(crate) fn reader_code(e: &ReaderError) -> i16 {
    match e {
        ReaderError::Metadata(m) => metadata_code(m),
        ReaderError::OffsetOutOfRange { .. } => ResponseError::OffsetOutOfRange.code(),
        // The data of this range is unreadable (missing, corrupt, or the store is down):
        // Kafka's answer for a log directory it cannot read.
        ReaderError::ObjectStore { .. }
        | ReaderError::Segment { .. }
        | ReaderError::Corrupt { .. } => ResponseError::KafkaStorageError.code(),
        _ => ResponseError::UnknownServerError.code(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idempotent_producers_are_told_written_or_maybe_written() {
        use std::sync::Arc;
        let gap = IngestError::Rejected {
            source: Arc::new(MetadataError::OutOfOrderSequence {
                producer_id: 1,
                topic: "t".into(),
                partition: 0,
                expected: 10,
                got: 15,
            }),
        };
        assert_eq!(ingest_code(&gap), ResponseError::KafkaStorageError.code());
        let behind = IngestError::Rejected {
            source: Arc::new(MetadataError::OutOfOrderSequence {
                producer_id: 1,
                topic: "t".into(),
                partition: 0,
                expected: 10,
                got: 5,
            }),
        };
        assert_eq!(
            ingest_code(&behind),
            ResponseError::OutOfOrderSequenceNumber.code()
        );
        let unknown = IngestError::Commit {
            key: "segments/x.parquet".into(),
            source: Arc::new(MetadataError::Service {
                kind: ErrorKind::Unavailable,
                message: "the answer was lost".into(),
            }),
        };
        assert_eq!(ingest_code(&unknown), ResponseError::RequestTimedOut.code());
    }

    #[test]
    fn unreadable_data_is_a_storage_error() {
        let storage = ResponseError::KafkaStorageError.code();
        let missing = ReaderError::ObjectStore {
            key: "segments/x.parquet".into(),
            source: object_store::Error::NotFound {
                path: "segments/x.parquet".into(),
                source: "gone".into(),
            },
        };
        let corrupt = ReaderError::Corrupt {
            key: "segments/x.parquet".into(),
            reason: "row group 0 holds 1 records, the index says 2".into(),
        };
        assert_eq!(reader_code(&missing), storage);
        assert_eq!(reader_code(&corrupt), storage);
    }
}
