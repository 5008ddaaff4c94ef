//! Node configuration: serde structs with defaults, loaded from a TOML file, then
//! `SILT_*` environment variables (nested keys joined by `__`, e.g.
//! `SILT_INGEST__LINGER=50ms`), then command-line flags; validated before anything starts.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::bail;
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};
use silt_metadata::Role;
use silt_storage::{FaultSettings, S3Settings};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Folder for everything local: the SQLite metadata file, the local object store
    /// (when no S3 bucket is set) and the disk cache.
    pub data_dir: PathBuf,
    pub http: silt_http::HttpSettings,
    pub kafka: silt_kafka::KafkaSettings,
    /// Topic defaults every door applies: auto-creation, partition count, record size.
    pub topics: silt_ingest::TopicDefaults,
    pub storage: StorageConfig,
    /// Batching of records into segments.
    pub ingest: silt_ingest::IngestConfig,
    /// The reader's chunk cache.
    pub cache: silt_reader::ReaderConfig,
    pub node: NodeSettings,
    pub metadata: MetadataSettings,
    /// The compactor role: lake layout, retention, garbage collection.
    pub compactor: silt_compactor::CompactorConfig,
    pub log: LogConfig,
    /// The certificate of every listener with `tls = true`.
    pub tls: silt_tls::TlsSettings,
    /// Authorisation (ACLs, super users).
    pub auth: AuthSettings,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("silt-data"),
            http: silt_http::HttpSettings::default(),
            kafka: silt_kafka::KafkaSettings::default(),
            topics: silt_ingest::TopicDefaults::default(),
            storage: StorageConfig::default(),
            ingest: silt_ingest::IngestConfig::default(),
            cache: silt_reader::ReaderConfig::default(),
            node: NodeSettings::default(),
            metadata: MetadataSettings::default(),
            compactor: silt_compactor::CompactorConfig::default(),
            log: LogConfig::default(),
            tls: silt_tls::TlsSettings::default(),
            auth: AuthSettings::default(),
        }
    }
}

/// The `[auth]` settings: Kafka's authoriser.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthSettings {
    /// Enforce ACLs on the Kafka and HTTP doors (Kafka's `authorizer.class.name`).
    pub acls: bool,
    /// Principals allowed everything (Kafka's `super.users`), e.g. `["User:admin"]`.
    pub super_users: Vec<String>,
    /// Allow operations on resources no ACL names (Kafka's
    /// `allow.everyone.if.no.acl.found`).
    pub allow_if_no_acls: bool,
    /// How often a node reloads ACLs changed through other nodes.
    #[serde(with = "humantime_serde")]
    pub acl_refresh: Duration,
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            acls: false,
            super_users: Vec::new(),
            allow_if_no_acls: false,
            acl_refresh: Duration::from_secs(2),
        }
    }
}

/// Where objects live: a local folder (default: `<data_dir>/objects`) or, when
/// `s3.bucket` is set, an S3-compatible bucket.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    pub local_dir: Option<PathBuf>,
    /// `silt serve` only: the local folder is the same folder on every node (a shared
    /// mount, or one host in tests). Without it, a cluster node refuses a local folder:
    /// the other nodes could not read what it writes.
    pub local_shared: bool,
    pub s3: S3Settings,
    /// Test clusters only: injected object-store faults (off by default).
    pub fault_injection: FaultSettings,
}

/// Who this node is in a cluster (`silt serve`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NodeSettings {
    /// Broker id in Kafka metadata; unique per live node. Generated at start when unset
    /// (`silt dev` uses 0).
    pub id: Option<i32>,
    /// Roles `silt serve` runs: any of metadata, ingest, reader, compactor.
    pub roles: Vec<Role>,
    /// Availability zone or rack, shown to Kafka clients as `broker.rack`.
    pub rack: Option<String>,
    /// How often the node renews its entry in the live-node list.
    #[serde(with = "humantime_serde")]
    pub heartbeat_interval: Duration,
    /// How long an entry lives without renewal: a node that stops heartbeating leaves the
    /// list (and Kafka metadata) after this long.
    #[serde(with = "humantime_serde")]
    pub heartbeat_ttl: Duration,
}

impl Default for NodeSettings {
    fn default() -> Self {
        Self {
            id: None,
            roles: vec![Role::Ingest, Role::Reader],
            rack: None,
            heartbeat_interval: Duration::from_secs(1),
            heartbeat_ttl: Duration::from_secs(5),
        }
    }
}

/// The metadata service: where the metadata role keeps its state and listens, and where
/// other roles find it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetadataSettings {
    /// Listener of the metadata role.
    pub addr: SocketAddr,
    /// Store of the metadata role: `sqlite:PATH` or a `postgres://` URL. Default: the
    /// SQLite file in `data_dir`.
    pub store: Option<String>,
    /// Base URLs of the metadata processes (active and standbys), for the other roles.
    /// Default: this node's own metadata listener.
    pub urls: Vec<String>,
    /// Serve the metadata listener over TLS with the `[tls]` certificate (its URLs are
    /// then `https://`).
    pub tls: bool,
}

impl Default for MetadataSettings {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 9093)),
            store: None,
            urls: Vec::new(),
            tls: false,
        }
    }
}

/// Where the metadata role keeps its state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetadataStoreKind {
    Sqlite(PathBuf),
    Postgres(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// A `tracing` filter, e.g. `info` or `silt_ingest=debug,info`. `RUST_LOG` wins if set.
    pub filter: String,
    /// `text` (coloured on a terminal only) or `json` (one object per line).
    pub format: LogFormat,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            filter: "info".into(),
            format: LogFormat::Text,
        }
    }
}

/// Each configuration error in the user's terms: the setting as the TOML file and the
/// environment spell it (`ingest.linger`, `SILT_INGEST__LINGER`), where it came from, and
/// what is wrong with it.
fn describe(errors: figment::Error) -> String {
    errors
        .into_iter()
        .map(|e| {
            let key: Vec<String> = e.path.iter().map(|k| k.to_lowercase()).collect();
            let setting = if key.is_empty() {
                "the configuration".to_string()
            } else {
                format!("{} (SILT_{})", key.join("."), key.join("__").to_uppercase())
            };
            let source = match e.metadata.as_ref() {
                Some(m) => match &m.source {
                    Some(figment::Source::File(path)) => format!(" in {}", path.display()),
                    _ if m.name.contains("environment") => " in the environment".to_string(),
                    _ => String::new(),
                },
                None => String::new(),
            };
            let what = match &e.kind {
                figment::error::Kind::UnknownField(field, expected) => format!(
                    "unknown setting '{field}'; known here: {}",
                    expected.join(", ")
                ),
                other => other.to_string(),
            };
            format!("  {setting}{source}: {what}")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Lets every size setting (a key ending in `_bytes`) be written with a unit, `64MiB`,
/// `512 KiB`, `1.5GiB` (binary) or `10MB` (decimal), as well as a plain number of bytes:
/// such values are turned into byte counts before the settings are read.
fn sizes_in_bytes(figment: Figment) -> anyhow::Result<Figment> {
    use figment::value::{Dict, Value};
    fn walk(dict: &Dict, path: &mut Vec<String>, errors: &mut Vec<String>) -> Dict {
        let mut out = Dict::new();
        for (key, value) in dict {
            path.push(key.clone());
            match value {
                Value::Dict(_, inner) => {
                    let converted = walk(inner, path, errors);
                    if !converted.is_empty() {
                        out.insert(key.clone(), Value::from(converted));
                    }
                }
                Value::String(_, text) if key.ends_with("_bytes") => {
                    match text.trim().parse::<bytesize::ByteSize>() {
                        Ok(size) => {
                            out.insert(key.clone(), Value::from(size.as_u64()));
                        }
                        Err(_) => errors.push(format!(
                            "  {} (SILT_{}): '{text}' is not a size; write bytes (1048576) or a size with a unit (1MiB, 64 KiB, 10MB)",
                            path.join("."),
                            path.join("__").to_uppercase()
                        )),
                    }
                }
                _ => {}
            }
            path.pop();
        }
        out
    }
    let Ok(all) = figment.extract::<Dict>() else {
        // Let the typed read report what is wrong.
        return Ok(figment);
    };
    let mut errors = Vec::new();
    let converted = walk(&all, &mut Vec::new(), &mut errors);
    if !errors.is_empty() {
        bail!("invalid configuration:\n{}", errors.join("\n"));
    }
    Ok(if converted.is_empty() {
        figment
    } else {
        figment.merge(Serialized::defaults(converted))
    })
}

impl Config {
    /// Defaults, then the TOML file (if any), then `SILT_*` environment variables.
    pub fn load(file: Option<&Path>) -> anyhow::Result<Self> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(file) = file {
            if !file.exists() {
                bail!("config file {} does not exist", file.display());
            }
            figment = figment.merge(Toml::file(file));
        }
        figment = figment.merge(Env::prefixed("SILT_").split("__"));
        let figment = sizes_in_bytes(figment)?;
        let config: Config = figment
            .extract()
            .map_err(|e| anyhow::anyhow!("invalid configuration:\n{}", describe(e)))?;
        Ok(config)
    }

    /// Checks values that types alone cannot, naming the field at fault.
    pub fn validate(&self) -> anyhow::Result<()> {
        let i = &self.ingest;
        if i.linger.is_zero() || i.linger > Duration::from_secs(10) {
            bail!(
                "ingest.linger must be between 1ms and 10s, not {:?}",
                i.linger
            );
        }
        if i.max_segment_bytes < 1024 {
            bail!("ingest.max_segment_bytes must be at least 1024");
        }
        if i.max_buffered_bytes < i.max_segment_bytes {
            bail!("ingest.max_buffered_bytes must be at least ingest.max_segment_bytes");
        }
        if i.max_buffered_bytes > u32::MAX as usize {
            bail!("ingest.max_buffered_bytes must be below 4 GiB");
        }
        if i.max_inflight_segments == 0 {
            bail!("ingest.max_inflight_segments must be at least 1");
        }
        if self.topics.max_message_bytes == 0
            || self.topics.max_message_bytes > self.http.max_request_bytes
        {
            bail!("topics.max_message_bytes must be between 1 and http.max_request_bytes");
        }
        if self.topics.max_message_bytes > i.max_buffered_bytes {
            bail!("topics.max_message_bytes must not exceed ingest.max_buffered_bytes");
        }
        if self.cache.memory_cache_bytes < 1 << 20 {
            bail!("cache.memory_bytes must be at least 1 MiB");
        }
        self.kafka.advertised().map_err(anyhow::Error::msg)?;
        if self.topics.default_partitions < 1 {
            bail!("topics.default_partitions must be at least 1");
        }
        if self.kafka.max_frame_bytes < 1024 {
            bail!("kafka.max_frame_bytes must be at least 1024");
        }
        self.storage
            .fault_injection
            .validate()
            .map_err(anyhow::Error::msg)?;
        if self.kafka.max_queued_request_bytes < 1024 {
            bail!("kafka.max_queued_request_bytes must be at least 1024");
        }
        if self.node.id.is_some_and(|id| id < 0) {
            bail!("node.id must be 0 or more");
        }
        if self.node.heartbeat_interval.is_zero()
            || self.node.heartbeat_ttl < self.node.heartbeat_interval * 2
        {
            bail!("node.heartbeat_ttl must be at least twice node.heartbeat_interval (> 0)");
        }
        self.metadata_store()?;
        let c = &self.compactor;
        if c.target_file_bytes < 1 << 20 || c.rows_per_group == 0 {
            bail!(
                "compactor.target_file_bytes must be at least 1 MiB and compactor.rows_per_group at least 1"
            );
        }
        if c.interval.is_zero() {
            bail!("compactor.interval must be positive");
        }
        for url in &self.metadata.urls {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                bail!("metadata.urls: '{url}' is not an http:// URL");
            }
        }
        let s3 = &self.storage.s3;
        if s3.bucket.is_empty() && (s3.endpoint.is_some() || s3.create_bucket) {
            bail!("storage.s3.bucket is required when storage.s3.endpoint or create_bucket is set");
        }
        if s3.request_timeout.is_zero() {
            bail!("storage.s3.request_timeout must be positive");
        }
        for m in &self.kafka.sasl_mechanisms {
            if !silt_kafka::SASL_MECHANISMS.contains(&m.as_str()) {
                bail!(
                    "kafka.sasl_mechanisms: unknown mechanism '{m}'; known: {}",
                    silt_kafka::SASL_MECHANISMS.join(", ")
                );
            }
        }
        if self
            .kafka
            .max_reauth
            .is_some_and(|d| d < Duration::from_secs(1))
        {
            bail!("kafka.max_reauth must be at least 1s");
        }
        if self.kafka.max_reauth.is_some() && self.kafka.sasl_mechanisms.is_empty() {
            bail!("kafka.max_reauth needs kafka.sasl_mechanisms");
        }
        for p in &self.auth.super_users {
            if !p.contains(':') {
                bail!("auth.super_users: '{p}' is not a principal like User:admin");
            }
        }
        if self.auth.acl_refresh.is_zero() {
            bail!("auth.acl_refresh must be positive");
        }
        for t in &self.http.tokens {
            if !t.principal.contains(':') {
                bail!(
                    "http.tokens: '{}' is not a principal like User:ci",
                    t.principal
                );
            }
            if silt_auth::parse_sha256_hex(&t.sha256).is_none() {
                bail!(
                    "http.tokens: the sha256 of {}'s token is not 64 hex digits",
                    t.principal
                );
            }
        }
        self.http.cors().map_err(anyhow::Error::msg)?;
        if !self.http.tokens.is_empty() && !self.http.require_auth {
            bail!("http.tokens are only used with http.require_auth = true");
        }
        Ok(())
    }

    pub fn metadata_path(&self) -> PathBuf {
        self.data_dir.join("metadata.db")
    }

    /// The metadata role's store, parsed from `metadata.store`.
    pub fn metadata_store(&self) -> anyhow::Result<MetadataStoreKind> {
        match self.metadata.store.as_deref() {
            None => Ok(MetadataStoreKind::Sqlite(self.metadata_path())),
            Some(s) if s.starts_with("postgres://") || s.starts_with("postgresql://") => {
                Ok(MetadataStoreKind::Postgres(s.to_string()))
            }
            Some(s) => match s.strip_prefix("sqlite:") {
                Some(path) if !path.is_empty() => {
                    Ok(MetadataStoreKind::Sqlite(PathBuf::from(path)))
                }
                _ => bail!("metadata.store must be sqlite:PATH or a postgres:// URL, not '{s}'"),
            },
        }
    }

    /// Where the other roles reach the metadata service.
    pub fn metadata_urls(&self) -> Vec<String> {
        if self.metadata.urls.is_empty() {
            let addr = self.metadata.addr;
            let host = if addr.ip().is_unspecified() {
                "127.0.0.1".to_string()
            } else {
                addr.ip().to_string()
            };
            let scheme = if self.metadata.tls { "https" } else { "http" };
            vec![format!("{scheme}://{host}:{}", addr.port())]
        } else {
            self.metadata
                .urls
                .iter()
                .map(|u| u.trim_end_matches('/').to_string())
                .collect()
        }
    }

    pub fn objects_dir(&self) -> PathBuf {
        self.storage
            .local_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("objects"))
    }

    pub fn cache_dir(&self) -> PathBuf {
        self.cache
            .cache_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("cache"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_committed_example_parses_and_validates() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../silt.example.toml");
        let config = Config::load(Some(&path)).expect("example parses");
        config.validate().expect("example is valid");
        // The example spells out the defaults, apart from the documented S3 section.
        let mut expected = Config::default();
        expected.storage.s3 = config.storage.s3.clone();
        assert_eq!(config, expected);
    }

    #[test]
    fn configuration_errors_name_the_setting_as_the_user_spells_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("silt.toml");
        std::fs::write(&file, "[ingest]\nlingr = \"5ms\"\n").expect("write");
        let err = Config::load(Some(&file)).expect_err("a typo").to_string();
        assert!(
            err.contains("ingest.lingr")
                && err.contains("SILT_INGEST__LINGR")
                && err.contains(&file.display().to_string())
                && err.contains("linger"),
            "{err}"
        );
        assert!(!err.contains("default."), "loader terms leak: {err}");
        std::fs::write(&file, "[ingest]\nlinger = \"soon\"\n").expect("write");
        let err = Config::load(Some(&file))
            .expect_err("a bad value")
            .to_string();
        assert!(
            err.contains("ingest.linger (SILT_INGEST__LINGER)") && err.contains("soon"),
            "{err}"
        );
    }

    #[test]
    fn sizes_take_units() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("silt.toml");
        std::fs::write(
            &file,
            "[ingest]\nmax_segment_bytes = \"4MiB\"\nmax_buffered_bytes = \"64 MiB\"\n[cache]\nmemory_bytes = 1000\n[http]\nmax_request_bytes = \"10MB\"\n",
        )
        .expect("write");
        let config = Config::load(Some(&file)).expect("sizes with units");
        assert_eq!(config.ingest.max_segment_bytes, 4 << 20);
        assert_eq!(config.ingest.max_buffered_bytes, 64 << 20);
        assert_eq!(config.cache.memory_cache_bytes, 1000);
        assert_eq!(config.http.max_request_bytes, 10_000_000);
        std::fs::write(&file, "[ingest]\nmax_segment_bytes = \"lots\"\n").expect("write");
        let err = Config::load(Some(&file))
            .expect_err("not a size")
            .to_string();
        assert!(
            err.contains("ingest.max_segment_bytes (SILT_INGEST__MAX_SEGMENT_BYTES)")
                && err.contains("'lots' is not a size")
                && err.contains("1MiB"),
            "{err}"
        );
    }

    #[test]
    fn defaults_are_valid() {
        Config::default().validate().expect("defaults are valid");
    }

    #[test]
    fn unknown_keys_and_bad_values_are_rejected_by_name() {
        let err = toml::from_str::<Config>("[ingest]\nlingr = \"5ms\"\n").expect_err("typo");
        assert!(err.to_string().contains("lingr"), "{err}");
        let err =
            toml::from_str::<Config>("[ingest]\nlinger = \"soon\"\n").expect_err("bad duration");
        assert!(
            err.to_string().contains("linger") || err.to_string().contains("soon"),
            "{err}"
        );
        let mut c = Config::default();
        c.ingest.max_buffered_bytes = 10;
        let err = c.validate().expect_err("too small");
        assert!(
            err.to_string().contains("ingest.max_buffered_bytes"),
            "{err}"
        );
    }
}
