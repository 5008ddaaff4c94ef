//! The HTTP API, handler by handler, through `tower::ServiceExt::oneshot` on the real router
//! over ingest, reader, an in-memory object store and the SQLite metadata store.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use object_store::memory::InMemory;
use serde_json::{Value, json};
use silt_groups::{Coordinator, GroupConfig};
use silt_http::{AppState, HttpSettings, router};
use silt_ingest::{Ingest, IngestConfig, TopicDefaults};
use silt_metadata::SqliteStore;
use silt_reader::{Reader, ReaderConfig};
use tower::ServiceExt;

struct Api {
    _dir: tempfile::TempDir,
    app: Router,
}

async fn api() -> Api {
    api_with(HttpSettings::default()).await
}

async fn api_with(settings: HttpSettings) -> Api {
    let dir = tempfile::tempdir().expect("tempdir");
    let meta = Arc::new(
        SqliteStore::open(&dir.path().join("m.db"))
            .await
            .expect("open"),
    );
    let store = Arc::new(InMemory::new());
    let reader = Reader::build(
        ReaderConfig {
            memory_cache_bytes: 8 << 20,
            disk_cache_bytes: 0,
            cache_dir: Some(dir.path().join("cache")),
            chunks_per_lookup: 8,
        },
        store.clone(),
        meta.clone(),
    )
    .await
    .expect("reader");
    let ingest = Ingest::start(
        IngestConfig {
            linger: Duration::from_millis(2),
            ..IngestConfig::default()
        },
        store,
        meta.clone(),
        None,
    )
    .with_rules(TopicDefaults {
        max_message_bytes: 1000,
        ..TopicDefaults::default()
    });
    let metrics = Arc::new(|| "silt_test_metric 1\n".to_string());
    let groups = Arc::new(Coordinator::start(
        GroupConfig::default(),
        meta.clone(),
        meta.clone(),
    ));
    let state = AppState::new(meta, ingest, reader, groups, settings, Some(metrics));
    Api {
        _dir: dir,
        app: router(state),
    }
}

impl Api {
    async fn call(&self, method: Method, uri: &str, body: Option<&str>) -> (StatusCode, Value) {
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .header("content-type", "application/json")
            .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
            .expect("request");
        let response = self.app.clone().oneshot(request).await.expect("response");
        let status = response.status();
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
        };
        (status, value)
    }

    async fn json(&self, method: Method, uri: &str, body: Value) -> (StatusCode, Value) {
        self.call(method, uri, Some(&body.to_string())).await
    }
}

#[tokio::test]
async fn topic_admin() {
    let api = api().await;
    let (s, body) = api
        .json(
            Method::POST,
            "/v1/topics",
            json!({"name": "orders", "partitions": 3, "config": {"retention.ms": 60000}}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{body}");
    assert_eq!(body["partition_count"], 3);
    assert_eq!(body["config"]["retention.ms"], "60000");

    let (s, body) = api
        .json(
            Method::POST,
            "/v1/topics",
            json!({"name": "orders", "partitions": 1}),
        )
        .await;
    assert_eq!(
        (s, body["code"].as_str()),
        (StatusCode::CONFLICT, Some("topic_exists"))
    );
    let (s, body) = api
        .json(
            Method::POST,
            "/v1/topics",
            json!({"name": "bad name", "partitions": 1}),
        )
        .await;
    assert_eq!(
        (s, body["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_topic_name"))
    );
    let long = "x".repeat(250);
    let (s, _) = api
        .json(
            Method::POST,
            "/v1/topics",
            json!({"name": long, "partitions": 1}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, body) = api
        .json(
            Method::POST,
            "/v1/topics",
            json!({"name": "c", "partitions": 1, "config": {"nope": "1"}}),
        )
        .await;
    assert_eq!(
        (s, body["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_config"))
    );
    let (s, body) = api
        .call(Method::POST, "/v1/topics", Some("{not json"))
        .await;
    assert_eq!(
        (s, body["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("malformed_json"))
    );

    let (s, body) = api.call(Method::GET, "/v1/topics", None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(body["topics"].as_array().map(Vec::len), Some(1));

    let (s, body) = api.call(Method::GET, "/v1/topics/orders", None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(body["partitions"].as_array().map(Vec::len), Some(3));
    assert_eq!(
        body["partitions"][2],
        json!({"partition": 2, "earliest_offset": 0, "latest_offset": 0})
    );

    let (s, body) = api.call(Method::GET, "/v1/topics/missing", None).await;
    assert_eq!(
        (s, body["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("unknown_topic"))
    );
    let (s, _) = api.call(Method::DELETE, "/v1/topics/orders", None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = api.call(Method::DELETE, "/v1/topics/orders", None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn produce_and_consume_round_trip() {
    let api = api().await;
    api.json(
        Method::POST,
        "/v1/topics",
        json!({"name": "t", "partitions": 4}),
    )
    .await;
    let (s, body) = api
        .json(
            Method::POST,
            "/v1/topics/t/records",
            json!({"records": [
                {"key": "k1", "value": "hello", "partition": 2, "timestamp": 1234,
                 "headers": [{"key": "h", "value": "v"}, {"key": "bin", "value_b64": "AAE="}]},
                {"value_b64": "/wA=", "partition": 2},
                {"value": {"amount": 5}, "partition": 2},
                {"value": null, "partition": 2},
                {"key": "same", "value": "a"},
                {"key": "same", "value": "b"}
            ]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let positions = body["records"].as_array().expect("records").clone();
    assert_eq!(positions.len(), 6);
    for (i, p) in positions.iter().take(4).enumerate() {
        assert_eq!(p, &json!({"partition": 2, "offset": i}));
    }
    // The same key lands in the same partition, with consecutive offsets.
    assert_eq!(positions[4]["partition"], positions[5]["partition"]);
    assert_eq!(
        positions[5]["offset"].as_i64(),
        positions[4]["offset"].as_i64().map(|o| o + 1)
    );

    let (s, body) = api
        .call(
            Method::GET,
            "/v1/topics/t/partitions/2/records?offset=0",
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let records = body["records"].as_array().expect("records");
    assert_eq!(records.len(), 4);
    assert_eq!(records[0]["key"], "k1");
    assert_eq!(records[0]["value"], "hello");
    assert_eq!(records[0]["timestamp"], 1234);
    assert_eq!(
        records[0]["headers"],
        json!([{"key": "h", "value": "v"}, {"key": "bin", "value": "\u{0}\u{1}"}])
    );
    assert_eq!(records[1]["value_b64"], "/wA=");
    assert_eq!(records[1]["value"], Value::Null);
    assert_eq!(records[2]["value"], "{\"amount\":5}");
    assert_eq!(records[3]["value"], Value::Null);
    assert_eq!(body["next_offset"], 4);
    assert_eq!(body["high_watermark"], 4);

    let (_, body) = api
        .call(
            Method::GET,
            "/v1/topics/t/partitions/2/records?offset=1&limit=1&encoding=base64",
            None,
        )
        .await;
    assert_eq!(body["records"][0]["value_b64"], "/wA=");
    assert_eq!(body["next_offset"], 2);

    // Round robin without a key covers every partition.
    let unkeyed: Vec<Value> = (0..8).map(|i| json!({"value": format!("r{i}")})).collect();
    let (_, body) = api
        .json(
            Method::POST,
            "/v1/topics/t/records",
            json!({ "records": unkeyed }),
        )
        .await;
    let mut used: Vec<i64> = body["records"]
        .as_array()
        .expect("records")
        .iter()
        .filter_map(|r| r["partition"].as_i64())
        .collect();
    used.sort();
    used.dedup();
    assert_eq!(used, [0, 1, 2, 3]);
}

#[tokio::test]
async fn bad_requests_write_nothing() {
    let api = api().await;
    api.json(
        Method::POST,
        "/v1/topics",
        json!({"name": "t", "partitions": 1}),
    )
    .await;
    let cases = [
        (
            json!({"records": [{"value": "ok"}, {"value": "x".repeat(2000)}]}),
            StatusCode::PAYLOAD_TOO_LARGE,
            "record_too_large",
        ),
        (
            json!({"records": [{"value": "ok"}, {"value": "a", "partition": 5}]}),
            StatusCode::NOT_FOUND,
            "unknown_partition",
        ),
        (
            json!({"records": [{"value": "ok"}, {"value": "a", "value_b64": "YQ=="}]}),
            StatusCode::BAD_REQUEST,
            "invalid_record",
        ),
        (
            json!({"records": [{"value": "ok"}, {"value_b64": "***"}]}),
            StatusCode::BAD_REQUEST,
            "invalid_base64",
        ),
        (
            json!({"records": []}),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            json!({"records": [{"value": "ok", "colour": "red"}]}),
            StatusCode::BAD_REQUEST,
            "malformed_json",
        ),
    ];
    for (body, status, code) in cases {
        let (s, got) = api.json(Method::POST, "/v1/topics/t/records", body).await;
        assert_eq!((s, got["code"].as_str()), (status, Some(code)), "{got}");
    }
    let (s, got) = api
        .json(
            Method::POST,
            "/v1/topics/none/records",
            json!({"records": [{"value": "a"}]}),
        )
        .await;
    assert_eq!(
        (s, got["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("unknown_topic"))
    );
    // Admin endpoints answer bad input in the same JSON shape (found by fuzzing: they
    // used the framework's plain-text rejections).
    let (s, got) = api
        .call(
            Method::POST,
            "/v1/topics/t/partitions/0/delete-records",
            Some("\"offset\":1}"),
        )
        .await;
    assert_eq!(
        (s, got["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("malformed_json"))
    );
    let (s, got) = api
        .call(
            Method::POST,
            "/v1/topics/t/partitions/x/delete-records",
            Some("{\"offset\":1}"),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{got}");
    assert!(got["message"].is_string(), "{got}");
    let (s, got) = api
        .call(Method::POST, "/v1/admin/faults?active=maybe", None)
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{got}");
    assert!(got["code"].is_string(), "{got}");
    let (_, detail) = api.call(Method::GET, "/v1/topics/t", None).await;
    assert_eq!(detail["partitions"][0]["latest_offset"], 0);

    let (s, got) = api
        .call(
            Method::GET,
            "/v1/topics/t/partitions/0/records?offset=5",
            None,
        )
        .await;
    assert_eq!(
        (s, got["code"].as_str()),
        (
            StatusCode::RANGE_NOT_SATISFIABLE,
            Some("offset_out_of_range")
        )
    );
    let (s, got) = api
        .call(Method::GET, "/v1/topics/t/partitions/zero/records", None)
        .await;
    assert_eq!(
        (s, got["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_path"))
    );
    let (s, got) = api
        .call(
            Method::GET,
            "/v1/topics/t/partitions/0/records?limit=many",
            None,
        )
        .await;
    assert_eq!(
        (s, got["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_query"))
    );
    let (s, got) = api.call(Method::GET, "/nowhere", None).await;
    assert_eq!(
        (s, got["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("no_route"))
    );
    // Still serving.
    let (s, _) = api
        .json(
            Method::POST,
            "/v1/topics/t/records",
            json!({"records": [{"value": "fine"}]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
}

#[tokio::test]
async fn group_offsets_with_lag() {
    let api = api().await;
    api.json(
        Method::POST,
        "/v1/topics",
        json!({"name": "t", "partitions": 2}),
    )
    .await;
    let records: Vec<Value> = (0..5)
        .map(|i| json!({"value": i.to_string(), "partition": 0}))
        .collect();
    api.json(
        Method::POST,
        "/v1/topics/t/records",
        json!({ "records": records }),
    )
    .await;
    let (s, _) = api
        .json(Method::PUT, "/v1/groups/g1/offsets", json!({"offsets": [{"topic": "t", "partition": 0, "offset": 2}, {"topic": "t", "partition": 1, "offset": 0}]}))
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, body) = api.call(Method::GET, "/v1/groups/g1/offsets", None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(body["offsets"][0]["lag"], 3);
    assert_eq!(body["offsets"][0]["high_watermark"], 5);
    assert_eq!(body["offsets"][1]["lag"], 0);
    assert_eq!(body["total_lag"], 3);
    // The group is listed and described (offsets only: no members, state Empty).
    let (s, list) = api.call(Method::GET, "/v1/groups", None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        list["groups"],
        json!([{"group": "g1", "state": "Empty", "protocol_type": "consumer"}])
    );
    let (s, detail) = api.call(Method::GET, "/v1/groups/g1", None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(detail["state"], "Empty");
    assert_eq!(detail["total_lag"], 3);
    assert_eq!(detail["members"], json!([]));
    let (s, got) = api.call(Method::GET, "/v1/groups/nobody", None).await;
    assert_eq!(
        (s, got["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("unknown_group"))
    );
    let (s, _) = api.call(Method::DELETE, "/v1/groups/g1", None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = api.call(Method::DELETE, "/v1/groups/g1", None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, got) = api
        .json(
            Method::PUT,
            "/v1/groups/g1/offsets",
            json!({"offsets": [{"topic": "t", "partition": 7, "offset": 2}]}),
        )
        .await;
    assert_eq!(
        (s, got["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("unknown_partition"))
    );
    let (s, _) = api
        .json(
            Method::PUT,
            "/v1/groups/g1/offsets",
            json!({"offsets": [{"topic": "t", "partition": 0, "offset": -4}]}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn health_metrics_and_openapi() {
    let api = api().await;
    let (s, body) = api.call(Method::GET, "/healthz", None).await;
    assert_eq!((s, body["status"].as_str()), (StatusCode::OK, Some("ok")));
    let (s, body) = api.call(Method::GET, "/metrics", None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(body, Value::String("silt_test_metric 1\n".into()));
    let (s, doc) = api.call(Method::GET, "/v1/openapi.json", None).await;
    assert_eq!(s, StatusCode::OK);
    let paths = doc["paths"].as_object().expect("paths");
    for p in [
        "/v1/topics",
        "/v1/topics/{topic}",
        "/v1/topics/{topic}/records",
        "/v1/topics/{topic}/partitions/{partition}/records",
        "/v1/topics/{topic}/partitions/{partition}/stream",
        "/v1/groups/{group}/offsets",
        "/v1/groups",
        "/v1/groups/{group}",
        "/healthz",
        "/metrics",
    ] {
        assert!(paths.contains_key(p), "openapi lacks {p}");
    }
}

impl Api {
    /// A request with the given headers only (no default content type).
    async fn raw(
        &self,
        method: Method,
        uri: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> (StatusCode, Value, axum::http::HeaderMap) {
        let mut request = Request::builder().method(method).uri(uri);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request.body(Body::from(body.to_string())).expect("request");
        let response = self.app.clone().oneshot(request).await.expect("response");
        let (status, headers) = (response.status(), response.headers().clone());
        let bytes = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        let value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
        (status, value, headers)
    }
}

/// Smaller defects found by a new user: each answer is JSON and says what is wrong.
#[tokio::test]
async fn http_errors_say_what_is_wrong_in_json() {
    let api = api().await;
    let (s, body) = api
        .json(
            Method::POST,
            "/v1/topics",
            json!({"name": "edges", "partitions": 1}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{body}");

    // A method the route does not take: 405 with the JSON error body.
    let (s, body) = api.call(Method::PATCH, "/v1/topics", None).await;
    assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(body["code"], "method_not_allowed", "{body}");

    // No content type on a JSON body: 415, not "malformed JSON".
    let (s, body, _) = api
        .raw(
            Method::POST,
            "/v1/topics/edges/records",
            &[],
            r#"{"records":[{"value":"x"}]}"#,
        )
        .await;
    assert_eq!(s, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{body}");
    assert_eq!(body["code"], "unsupported_media_type", "{body}");

    // Negative timestamps are refused, and nothing is written.
    let (s, body) = api
        .json(
            Method::POST,
            "/v1/topics/edges/records",
            json!({"records": [{"value": "ok"}, {"value": "old", "timestamp": -5}]}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["code"], "invalid_timestamp", "{body}");
    let (_, body) = api
        .call(
            Method::GET,
            "/v1/topics/edges/partitions/0/records?offset=0",
            None,
        )
        .await;
    assert_eq!(body["high_watermark"], 0, "{body}");

    // A name no topic can have is invalid, not unknown.
    let (s, body) = api
        .json(
            Method::POST,
            "/v1/topics/bad%20name/records",
            json!({"records": [{"value": "x"}]}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["code"], "invalid_topic_name", "{body}");

    // limit=0 asks for nothing: refused rather than answered with one record.
    let (s, body) = api
        .json(
            Method::POST,
            "/v1/topics/edges/records",
            json!({"records": [{"value": "a"}, {"value": "b"}]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let (s, body) = api
        .call(
            Method::GET,
            "/v1/topics/edges/partitions/0/records?offset=0&limit=0",
            None,
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["code"], "invalid_query", "{body}");

    // The live tail: an offset out of range is 416 before the stream starts, as on the
    // records endpoint.
    let (s, body) = api
        .call(
            Method::GET,
            "/v1/topics/edges/partitions/0/stream?offset=99",
            None,
        )
        .await;
    assert_eq!(s, StatusCode::RANGE_NOT_SATISFIABLE, "{body}");
}

/// A reconnecting EventSource sends Last-Event-ID: the stream resumes after that record.
#[tokio::test]
async fn the_live_tail_resumes_after_last_event_id() {
    let api = api().await;
    let (s, _) = api
        .json(
            Method::POST,
            "/v1/topics",
            json!({"name": "tailed", "partitions": 1}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, body) = api
        .json(
            Method::POST,
            "/v1/topics/tailed/records",
            json!({"records": [{"value": "r0"}, {"value": "r1"}, {"value": "r2"}]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let request = Request::builder()
        .method(Method::GET)
        .uri("/v1/topics/tailed/partitions/0/stream?offset=0")
        .header("last-event-id", "0")
        .body(Body::empty())
        .expect("request");
    let response = api.app.clone().oneshot(request).await.expect("response");
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.into_body().into_data_stream();
    let mut text = String::new();
    while !text.contains("r2") {
        let chunk =
            tokio::time::timeout(Duration::from_secs(10), futures::StreamExt::next(&mut body))
                .await
                .expect("an event in time")
                .expect("the stream goes on")
                .expect("bytes");
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(
        !text.contains("\"r0\""),
        "record 0 was already seen: {text}"
    );
    assert!(text.contains("id: 1") && text.contains("\"r1\""), "{text}");
}

/// Browsers may call the API from the origins `http.cors_origins` names, and only those.
#[tokio::test]
async fn cors_answers_the_configured_origins_only() {
    let plain = api().await;
    let request = |origin: &str| {
        Request::builder()
            .method(Method::OPTIONS)
            .uri("/v1/topics")
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type")
            .body(Body::empty())
            .expect("request")
    };
    let answer = plain
        .app
        .clone()
        .oneshot(request("https://console.test"))
        .await
        .expect("response");
    assert!(
        answer
            .headers()
            .get("access-control-allow-origin")
            .is_none(),
        "no CORS unless configured"
    );

    let allowed = api_with(HttpSettings {
        cors_origins: vec!["https://console.test".into()],
        ..HttpSettings::default()
    })
    .await;
    let app = allowed.app.clone();
    let answer = app
        .clone()
        .oneshot(request("https://console.test"))
        .await
        .expect("response");
    assert_eq!(
        answer.headers()["access-control-allow-origin"],
        "https://console.test"
    );
    let answer = app
        .clone()
        .oneshot(request("https://elsewhere.test"))
        .await
        .expect("response");
    assert!(
        answer
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
    let bad = HttpSettings {
        cors_origins: vec!["console.test".into()],
        ..HttpSettings::default()
    };
    assert!(
        bad.cors()
            .expect_err("not an origin")
            .contains("cors_origins")
    );
}
