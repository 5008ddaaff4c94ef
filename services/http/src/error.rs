//! Every error the HTTP API returns: a status and a JSON body `{"code", "message"}`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use silt_ingest::IngestError;
use silt_metadata::{ErrorKind, MetadataError};
use silt_reader::ReaderError;
use utoipa::ToSchema;

/// The JSON body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// Stable, machine-readable code, e.g. `unknown_topic`.
    pub code: &'static str,
    /// What went wrong, for people.
    pub message: String,
}

#[derive(Debug)]
pub struct HttpError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl HttpError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::warn!(code = self.code, message = %self.message, "request failed");
        }
        let body = ErrorBody {
            code: self.code,
            message: self.message,
        };
        (self.status, Json(body)).into_response()
    }
}

fn from_kind(kind: ErrorKind, code: Option<&'static str>, message: String) -> HttpError {
    let (status, default_code) = match kind {
        ErrorKind::NotFound => (StatusCode::NOT_FOUND, "not_found"),
        ErrorKind::Conflict => (StatusCode::CONFLICT, "conflict"),
        ErrorKind::Invalid => (StatusCode::BAD_REQUEST, "invalid_request"),
        ErrorKind::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        ErrorKind::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
    };
    HttpError::new(status, code.unwrap_or(default_code), message)
}

impl From<MetadataError> for HttpError {
    fn from(e: MetadataError) -> Self {
        let code = match &e {
            MetadataError::TopicExists { .. } => Some("topic_exists"),
            MetadataError::UnknownTopic { .. } => Some("unknown_topic"),
            MetadataError::UnknownPartition { .. } => Some("unknown_partition"),
            MetadataError::InvalidTopicName { .. } => Some("invalid_topic_name"),
            MetadataError::InvalidGroupId { .. } => Some("invalid_group_id"),
            MetadataError::InvalidPartitionCount { .. } => Some("invalid_partitions"),
            MetadataError::InvalidConfig { .. } => Some("invalid_config"),
            _ => None,
        };
        from_kind(e.kind(), code, e.to_string())
    }
}

impl From<IngestError> for HttpError {
    fn from(e: IngestError) -> Self {
        match e {
            IngestError::Rejected { source } => match std::sync::Arc::try_unwrap(source) {
                Ok(inner) => inner.into(),
                Err(shared) => from_kind(shared.kind(), None, shared.to_string()),
            },
            IngestError::BatchTooLarge { .. } => HttpError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "request_too_large",
                e.to_string(),
            ),
            other => from_kind(other.kind(), None, other.to_string()),
        }
    }
}

impl From<ReaderError> for HttpError {
    fn from(e: ReaderError) -> Self {
        match e {
            ReaderError::Metadata(m) => m.into(),
            ReaderError::OffsetOutOfRange { .. } => HttpError::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "offset_out_of_range",
                e.to_string(),
            ),
            other => {
                let code = match &other {
                    ReaderError::ObjectStore {
                        source: object_store::Error::NotFound { .. },
                        ..
                    } => Some("object_missing"),
                    ReaderError::ObjectStore { .. } => Some("storage_unavailable"),
                    ReaderError::Segment { .. } | ReaderError::Corrupt { .. } => {
                        Some("corrupt_object")
                    }
                    _ => None,
                };
                // The object's key, not the store's own words: a local store's error
                // names the server's paths (the node's log has it all).
                let message = match &other {
                    ReaderError::ObjectStore {
                        key,
                        source: object_store::Error::NotFound { .. },
                    } => format!("object {key} is missing from the object store"),
                    ReaderError::ObjectStore { key, .. } => {
                        format!(
                            "reading object {key} failed (the node's log has the store's answer)"
                        )
                    }
                    ReaderError::Cache { .. } => {
                        "the read cache failed (the node's log has why)".to_string()
                    }
                    _ => other.to_string(),
                };
                from_kind(other.kind(), code, message)
            }
        }
    }
}
