//! Who a client is and what it may do, shared by the Kafka and HTTP doors.
//!
//! - [`scram`]: SASL SCRAM-SHA-256/512 and PLAIN exchanges on SCRAM credentials kept by
//!   the metadata service (salted hashes; the server never stores a password).
//! - [`Authenticator`]: password checks for PLAIN and HTTP basic auth, bearer tokens, and
//!   rate-limited logging of failures.
//! - [`Authorizer`]: Kafka-model ACLs.
//!
//! Depends on `silt-metadata` only.

mod acl;
pub mod scram;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_lc_rs::{constant_time, digest, hmac, rand};
use silt_metadata::{ScramMechanism, SecurityStore};
use tracing::warn;

pub use acl::{AclSettings, Authorizer};

/// An authenticated identity, as Kafka writes it: `User:alice`. Clients that did not
/// authenticate are `User:ANONYMOUS`; a client certificate gives `User:` and its subject.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Principal(String);

impl Principal {
    pub fn user(name: &str) -> Self {
        Self(format!("User:{name}"))
    }

    pub fn anonymous() -> Self {
        Self::user("ANONYMOUS")
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `User` of `User:alice`.
    pub fn kind(&self) -> &str {
        self.0.split_once(':').map_or("", |(kind, _)| kind)
    }

    /// `alice` of `User:alice`.
    pub fn name(&self) -> &str {
        self.0.split_once(':').map_or(&self.0, |(_, name)| name)
    }
}

impl std::fmt::Display for Principal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A bearer token the HTTP API accepts, kept as the hex SHA-256 of the token.
#[derive(Debug, Clone)]
pub struct BearerToken {
    pub principal: Principal,
    pub sha256: [u8; 32],
}

/// The hex SHA-256 of a token (what configuration holds).
pub fn token_sha256_hex(token: &str) -> String {
    digest::digest(&digest::SHA256, token.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Parses a 64-digit hex SHA-256.
pub fn parse_sha256_hex(hex: &str) -> Option<[u8; 32]> {
    if hex.len() != 64 || !hex.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// A new random bearer token (URL-safe, 256 bits, prefixed `silt_`: a token starting with
/// `-` read as an option by command lines, `silt groups list --token -x…` among them).
pub fn new_token() -> String {
    use base64::Engine;
    let mut bytes = [0u8; 32];
    rand::fill(&mut bytes).expect("the system random generator works");
    format!(
        "silt_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

/// The name of the cluster secret stand-in credentials derive from.
const STAND_IN_SECRET: &str = "scram-stand-in";

/// How long a checked password is remembered (HTTP basic auth sends it with every
/// request; PBKDF2 is slow on purpose).
const PASSWORD_CACHE_TTL: Duration = Duration::from_secs(30);
const PASSWORD_CACHE_MAX: usize = 10_000;

/// Checks passwords and tokens against what the metadata service and configuration hold,
/// and logs failures without flooding the log.
pub struct Authenticator {
    metadata: Arc<dyn SecurityStore>,
    tokens: Vec<BearerToken>,
    /// Keyed by an HMAC of user and password under a per-process key (never the password).
    checked: Mutex<HashMap<Vec<u8>, Instant>>,
    cache_key: hmac::Key,
    failures: FailureLog,
    /// The cluster's key of stand-in credentials, read from the metadata service at first
    /// use.
    stand_in_key: tokio::sync::OnceCell<Arc<[u8]>>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("tokens", &self.tokens.len())
            .finish_non_exhaustive()
    }
}

impl Authenticator {
    pub fn new(metadata: Arc<dyn SecurityStore>, tokens: Vec<BearerToken>) -> Arc<Self> {
        let mut key = [0u8; 32];
        rand::fill(&mut key).expect("the system random generator works");
        Arc::new(Self {
            metadata,
            tokens,
            checked: Mutex::new(HashMap::new()),
            cache_key: hmac::Key::new(hmac::HMAC_SHA256, &key),
            failures: FailureLog::new(20, Duration::from_secs(10)),
            stand_in_key: tokio::sync::OnceCell::new(),
        })
    }

    pub fn metadata(&self) -> &Arc<dyn SecurityStore> {
        &self.metadata
    }

    /// The cluster-wide key stand-in credentials of unknown users derive from: the same on
    /// every node and across restarts, so no answer tells an unknown user from a known
    /// one. Made (randomly, by the first node to ask) and kept by the metadata service.
    pub async fn stand_in_key(&self) -> silt_metadata::Result<Arc<[u8]>> {
        self.stand_in_key
            .get_or_try_init(|| async {
                let mut proposed = [0u8; 32];
                rand::fill(&mut proposed).expect("the system random generator works");
                let key = self
                    .metadata
                    .cluster_secret(STAND_IN_SECRET, &proposed)
                    .await?;
                Ok(Arc::from(key))
            })
            .await
            .cloned()
    }

    /// Whether `password` is `user`'s: checked against the user's SCRAM-SHA-512
    /// credential, else its SCRAM-SHA-256 one. `Err` when the metadata service cannot be
    /// asked.
    pub async fn check_password(&self, user: &str, password: &str) -> silt_metadata::Result<bool> {
        // Both credentials are always looked up, so a known and an unknown user cost the
        // same lookups; an unknown user also costs the same key derivation (a stand-in at
        // the default iteration count): response times do not tell which users exist.
        let sha512 = self
            .metadata
            .scram_credential(user, ScramMechanism::Sha512)
            .await?;
        let sha256 = self
            .metadata
            .scram_credential(user, ScramMechanism::Sha256)
            .await?;
        let found = sha512.or(sha256);
        let unknown = found.is_none();
        let credential = match found {
            Some(c) => c,
            None => scram::stand_in_credential(user, &self.stand_in_key().await?),
        };
        // A remembered check is keyed by the credential too: a changed or removed
        // password stops working at once.
        let mut tag = Vec::with_capacity(user.len() + password.len() + 2 + 64);
        tag.extend_from_slice(user.as_bytes());
        tag.push(0);
        tag.extend_from_slice(password.as_bytes());
        tag.push(0);
        tag.extend_from_slice(&credential.stored_key);
        let key = hmac::sign(&self.cache_key, &tag).as_ref().to_vec();
        if !unknown {
            let checked = self.checked.lock().unwrap_or_else(|e| e.into_inner());
            if checked
                .get(&key)
                .is_some_and(|at| at.elapsed() < PASSWORD_CACHE_TTL)
            {
                return Ok(true);
            }
        }
        let password = password.to_string();
        let matches =
            tokio::task::spawn_blocking(move || scram::verify_password(&credential, &password))
                .await
                .unwrap_or(false);
        let ok = matches && !unknown;
        if ok {
            let mut checked = self.checked.lock().unwrap_or_else(|e| e.into_inner());
            if checked.len() >= PASSWORD_CACHE_MAX {
                checked.retain(|_, at| at.elapsed() < PASSWORD_CACHE_TTL);
                if checked.len() >= PASSWORD_CACHE_MAX {
                    checked.clear();
                }
            }
            checked.insert(key, Instant::now());
        }
        Ok(ok)
    }

    /// The principal of a bearer token, if it is one of the configured tokens.
    pub fn check_token(&self, token: &str) -> Option<Principal> {
        let hash = digest::digest(&digest::SHA256, token.as_bytes());
        self.tokens
            .iter()
            .find(|t| constant_time::verify_slices_are_equal(hash.as_ref(), &t.sha256).is_ok())
            .map(|t| t.principal.clone())
    }

    /// Logs a failed authentication (rate-limited) and counts it.
    pub fn failed(&self, door: &'static str, who: &str, peer: Option<SocketAddr>, reason: &str) {
        metrics::counter!("silt_auth_failures_total", "door" => door).increment(1);
        self.failures.log(door, who, peer, reason);
    }
}

/// At most `burst` warnings per `window`; the rest are counted and summed up in the next
/// warning that is let through.
#[derive(Debug)]
pub struct FailureLog {
    burst: u64,
    window: Duration,
    state: Mutex<(Instant, u64)>,
    suppressed: AtomicU64,
}

impl FailureLog {
    pub fn new(burst: u64, window: Duration) -> Self {
        Self {
            burst,
            window,
            state: Mutex::new((Instant::now(), 0)),
            suppressed: AtomicU64::new(0),
        }
    }

    /// Whether a warning may be written now.
    fn admit(&self) -> bool {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.0.elapsed() >= self.window {
            *state = (Instant::now(), 0);
        }
        state.1 += 1;
        state.1 <= self.burst
    }

    pub fn log(&self, door: &str, who: &str, peer: Option<SocketAddr>, reason: &str) {
        if !self.admit() {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let suppressed = self.suppressed.swap(0, Ordering::Relaxed);
        let peer = peer.map(|p| p.to_string()).unwrap_or_default();
        warn!(
            door,
            principal = who,
            peer,
            reason,
            suppressed_since_last = suppressed,
            "authentication failed"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn principals_split_into_kind_and_name() {
        let p = Principal::user("CN=alice,O=Example");
        assert_eq!(p.as_str(), "User:CN=alice,O=Example");
        assert_eq!(p.kind(), "User");
        assert_eq!(p.name(), "CN=alice,O=Example");
    }

    #[test]
    fn token_hashes_round_trip() {
        let token = new_token();
        assert!(token.starts_with("silt_"), "never a leading '-': {token}");
        let hex = token_sha256_hex(&token);
        let parsed = parse_sha256_hex(&hex).expect("hex");
        assert_eq!(
            parsed.as_ref(),
            digest::digest(&digest::SHA256, token.as_bytes()).as_ref()
        );
        assert!(parse_sha256_hex("zz").is_none());
    }

    #[test]
    fn the_failure_log_lets_a_burst_through_per_window() {
        let log = FailureLog::new(3, Duration::from_secs(3600));
        let admitted = (0..10).filter(|_| log.admit()).count();
        assert_eq!(admitted, 3);
    }
}
