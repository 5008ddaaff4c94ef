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
        }
    }
}
