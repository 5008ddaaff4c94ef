//! Operations: running a compaction pass now, and moving a partition's log start
//! (Kafka's DeleteRecords).

use std::time::Duration;

use async_trait::async_trait;
use axum::Json;
use axum::extract::State;

use crate::extract::{ApiJson, ApiPath, ApiQuery};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::{AppState, HttpError};

/// Maintenance work this node can run on request (its compactor, when it runs one).
#[async_trait]
pub trait Maintenance: Send + Sync {
    /// One compaction pass (merge, retention, GC); `min_age` overrides the configured
    /// minimum age. Returns what the pass did, as JSON.
    async fn compact(&self, min_age: Option<Duration>) -> Result<serde_json::Value, String>;
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct CompactParams {
    /// Merge raw data at least this old, e.g. `0s` or `10m` (default: the configured age).
    min_age: Option<String>,
}

#[utoipa::path(post, tag = "admin", operation_id = "admin_compact", summary = "Run a compaction pass now",
    path = "/v1/admin/compact", params(CompactParams),
    responses((status = 200, description = "What the pass did"),
              (status = 404, body = crate::ErrorBody, description = "No compactor runs on this node")))]
pub(crate) async fn compact(
    State(state): State<AppState>,
    ApiQuery(params): ApiQuery<CompactParams>,
) -> Result<Json<serde_json::Value>, HttpError> {
    let Some(maintenance) = &state.maintenance else {
        return Err(HttpError::new(
            StatusCode::NOT_FOUND,
            "no_compactor",
            "this node does not run the compactor role",
        ));
    };
    let min_age = params
        .min_age
        .as_deref()
        .map(humantime::parse_duration)
        .transpose()
        .map_err(|e| HttpError::bad_request("invalid_min_age", format!("min_age: {e}")))?;
    maintenance
        .compact(min_age)
        .await
        .map(Json)
        .map_err(|e| HttpError::new(StatusCode::SERVICE_UNAVAILABLE, "compaction_failed", e))
}

/// Whether this node can do its job beyond answering: its object store takes a write,
/// a read and a delete (`GET /readyz`).
#[async_trait]
pub trait Readiness: Send + Sync {
    /// `Err` says what does not work and what to change.
    async fn check(&self) -> Result<(), String>;
}

/// The object-store fault injector of a test cluster (`storage.fault_injection`).
pub trait FaultSwitch: Send + Sync {
    fn set_active(&self, active: bool);
    fn is_active(&self) -> bool;
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct FaultParams {
    /// true to inject faults, false to stop.
    active: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct FaultState {
    active: bool,
}

#[utoipa::path(post, tag = "admin", operation_id = "admin_faults", summary = "Switch fault injection on or off",
    path = "/v1/admin/faults", params(FaultParams),
    responses((status = 200, body = FaultState, description = "Fault injection switched"),
              (status = 404, body = crate::ErrorBody, description = "Fault injection is not configured on this node")))]
pub(crate) async fn faults(
    State(state): State<AppState>,
    ApiQuery(params): ApiQuery<FaultParams>,
) -> Result<Json<FaultState>, HttpError> {
    let Some(faults) = &state.faults else {
        return Err(HttpError::new(
            StatusCode::NOT_FOUND,
            "no_fault_injection",
            "storage.fault_injection is not enabled on this node",
        ));
    };
    faults.set_active(params.active);
    Ok(Json(FaultState {
        active: faults.is_active(),
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct DeleteRecords {
    /// Records below this offset are deleted: the log start moves here. -1 means the
    /// high watermark (delete everything).
    offset: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct LogStart {
    partition: i32,
    log_start_offset: i64,
    high_watermark: i64,
}

#[utoipa::path(post, tag = "admin", operation_id = "admin_delete_records", summary = "Delete records below an offset",
    path = "/v1/topics/{topic}/partitions/{partition}/delete-records",
    params(("topic" = String, Path, description = "Topic name: 1 to 249 characters from `[a-zA-Z0-9._-]`, not `.` or `..`", pattern = r"^[a-zA-Z0-9._-]{1,249}$"), ("partition" = i32, Path, minimum = 0)), request_body = DeleteRecords,
    responses((status = 200, body = LogStart), (status = 400, body = crate::ErrorBody),
              (status = 404, body = crate::ErrorBody),
              (status = 416, description = "the offset is beyond the high watermark", body = crate::ErrorBody)))]
pub(crate) async fn delete_records(
    State(state): State<AppState>,
    ApiPath((topic, partition)): ApiPath<(String, i32)>,
    ApiJson(body): ApiJson<DeleteRecords>,
) -> Result<Json<LogStart>, HttpError> {
    let offsets = state.metadata.partition_offset(&topic, partition).await?;
    let target = match body.offset {
        -1 => offsets.high_watermark,
        o if o < 0 || o > offsets.high_watermark => {
            return Err(HttpError::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "offset_out_of_range",
                format!(
                    "offset {o} is outside [0, {}] (the high watermark)",
                    offsets.high_watermark
                ),
            ));
        }
        o => o,
    };
    let moved = state
        .metadata
        .advance_log_start(&topic, partition, target)
        .await?;
    Ok(Json(LogStart {
        partition,
        log_start_offset: moved.log_start_offset,
        high_watermark: moved.high_watermark,
    }))
}
