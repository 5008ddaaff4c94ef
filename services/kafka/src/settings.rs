//! The `[kafka]` settings, carried by this crate so the binary composes them instead of
//! mirroring them.

use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
/// The `[kafka]` settings of a node: its listener, what clients are told, limits and
/// authentication.
pub struct KafkaSettings {
    /// Address the Kafka listener binds to.
    pub addr: SocketAddr,
    /// `host:port` clients are told to connect to; default: `addr` (which must then not be
    /// a wildcard address like 0.0.0.0).
    pub advertised_addr: Option<String>,
    /// Largest request accepted (Kafka's `socket.request.max.bytes`).
    pub max_frame_bytes: usize,
    /// Request bytes read from all connections and not yet handed over to ingest (Kafka's
    /// `queued.max.request.bytes`); past it the node stops reading sockets.
    pub max_queued_request_bytes: usize,
    pub cluster_id: String,
    /// Serve Kafka over TLS with the `[tls]` certificate (Kafka's `SSL` listener).
    pub tls: bool,
    /// SASL mechanisms clients must authenticate with: any of PLAIN, SCRAM-SHA-256,
    /// SCRAM-SHA-512 (Kafka's `sasl.enabled.mechanisms`). Empty: no SASL.
    pub sasl_mechanisms: Vec<String>,
    /// How long a SASL session lasts before the client must re-authenticate (Kafka's
    /// `connections.max.reauth.ms`, KIP-368); unset: forever.
    #[serde(with = "humantime_serde", skip_serializing_if = "Option::is_none")]
    pub max_reauth: Option<Duration>,
}

impl Default for KafkaSettings {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 9092)),
            advertised_addr: None,
            max_frame_bytes: 100 << 20,
            max_queued_request_bytes: 16 << 20,
            cluster_id: "silt-dev".into(),
            tls: false,
            sasl_mechanisms: Vec::new(),
            max_reauth: None,
        }
    }
}

impl KafkaSettings {
    /// The advertised host and port, checked; the error names the setting to fix.
    pub fn advertised(&self) -> Result<(String, u16), String> {
        match &self.advertised_addr {
            Some(a) => {
                let (host, port) = a
                    .rsplit_once(':')
                    .ok_or_else(|| format!("kafka.advertised_addr '{a}' is not host:port"))?;
                let port = port
                    .parse()
                    .map_err(|_| format!("kafka.advertised_addr '{a}' has no valid port"))?;
                if host.is_empty() {
                    return Err(format!("kafka.advertised_addr '{a}' has no host"));
                }
                Ok((host.trim_matches(['[', ']']).to_string(), port))
            }
            None if self.addr.ip().is_unspecified() => Err(format!(
                "kafka.advertised_addr is required when kafka.addr is {} (clients cannot connect to it)",
                self.addr
            )),
            None => Ok((self.addr.ip().to_string(), self.addr.port())),
        }
    }
}
