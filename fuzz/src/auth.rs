//! Authentication input: SASL messages (PLAIN, and SCRAM's client-first and client-final)
//! and the Authorization header of a secured HTTP API.

use std::sync::OnceLock;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderValue, Method, Request};
use http_body_util::BodyExt;
use silt_auth::scram::{self, ScramServer};
use silt_auth::{AclSettings, Authenticator, Authorizer, BearerToken, Principal};
use silt_http::{AppState, HttpSecurity, HttpSettings, router};
use silt_metadata::{ScramCredential, ScramMechanism};
use tower::ServiceExt;

use crate::harness::{PATIENCE, node};

/// The user and password the seeds use; the token of the secured HTTP API.
pub const USER: &str = "alice";
pub const PASSWORD: &str = "wonderland";
pub const TOKEN: &str = "fuzz-token";

/// Fewest PBKDF2 rounds Kafka allows: each password check of an input costs one.
const ITERATIONS: u32 = scram::MIN_ITERATIONS;

fn credential(mechanism: ScramMechanism) -> &'static ScramCredential {
    static CREDENTIALS: OnceLock<[ScramCredential; 2]> = OnceLock::new();
    let both = CREDENTIALS.get_or_init(|| {
        ScramMechanism::ALL.map(|m| scram::new_credential(USER, PASSWORD, m, ITERATIONS))
    });
    &both[usize::from(mechanism == ScramMechanism::Sha512)]
}

fn secured_app() -> &'static Router {
    static APP: OnceLock<Router> = OnceLock::new();
    APP.get_or_init(|| {
        let node = node();
        node.runtime.block_on(async {
            for m in ScramMechanism::ALL {
                node.metadata
                    .set_scram_credential(credential(m))
                    .await
                    .expect("credential");
            }
        });
        let sha256 =
            silt_auth::parse_sha256_hex(&silt_auth::token_sha256_hex(TOKEN)).expect("hash");
        let state = AppState::new(
            node.metadata.clone(),
            node.ingest.clone(),
            node.reader.clone(),
            node.groups.clone(),
            HttpSettings::default(),
            None,
        )
        .with_security(HttpSecurity {
            require_auth: true,
            authenticator: Authenticator::new(
                node.metadata.clone(),
                vec![BearerToken {
                    principal: Principal::user("ci"),
                    sha256,
                }],
            ),
            authorizer: Authorizer::new(
                AclSettings {
                    enabled: true,
                    ..AclSettings::default()
                },
                node.metadata.clone(),
            ),
        });
        router(state)
    })
}

/// Byte 0 selects what the rest is: 0 a PLAIN message; 1 and 2 SCRAM-SHA-256 and
/// SCRAM-SHA-512 client-first, then (after a 0xff byte) client-final, for `alice`'s real
/// credential or an unknown user's; 3 an HTTP Authorization header.
///
/// Nothing may panic; no SCRAM proof made without the password may pass (the server's
/// nonce is fresh, so no input can carry a valid proof); the HTTP API answers 200 (the
/// right credentials), 401 or 403 with its JSON error body, never a 5xx.
pub fn auth_input(data: &[u8]) {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    match selector % 4 {
        0 => {
            if let Ok((user, password)) = scram::parse_plain(rest) {
                assert!(!user.is_empty(), "PLAIN accepted an empty user");
                let _ = password;
            }
        }
        kind @ (1 | 2) => {
            let mechanism = if kind == 1 {
                ScramMechanism::Sha256
            } else {
                ScramMechanism::Sha512
            };
            let (first, last) = match rest.iter().position(|b| *b == 0xff) {
                Some(i) => (&rest[..i], &rest[i + 1..]),
                None => (rest, &[][..]),
            };
            let mut server = ScramServer::new(mechanism);
            let Ok(user) = server.client_first(first) else {
                return;
            };
            let known = (user == USER).then(|| credential(mechanism).clone());
            let server_first = server.server_first(known);
            assert!(
                server_first.starts_with(b"r="),
                "server-first is not r=…: {server_first:?}"
            );
            assert!(
                server.client_final(last).is_err(),
                "a client-final made without the server's nonce or the password passed: {:?}",
                String::from_utf8_lossy(last)
            );
        }
        _ => http_header(rest),
    }
}

fn http_header(value: &[u8]) {
    let Ok(header) = HeaderValue::from_bytes(value) else {
        return; // not a header any client could send
    };
    let request = Request::builder()
        .method(Method::GET)
        .uri("/v1/topics")
        .header("authorization", header)
        .body(Body::empty())
        .expect("request");
    let app = secured_app();
    let answer = node().runtime.block_on(async {
        tokio::time::timeout(PATIENCE, async {
            let response = app.clone().oneshot(request).await.expect("infallible");
            let status = response.status();
            let bytes = response.into_body().collect().await.map(|b| b.to_bytes());
            (status, bytes)
        })
        .await
    });
    let (status, body) = answer.expect("an Authorization header answered in time");
    let body = body.expect("a buffered body cannot fail");
    assert!(
        matches!(status.as_u16(), 200 | 401 | 403),
        "Authorization {:?} answered {status}: {}",
        String::from_utf8_lossy(value),
        String::from_utf8_lossy(&body)
    );
    if status.as_u16() != 200 {
        let error: serde_json::Value = serde_json::from_slice(&body).expect("a JSON error body");
        assert!(error["code"].is_string() && error["message"].is_string());
    }
}
