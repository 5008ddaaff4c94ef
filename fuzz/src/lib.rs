//! Fuzz targets. Each takes arbitrary bytes and checks that Silt answers bad input with an
//! error and nothing worse: no panic, no hang, no malformed answer, no wrong record.
//!
//! - [`kafka_request`]: a request frame through header decoding, body decoding and the
//!   API handlers of a node (in-memory store, SQLite metadata), like a connection does.
//! - [`segment_object`]: segment objects — arbitrary bytes as a whole object, and damage
//!   (flips, overwrites, truncation) applied to a known segment, whose chunks must then
//!   fail or read back exactly.
//! - [`http_body`]: request bodies of the HTTP API's writing endpoints.
//! - [`auth_input`]: SASL messages (PLAIN, SCRAM) and HTTP Authorization headers.
//!
//! Two drivers run them: `fuzz/libfuzzer` (coverage-guided, nightly: `cargo fuzz`), and
//! the tests of this crate on stable, which replay the seeds and every kept regression
//! case and run a seeded mutation round in CI (see `docs/reliability.md`).

mod auth;
mod harness;
mod http;
mod kafka;
pub mod mutate;
pub mod seeds;
mod segment;

pub use auth::auth_input;
pub use http::http_body;
pub use kafka::{kafka_request, kafka_still_serves};
pub use segment::segment_object;

/// A fuzz target: bytes in, a panic on any failure.
pub type Target = fn(&[u8]);

/// The fuzz targets by name (the names of their seed and regression folders).
pub const TARGETS: &[(&str, Target)] = &[
    ("kafka_request", kafka_request),
    ("segment_object", segment_object),
    ("http_body", http_body),
    ("auth_input", auth_input),
];
