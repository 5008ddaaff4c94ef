//! The `[http]` settings, carried by this crate so the binary composes them instead of
//! mirroring them.

use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A bearer token the HTTP API accepts: the hex SHA-256 of the token (`silt users token`
/// makes one) and the principal it stands for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpToken {
    pub principal: String,
    pub sha256: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
/// The `[http]` settings of a node: its listener, limits and authentication.
pub struct HttpSettings {
    pub addr: SocketAddr,
    /// Largest request body.
    pub max_request_bytes: usize,
    /// Longest long poll (`wait_ms`) a client may ask for.
    #[serde(with = "humantime_serde")]
    pub max_wait: Duration,
    /// Serve HTTPS with the `[tls]` certificate.
    pub tls: bool,
    /// Require every request but health checks to authenticate: HTTP basic auth with a
    /// user's password (its SCRAM credential), or a bearer token from `tokens`.
    pub require_auth: bool,
    pub tokens: Vec<HttpToken>,
    /// Origins allowed to call the API from a browser (CORS), e.g.
    /// `["https://console.example.com"]`; `["*"]` allows any origin. Empty: no CORS
    /// headers, so browsers refuse cross-origin calls.
    pub cors_origins: Vec<String>,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            max_request_bytes: 32 << 20,
            max_wait: Duration::from_secs(30),
            tls: false,
            require_auth: false,
            tokens: Vec::new(),
            cors_origins: Vec::new(),
        }
    }
}

impl HttpSettings {
    /// The CORS layer `cors_origins` asks for (`Ok(None)` when empty); the error names the
    /// origin that is not one.
    pub fn cors(&self) -> Result<Option<tower_http::cors::CorsLayer>, String> {
        use axum::http::{HeaderName, HeaderValue, Method, header};
        use tower_http::cors::{AllowOrigin, CorsLayer};
        if self.cors_origins.is_empty() {
            return Ok(None);
        }
        let origin = if self.cors_origins.iter().any(|o| o == "*") {
            AllowOrigin::any()
        } else {
            let origins = self
                .cors_origins
                .iter()
                .map(|o| {
                    HeaderValue::from_str(o.trim_end_matches('/'))
                        .ok()
                        .filter(|_| o.starts_with("http://") || o.starts_with("https://"))
                        .ok_or_else(|| {
                            format!("http.cors_origins: '{o}' is not an origin like https://console.example.com")
                        })
                })
                .collect::<Result<Vec<_>, _>>()?;
            AllowOrigin::list(origins)
        };
        Ok(Some(
            CorsLayer::new()
                .allow_origin(origin)
                .allow_methods([Method::GET, Method::POST, Method::PUT, Method::DELETE])
                .allow_headers([
                    header::CONTENT_TYPE,
                    header::AUTHORIZATION,
                    HeaderName::from_static("last-event-id"),
                ]),
        ))
    }
}
