//! The OpenAPI document, generated from the handlers and types themselves.

use axum::Json;
use utoipa::OpenApi;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Silt HTTP API",
        description = "Produce, consume and administer Silt topics over HTTP."
    ),
    paths(
        crate::topics::create,
        crate::topics::list,
        crate::topics::describe,
        crate::topics::delete,
        crate::records::produce,
        crate::records::consume,
        crate::records::stream,
        crate::admin::delete_records,
        crate::admin::compact,
        crate::admin::faults,
        crate::groups::commit,
        crate::groups::fetch,
        crate::groups::list,
        crate::groups::describe,
        crate::groups::delete,
        crate::health,
        crate::ready,
        crate::metrics_text,
    )
)]
pub struct ApiDoc;

pub(crate) async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
