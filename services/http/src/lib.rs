//! The HTTP front door (axum, JSON under `/v1`): topic admin, produce and consume,
//! a live tail as Server-Sent Events, consumer-group offsets with lag, health, Prometheus
//! metrics and an OpenAPI document.
//!
//! Produced records go through the same [`Ingest`] as every other door, and reads through
//! the same [`Reader`], so all doors see each other's data. Depends on `silt-ingest`,
//! `silt-reader`, `silt-segment`, `silt-metadata`, `silt-groups` (consumer-group offsets
//! and lag), `silt-auth` (authentication, ACLs) and `silt-tls`; nothing depends on it but
//! the binary.

mod admin;
mod auth;
mod error;
mod extract;
mod groups;
mod openapi;
mod records;
mod settings;
mod topics;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use silt_groups::GroupService;
use silt_ingest::Ingest;
use silt_metadata::MetadataStore;
use silt_reader::Reader;

pub use admin::{FaultSwitch, Maintenance, Readiness};
pub use auth::{Caller, HttpSecurity};
pub use error::{ErrorBody, HttpError};
pub use openapi::ApiDoc;
pub use settings::{HttpSettings, HttpToken};

/// Renders the Prometheus exposition text for `/metrics`.
pub type MetricsRenderer = Arc<dyn Fn() -> String + Send + Sync>;

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    pub metadata: Arc<dyn MetadataStore>,
    pub ingest: Ingest,
    pub reader: Reader,
    pub groups: Arc<dyn GroupService>,
    /// The `[http]` settings (body limit, longest long poll).
    pub settings: HttpSettings,
    pub metrics: Option<MetricsRenderer>,
    /// This node's compactor, if it runs one (`POST /v1/admin/compact`).
    pub maintenance: Option<Arc<dyn Maintenance>>,
    /// The object-store fault injector of a test cluster (`POST /v1/admin/faults`).
    pub faults: Option<Arc<dyn FaultSwitch>>,
    /// Authentication and ACLs; `None`: every caller is anonymous and allowed everything.
    pub security: Option<HttpSecurity>,
    /// What `GET /readyz` checks beyond the metadata store (the object store).
    pub readiness: Option<Arc<dyn Readiness>>,
}

impl AppState {
    pub fn new(
        metadata: Arc<dyn MetadataStore>,
        ingest: Ingest,
        reader: Reader,
        groups: Arc<dyn GroupService>,
        settings: HttpSettings,
        metrics: Option<MetricsRenderer>,
    ) -> Self {
        Self {
            metadata,
            ingest,
            reader,
            groups,
            settings,
            metrics,
            maintenance: None,
            faults: None,
            security: None,
            readiness: None,
        }
    }

    /// Lets `POST /v1/admin/compact` run passes of this compactor.
    pub fn with_maintenance(mut self, maintenance: Arc<dyn Maintenance>) -> Self {
        self.maintenance = Some(maintenance);
        self
    }

    /// Authenticates callers and enforces ACLs.
    pub fn with_security(mut self, security: HttpSecurity) -> Self {
        self.security = Some(security);
        self
    }

    /// Makes `GET /readyz` check `readiness` too.
    pub fn with_readiness(mut self, readiness: Arc<dyn Readiness>) -> Self {
        self.readiness = Some(readiness);
        self
    }

    /// Lets `POST /v1/admin/faults` switch this node's object-store fault injection.
    pub fn with_faults(mut self, faults: Arc<dyn FaultSwitch>) -> Self {
        self.faults = Some(faults);
        self
    }
}

/// The whole HTTP API.
pub fn router(state: AppState) -> Router {
    let body_limit = state.settings.max_request_bytes;
    let router = Router::new()
        .route("/v1/topics", post(topics::create).get(topics::list))
        .route(
            "/v1/topics/{topic}",
            get(topics::describe)
                .delete(topics::delete)
                .patch(topics::alter),
        )
        .route("/v1/topics/{topic}/records", post(records::produce))
        .route(
            "/v1/topics/{topic}/partitions/{partition}/records",
            get(records::consume),
        )
        .route(
            "/v1/topics/{topic}/partitions/{partition}/stream",
            get(records::stream),
        )
        .route(
            "/v1/topics/{topic}/partitions/{partition}/delete-records",
            post(admin::delete_records),
        )
        .route("/v1/admin/compact", post(admin::compact))
        .route("/v1/admin/faults", post(admin::faults))
        .route("/v1/groups", get(groups::list))
        .route(
            "/v1/groups/{group}",
            get(groups::describe).delete(groups::delete),
        )
        .route(
            "/v1/groups/{group}/offsets",
            put(groups::commit).get(groups::fetch),
        )
        .route("/v1/openapi.json", get(openapi::document))
        .route("/healthz", get(health))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics_text))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::guard,
        ))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(body_limit));
    // Outermost, so browsers' preflight requests are answered before authentication.
    let router = match state.settings.cors() {
        Ok(Some(cors)) => router.layer(cors),
        Ok(None) => router,
        Err(reason) => {
            tracing::warn!(%reason, "CORS is off");
            router
        }
    };
    router.with_state(state)
}

#[utoipa::path(get, tag = "health", operation_id = "health", summary = "Liveness: the process serves",
    path = "/healthz", responses((status = 200, description = "The node is serving")))]
async fn health(State(state): State<AppState>) -> Result<Json<serde_json::Value>, HttpError> {
    // Touch the metadata store so a broken store shows up as unhealthy.
    state.metadata.topics().await?;
    Ok(Json(serde_json::json!({"status": "ok"})))
}

#[utoipa::path(get, tag = "health", operation_id = "ready", summary = "Readiness: metadata and object store answer",
    path = "/readyz", responses(
    (status = 200, description = "The node can do its job: metadata and object store answer"),
    (status = 503, body = crate::ErrorBody, description = "What does not work, and what to change")))]
async fn ready(State(state): State<AppState>) -> Result<Json<serde_json::Value>, HttpError> {
    state.metadata.topics().await?;
    if let Some(readiness) = &state.readiness {
        readiness.check().await.map_err(|reason| {
            HttpError::new(
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                "store_unavailable",
                reason,
            )
        })?;
    }
    Ok(Json(serde_json::json!({"status": "ready"})))
}

#[utoipa::path(get, tag = "health", operation_id = "metrics", summary = "Prometheus metrics",
    path = "/metrics", responses((status = 200, description = "Prometheus text format")))]
async fn metrics_text(State(state): State<AppState>) -> impl IntoResponse {
    let body = state
        .metrics
        .as_ref()
        .map(|render| render())
        .unwrap_or_default();
    ([(CONTENT_TYPE, "text/plain; version=0.0.4")], body)
}

async fn method_not_allowed() -> HttpError {
    HttpError::new(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this endpoint does not take that method (see /v1/openapi.json)",
    )
}

async fn not_found() -> HttpError {
    HttpError::new(
        axum::http::StatusCode::NOT_FOUND,
        "no_route",
        "no such endpoint",
    )
}
