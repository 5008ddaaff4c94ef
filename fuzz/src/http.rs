//! Request bodies (and the path and query strings) of the HTTP API.

use std::fmt::Write;
use std::sync::OnceLock;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request};
use http_body_util::BodyExt;
use silt_http::{AppState, HttpSettings, router};
use tower::ServiceExt;

use crate::harness::{PATIENCE, TOPIC, node};

fn app() -> &'static Router {
    static APP: OnceLock<Router> = OnceLock::new();
    APP.get_or_init(|| {
        let node = node();
        let limits = HttpSettings {
            max_request_bytes: 1 << 20,
            max_wait: std::time::Duration::from_millis(100),
            ..HttpSettings::default()
        };
        router(AppState::new(
            node.metadata.clone(),
            node.ingest.clone(),
            node.reader.clone(),
            node.groups.clone(),
            limits,
            None,
        ))
    })
}

fn percent_encoded(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut out, b| {
        let _ = write!(out, "%{b:02X}");
        out
    })
}

/// Byte 0 selects the endpoint, the rest is its input:
/// 0 create topic, 1 produce, 2 delete records, 3 commit group offsets (bodies);
/// 4 consume (the query string); 5 produce to a topic named by the bytes (the path).
///
/// Bad input must get a 4xx answer with the API's JSON error body (`code`, `message`),
/// never a 5xx: the store behind this node cannot fail.
pub fn http_body(data: &[u8]) {
    let Some((&endpoint, rest)) = data.split_first() else {
        return;
    };
    let (method, uri, body) = match endpoint % 6 {
        0 => (Method::POST, "/v1/topics".to_string(), rest.to_vec()),
        1 => (
            Method::POST,
            format!("/v1/topics/{TOPIC}/records"),
            rest.to_vec(),
        ),
        2 => (
            Method::POST,
            format!("/v1/topics/{TOPIC}/partitions/0/delete-records"),
            rest.to_vec(),
        ),
        3 => (
            Method::PUT,
            "/v1/groups/fuzz-group/offsets".to_string(),
            rest.to_vec(),
        ),
        4 => {
            let Ok(query) = std::str::from_utf8(rest) else {
                return;
            };
            (
                Method::GET,
                format!("/v1/topics/{TOPIC}/partitions/0/records?{query}"),
                Vec::new(),
            )
        }
        _ => (
            Method::POST,
            format!("/v1/topics/{}/records", percent_encoded(rest)),
            br#"{"records":[{"value":"v"}]}"#.to_vec(),
        ),
    };
    let Ok(request) = Request::builder()
        .method(method)
        .uri(&uri)
        .header("content-type", "application/json")
        .body(Body::from(body))
    else {
        return; // not a URI any client could send
    };
    let answer = node().runtime.block_on(async {
        tokio::time::timeout(PATIENCE, async {
            let response = app().clone().oneshot(request).await.expect("infallible");
            let status = response.status();
            let bytes = response.into_body().collect().await.map(|b| b.to_bytes());
            (status, bytes)
        })
        .await
    });
    let Ok((status, body)) = answer else { return };
    let body = body.expect("a buffered body cannot fail");
    assert!(
        !status.is_server_error(),
        "{uri}: bad input answered with {status}: {}",
        String::from_utf8_lossy(&body)
    );
    if status.is_client_error() {
        let error: serde_json::Value = serde_json::from_slice(&body).unwrap_or_else(|_| {
            panic!(
                "{uri}: {status} without a JSON error body: {}",
                String::from_utf8_lossy(&body)
            )
        });
        assert!(
            error["code"].is_string() && error["message"].is_string(),
            "{uri}: {status} error body without code and message: {error}"
        );
    }
}
