//! Extractors whose rejections are JSON errors like every other error of the API.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::error::HttpError;

/// `axum::Json`, rejecting malformed bodies with a JSON 400 (413 when too large).
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = HttpError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(Self(value)),
            Err(rejection) => {
                let status = rejection.status();
                let (status, code) = match status {
                    StatusCode::PAYLOAD_TOO_LARGE => (status, "request_too_large"),
                    // No `Content-Type: application/json`: 415, as HTTP says.
                    StatusCode::UNSUPPORTED_MEDIA_TYPE => (status, "unsupported_media_type"),
                    _ => (StatusCode::BAD_REQUEST, "malformed_json"),
                };
                Err(HttpError::new(status, code, rejection.body_text()))
            }
        }
    }
}

/// `axum::extract::Path` with a JSON 400 on bad path parameters.
#[derive(Debug)]
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = HttpError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| Self(p.0))
            .map_err(|r| HttpError::bad_request("invalid_path", r.body_text()))
    }
}

/// `axum::extract::Query` with a JSON 400 on bad query parameters.
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = HttpError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| Self(q.0))
            .map_err(|r| HttpError::bad_request("invalid_query", r.body_text()))
    }
}
