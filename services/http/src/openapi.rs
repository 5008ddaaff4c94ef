//! The OpenAPI document, generated from the handlers and types themselves.

use axum::Json;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityRequirement, SecurityScheme};
use utoipa::{Modify, OpenApi};

/// The two ways to authenticate when `http.require_auth` is on: basic auth with a user's
/// password, or a bearer token; without it no credentials are needed.
struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "basic",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Basic)),
        );
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
        // What every operation of the API may answer besides its own outcomes.
        let error = |description: &str| {
            utoipa::openapi::ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    utoipa::openapi::ContentBuilder::new()
                        .schema(Some(utoipa::openapi::Ref::from_schema_name("ErrorBody")))
                        .build(),
                )
                .build()
        };
        for (path, item) in openapi.paths.paths.iter_mut() {
            if !path.starts_with("/v1/") {
                continue;
            }
            for operation in [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.delete,
                &mut item.patch,
            ]
            .into_iter()
            .flatten()
            {
                let mut common = vec![
                    ("400", "The request is malformed (path, query or body)"),
                    (
                        "401",
                        "Credentials are needed (`http.require_auth`) or were refused",
                    ),
                    ("403", "The caller's ACLs do not allow this"),
                    ("405", "The path does not take this method"),
                    (
                        "503",
                        "The metadata service or the object store is unavailable",
                    ),
                ];
                if operation.request_body.is_some() {
                    common.push((
                        "413",
                        "The request body is larger than `http.max_request_bytes`",
                    ));
                    common.push(("415", "The body is not `Content-Type: application/json`"));
                }
                for (status, description) in common {
                    operation
                        .responses
                        .responses
                        .entry(status.to_string())
                        .or_insert_with(|| error(description).into());
                }
            }
        }
        openapi.security = Some(vec![
            SecurityRequirement::default(),
            SecurityRequirement::new("basic", Vec::<String>::new()),
            SecurityRequirement::new("bearer", Vec::<String>::new()),
        ]);
    }
}

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
        crate::topics::alter,
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
    ),
    components(schemas(crate::records::Encoding, crate::records::Isolation)),
    modifiers(&Security),
    tags(
        (name = "topics", description = "Create, list, describe and delete topics"),
        (name = "records", description = "Produce and consume records"),
        (name = "groups", description = "Consumer groups and their committed offsets"),
        (name = "admin", description = "Operations: deleting records, compaction, fault injection"),
        (name = "health", description = "Liveness, readiness and metrics"),
    )
)]
pub struct ApiDoc;

/// The document, with the links from a created topic to its other operations (written
/// here as JSON: the model's `Link` serialises its fields under the wrong names).
pub(crate) fn with_links() -> serde_json::Value {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).expect("the document serialises");
    let links: serde_json::Map<String, serde_json::Value> = [
        ("describe", "topics_describe"),
        ("delete", "topics_delete"),
        ("alter", "topics_alter"),
        ("produce", "records_produce"),
    ]
    .into_iter()
    .map(|(name, operation)| {
        (
            name.to_string(),
            serde_json::json!({
                "operationId": operation,
                "parameters": {"topic": "$response.body#/name"},
            }),
        )
    })
    .collect();
    if let Some(created) = doc.pointer_mut("/paths/~1v1~1topics/post/responses/201") {
        created["links"] = serde_json::Value::Object(links);
    }
    doc
}

pub(crate) async fn document() -> Json<serde_json::Value> {
    Json(with_links())
}
