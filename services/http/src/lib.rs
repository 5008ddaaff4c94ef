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
use std::time::Duration;

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
    /// The last answers of the health checks' probes.
    probes: Arc<Probes>,
}

/// How long a health or readiness check waits for a dependency before it reports it down:
/// an orchestrator's probe gets an answer within about this long, whatever is down.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// How long a probe's answer is reused: health checks many times a second cost the
/// dependencies one probe a second each.
const PROBE_REUSE: Duration = Duration::from_secs(1);

/// One dependency's probe: its last answer, with when it was taken, and whether one is
/// running (one at a time, however many checks come: health checks are unauthenticated).
#[derive(Default)]
struct ProbeSlot {
    last: std::sync::Mutex<Option<(std::time::Instant, Result<(), String>)>>,
    running: std::sync::atomic::AtomicBool,
}

/// The probes of each dependency.
#[derive(Default)]
struct Probes {
    metadata: Arc<ProbeSlot>,
    store: Arc<ProbeSlot>,
}

/// A probe's answer: the last one if fresh, else a new one, waited for at most
/// [`PROBE_TIMEOUT`] (a slower probe still finishes, and its answer is kept). While a
/// probe is already running, the checks that come meanwhile wait for its answer the same
/// way, without starting another.
async fn probe<F>(slot: &Arc<ProbeSlot>, what: &str, check: F) -> Result<(), String>
where
    F: std::future::Future<Output = Result<(), String>> + Send + 'static,
{
    use std::sync::atomic::Ordering;
    let fresh = |slot: &ProbeSlot| {
        slot.last
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .filter(|(at, _)| at.elapsed() < PROBE_REUSE)
            .map(|(_, answer)| answer.clone())
    };
    if let Some(answer) = fresh(slot) {
        return answer;
    }
    let asked = std::time::Instant::now();
    if !slot.running.swap(true, Ordering::AcqRel) {
        /// Lets the next probe start however this one ends (a panic included).
        struct Done(Arc<ProbeSlot>);
        impl Drop for Done {
            fn drop(&mut self) {
                self.0.running.store(false, Ordering::Release);
            }
        }
        let done = Done(slot.clone());
        tokio::spawn(async move {
            let answer = check.await;
            *done.0.last.lock().unwrap_or_else(|e| e.into_inner()) =
                Some((std::time::Instant::now(), answer));
            drop(done);
        });
    }
    // The answer of the probe running now: newer than this check's arrival.
    while asked.elapsed() < PROBE_TIMEOUT {
        if let Some((at, answer)) = slot.last.lock().unwrap_or_else(|e| e.into_inner()).as_ref()
            && *at >= asked
        {
            return answer.clone();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Err(format!(
        "the {what} did not answer within {} s",
        PROBE_TIMEOUT.as_secs()
    ))
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
            probes: Arc::default(),
        }
    }

    /// Whether the metadata store answers (within [`PROBE_TIMEOUT`]; 503 naming it if not).
    async fn metadata_answers(&self) -> Result<(), HttpError> {
        let metadata = self.metadata.clone();
        probe(&self.probes.metadata, "metadata store", async move {
            metadata
                .topics()
                .await
                .map(|_| ())
                .map_err(|e| format!("the metadata store does not answer: {e}"))
        })
        .await
        .map_err(|reason| {
            HttpError::new(
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                "metadata_unavailable",
                reason,
            )
        })
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
    // Touch the metadata store so a broken store shows up as unhealthy, within a second.
    state.metadata_answers().await?;
    Ok(Json(serde_json::json!({"status": "ok"})))
}

#[utoipa::path(get, tag = "health", operation_id = "ready", summary = "Readiness: metadata and object store answer",
    path = "/readyz", responses(
    (status = 200, description = "The node can do its job: metadata and object store answer"),
    (status = 503, body = crate::ErrorBody, description = "What does not work, and what to change")))]
async fn ready(State(state): State<AppState>) -> Result<Json<serde_json::Value>, HttpError> {
    state.metadata_answers().await?;
    if let Some(readiness) = state.readiness.clone() {
        probe(&state.probes.store, "object store", async move {
            readiness.check().await
        })
        .await
        .map_err(|reason| {
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
