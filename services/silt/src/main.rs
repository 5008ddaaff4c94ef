//! The `silt` binary: command line, configuration and role wiring.
//!
//! `silt dev` runs every role in one process on a local folder (or an S3 bucket) with the
//! embedded SQLite metadata store; `silt serve --roles ...` runs a node of a cluster.

mod backup_cli;
mod config;
mod groups_cli;
mod metrics;
mod node;
mod security_cli;
mod topics_cli;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use silt_metadata::Role;

use crate::config::Config;

/// jemalloc maps large allocations lazily (MAP_NORESERVE where the kernel overcommits).
/// That matters for robustness, not just speed: the Kafka codec sizes vectors from counts
/// in the request before reading their elements, so a forged count asks for a huge
/// buffer. The system allocator would abort the process on it; with jemalloc the
/// reservation succeeds untouched, decoding fails on the short request, and only that
/// connection is closed (a test sends exactly such a request).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Debug, Parser)]
#[command(name = "silt", version, about = "Event streaming on object storage")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run every role in one process: embedded metadata, local folder or S3 storage.
    Dev(DevArgs),
    /// Run a cluster node: the roles named by --roles, metadata through the metadata
    /// service (this node's own with the metadata role, or --metadata-url).
    Serve(ServeArgs),
    /// Print the effective configuration of `silt serve` (with --dev: of `silt dev`) from
    /// the defaults, file, environment and flags, as TOML, after validating it.
    Config(ConfigArgs),
    /// Print the Kafka APIs and versions this build supports (Markdown).
    KafkaApis,
    /// Run a compaction pass (merge, retention, GC) on a running node now, through its
    /// HTTP API, and print what it did.
    Compact {
        /// Merge raw data at least this old (default: the node's compactor.min_age).
        #[arg(long)]
        min_age: Option<String>,
        /// Print the pass's report as JSON instead of a summary.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Users' SCRAM credentials (for SASL and HTTP basic auth) and HTTP bearer tokens,
    /// in the metadata store the configuration names.
    Users {
        #[command(subcommand)]
        command: security_cli::UsersCommand,
        #[command(flatten)]
        node: StoreArgs,
    },
    /// ACLs (Kafka's model), in the metadata store the configuration names.
    Acls {
        #[command(subcommand)]
        command: security_cli::AclsCommand,
        #[command(flatten)]
        node: StoreArgs,
    },
    /// Topics of a running node (through its HTTP API): list, describe, create, delete,
    /// alter.
    Topics {
        #[command(subcommand)]
        command: topics_cli::TopicsCommand,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Copy the embedded (SQLite) metadata store to a new file, consistently, while its
    /// node runs. (PostgreSQL: pg_dump; see docs/operations.md.)
    Backup {
        /// The backup file to write; it must not exist.
        #[arg(long)]
        to: PathBuf,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Put a metadata backup into a data folder whose node is stopped, after checking that
    /// the object store holds every object the backup refers to.
    Restore {
        /// The backup file (from `silt backup`).
        #[arg(long)]
        from: PathBuf,
        /// Replace an existing metadata file (kept as metadata.db.before-restore).
        #[arg(long)]
        replace: bool,
        #[command(flatten)]
        node: DevArgs,
    },
    /// Consumer groups of a running node (through its HTTP API).
    Groups {
        #[command(subcommand)]
        command: GroupsCommand,
        #[command(flatten)]
        api: ApiArgs,
    },
}

/// How the command line reaches a node's HTTP API.
#[derive(Debug, Args)]
struct ApiArgs {
    /// Base URL of the node's HTTP API; default: the http.addr of the configuration
    /// (--config, SILT_HTTP__ADDR), http://127.0.0.1:8080 unless changed.
    #[arg(long, global = true)]
    url: Option<String>,
    /// The node's TOML configuration, for its HTTP address.
    #[arg(long = "config", short = 'c', global = true)]
    config: Option<PathBuf>,
    /// A bearer token (`silt users token`), for nodes with http.require_auth.
    #[arg(long, global = true)]
    token: Option<String>,
    /// PEM file with the authority of the node's HTTPS certificate.
    #[arg(long, global = true)]
    ca_file: Option<PathBuf>,
}

impl ApiArgs {
    /// The node's base URL: `--url`, else the configured HTTP address (the loopback for
    /// a wildcard address, https when the listener has TLS).
    fn base(&self) -> anyhow::Result<String> {
        if let Some(url) = &self.url {
            return Ok(url.trim_end_matches('/').to_string());
        }
        let config = Config::load(self.config.as_deref())?;
        let addr = config.http.addr;
        let host = if addr.ip().is_unspecified() {
            "127.0.0.1".to_string()
        } else {
            addr.ip().to_string()
        };
        let host = if host.contains(':') {
            format!("[{host}]")
        } else {
            host
        };
        let scheme = if config.http.tls { "https" } else { "http" };
        Ok(format!("{scheme}://{host}:{}", addr.port()))
    }

    /// A request builder for `method` `url` with the token, on a client trusting the
    /// authority.
    fn request(
        &self,
        method: reqwest::Method,
        url: &str,
    ) -> anyhow::Result<reqwest::RequestBuilder> {
        use anyhow::Context;
        let mut client = reqwest::Client::builder();
        if let Some(ca) = &self.ca_file {
            let pem = std::fs::read(ca).with_context(|| format!("reading {}", ca.display()))?;
            for cert in reqwest::Certificate::from_pem_bundle(&pem)
                .with_context(|| format!("{} holds no certificate", ca.display()))?
            {
                client = client.add_root_certificate(cert);
            }
        }
        let request = client.build()?.request(method, url);
        Ok(match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        })
    }
}

#[derive(Debug, Subcommand)]
enum GroupsCommand {
    /// Every group with its state.
    List,
    /// A group's state, members and their partitions, committed offsets and lag.
    Describe {
        /// The group id.
        group: String,
    },
}

// Flags override the configuration (file, then environment), so they carry no clap
// default: each help text names its setting and the built-in default instead.
#[derive(Debug, Args)]
struct DevArgs {
    /// TOML configuration file (see silt.example.toml); default: none, built-in defaults
    /// and SILT_* environment variables.
    #[arg(long, short, global = true)]
    config: Option<PathBuf>,
    /// Folder for metadata, local objects and cache (data_dir) [default: silt-data].
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    /// Address of the HTTP API (http.addr) [default: 127.0.0.1:8080].
    #[arg(long, global = true)]
    http_addr: Option<SocketAddr>,
    /// Address of the Kafka protocol listener (kafka.addr) [default: 127.0.0.1:9092].
    #[arg(long, global = true)]
    kafka_addr: Option<SocketAddr>,
    /// host:port that Kafka clients are told to connect to (kafka.advertised_addr)
    /// [default: the --kafka-addr].
    #[arg(long, global = true)]
    kafka_advertised_addr: Option<String>,
    /// How long ingest waits to fill a segment, e.g. 20ms (ingest.linger) [default: 20ms].
    #[arg(long, value_parser = humantime::parse_duration, global = true)]
    linger: Option<Duration>,
    /// S3-compatible endpoint URL, e.g. http://127.0.0.1:9000 for MinIO
    /// (storage.s3.endpoint) [default: AWS S3].
    #[arg(long, global = true)]
    s3_endpoint: Option<String>,
    /// Keep objects in this S3 bucket instead of a local folder (storage.s3.bucket)
    /// [default: none, the local folder <data-dir>/objects].
    #[arg(long, global = true)]
    s3_bucket: Option<String>,
    /// Region of the bucket (storage.s3.region) [default: us-east-1].
    #[arg(long, global = true)]
    s3_region: Option<String>,
    /// Key prefix for all objects in the bucket (storage.s3.prefix) [default: none].
    #[arg(long, global = true)]
    s3_prefix: Option<String>,
    /// Use path-style URLs (storage.s3.path_style) [default: on for IP addresses and
    /// localhost, off otherwise].
    #[arg(long, global = true)]
    s3_path_style: bool,
    /// Allow a plain http:// endpoint (storage.s3.allow_http) [default: implied by an
    /// http:// endpoint].
    #[arg(long, global = true)]
    s3_allow_http: bool,
    /// Create the bucket if it does not exist (storage.s3.create_bucket) [default: off].
    #[arg(long, global = true)]
    create_bucket: bool,
    /// Log lines as text or as JSON objects (log.format) [default: text].
    #[arg(long, value_enum, global = true)]
    log_format: Option<crate::config::LogFormat>,
}

#[derive(Debug, Args)]
struct ServeArgs {
    #[command(flatten)]
    node: DevArgs,
    /// Roles to run, comma-separated: metadata, ingest, reader, compactor (node.roles)
    /// [default: ingest,reader].
    #[arg(long, value_delimiter = ',', global = true)]
    roles: Option<Vec<Role>>,
    /// This node's broker id (node.id) [default: generated by the metadata service].
    #[arg(long, global = true)]
    node_id: Option<i32>,
    /// Availability zone or rack, Kafka's broker.rack (node.rack) [default: none].
    #[arg(long, global = true)]
    rack: Option<String>,
    /// Listener of the metadata role (metadata.addr) [default: 127.0.0.1:9093].
    #[arg(long, global = true)]
    metadata_addr: Option<SocketAddr>,
    /// Store of the metadata role: sqlite:PATH or a postgres:// URL (metadata.store)
    /// [default: sqlite:<data-dir>/metadata.db].
    #[arg(long, global = true)]
    metadata_store: Option<String>,
    /// Metadata service URL(s) for the other roles; repeat or separate with commas
    /// (metadata.urls) [default: none].
    #[arg(long, value_delimiter = ',', global = true)]
    metadata_url: Vec<String>,
}

/// Where `silt users` and `silt acls` find the metadata store: only what names it.
#[derive(Debug, Args)]
struct StoreArgs {
    /// The node's TOML configuration file, for its store and metadata service settings.
    #[arg(long, short, global = true)]
    config: Option<PathBuf>,
    /// The node's data folder: its SQLite metadata is <data-dir>/metadata.db (data_dir)
    /// [default: silt-data].
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    /// A metadata store: sqlite:PATH or a postgres:// URL (metadata.store).
    #[arg(long, global = true)]
    metadata_store: Option<String>,
    /// Metadata service URL(s) of a cluster, reached with the configuration's client
    /// certificate (metadata.urls).
    #[arg(long, value_delimiter = ',', global = true)]
    metadata_url: Vec<String>,
}

impl StoreArgs {
    fn config(&self) -> anyhow::Result<Config> {
        let mut c = Config::load(self.config.as_deref())?;
        if let Some(d) = &self.data_dir {
            c.data_dir = d.clone();
        }
        if let Some(s) = &self.metadata_store {
            c.metadata.store = Some(s.clone());
        }
        if !self.metadata_url.is_empty() {
            c.metadata.urls = self.metadata_url.clone();
        }
        c.validate()?;
        Ok(c)
    }
}

/// `silt config`: which command's view to print.
#[derive(Debug, Args)]
struct ConfigArgs {
    /// Print what `silt dev` runs with (every role in one process) instead of `silt serve`.
    #[arg(long)]
    dev: bool,
    #[command(flatten)]
    serve: ServeArgs,
}

impl ServeArgs {
    fn config(&self) -> anyhow::Result<Config> {
        let mut c = self.node.config_unchecked()?;
        if let Some(r) = &self.roles {
            c.node.roles = r.clone();
        }
        if let Some(id) = self.node_id {
            c.node.id = Some(id);
        }
        if let Some(rack) = &self.rack {
            c.node.rack = Some(rack.clone());
        }
        if let Some(a) = self.metadata_addr {
            c.metadata.addr = a;
        }
        if let Some(s) = &self.metadata_store {
            c.metadata.store = Some(s.clone());
        }
        if !self.metadata_url.is_empty() {
            c.metadata.urls = self.metadata_url.clone();
        }
        c.validate()?;
        Ok(c)
    }
}

impl DevArgs {
    fn config(&self) -> anyhow::Result<Config> {
        let c = self.config_unchecked()?;
        c.validate()?;
        Ok(c)
    }

    fn config_unchecked(&self) -> anyhow::Result<Config> {
        let mut c = Config::load(self.config.as_deref())?;
        if let Some(d) = &self.data_dir {
            c.data_dir = d.clone();
        }
        if let Some(a) = self.http_addr {
            c.http.addr = a;
        }
        if let Some(a) = self.kafka_addr {
            c.kafka.addr = a;
        }
        if let Some(a) = &self.kafka_advertised_addr {
            c.kafka.advertised_addr = Some(a.clone());
        }
        if let Some(l) = self.linger {
            c.ingest.linger = l;
        }
        if let Some(f) = self.log_format {
            c.log.format = f;
        }
        let s3 = &mut c.storage.s3;
        if let Some(e) = &self.s3_endpoint {
            s3.endpoint = Some(e.clone());
        }
        if let Some(b) = &self.s3_bucket {
            s3.bucket = b.clone();
        }
        if let Some(r) = &self.s3_region {
            s3.region = r.clone();
        }
        if let Some(p) = &self.s3_prefix {
            s3.prefix = p.clone();
        }
        s3.path_style |= self.s3_path_style;
        s3.allow_http |= self.s3_allow_http;
        s3.create_bucket |= self.create_bucket;
        Ok(c)
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Dev(args) => {
            let config = args.config()?;
            node::init_tracing(&config.log);
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            runtime.block_on(node::run(config, node::Mode::Dev))
        }
        Command::Serve(args) => {
            let config = args.config()?;
            node::init_tracing(&config.log);
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            runtime.block_on(node::run(config, node::Mode::Serve))
        }
        Command::Groups { command, api } => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(groups_cli::run(&api.base()?, &api, command))
        }
        Command::Topics { command, api } => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(topics_cli::run(&api.base()?, &api, command))
        }
        Command::Compact { min_age, json, api } => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(compact(&api.base()?, &api, min_age.as_deref(), json))
        }
        Command::Users { command, node } => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(security_cli::users(&node, command))
        }
        Command::Acls { command, node } => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(security_cli::acls(&node, command))
        }
        Command::Backup { to, store } => {
            let config = store.config()?;
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(backup_cli::backup(&config, &to))
        }
        Command::Restore {
            from,
            replace,
            node,
        } => {
            let config = node.config()?;
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(backup_cli::restore(&config, &from, replace))
        }
        Command::KafkaApis => {
            print!("{}", silt_kafka::api_table());
            Ok(())
        }
        Command::Config(args) => {
            let mut config = if args.dev {
                args.serve.node.config()?
            } else {
                args.serve.config()?
            };
            if args.dev {
                // What `silt dev` runs, whatever node.roles says.
                config.node.roles = Role::ALL.to_vec();
            }
            print!("{}", toml::to_string_pretty(&config)?);
            Ok(())
        }
    }
}

async fn compact(
    base: &str,
    api: &ApiArgs,
    min_age: Option<&str>,
    json: bool,
) -> anyhow::Result<()> {
    use anyhow::Context;
    let mut url = format!("{base}/v1/admin/compact");
    if let Some(age) = min_age {
        url.push_str(&format!("?min_age={}", groups_cli::encode(age)));
    }
    let response = api
        .request(reqwest::Method::POST, &url)?
        .send()
        .await
        .with_context(|| format!("is silt running? POST {url}"))?;
    let status = response.status();
    let body: serde_json::Value = response.json().await.context("the answer is not JSON")?;
    if !status.is_success() {
        anyhow::bail!(
            "{status}: {}",
            body["message"].as_str().unwrap_or("request failed")
        );
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&body)?);
    } else {
        print!("{}", compaction_summary(&body));
    }
    Ok(())
}

/// A pass's report in words.
fn compaction_summary(r: &serde_json::Value) -> String {
    let n = |key: &str| r[key].as_u64().unwrap_or(0);
    let mut out = format!(
        "merged {} raw chunks ({} records, {} bytes) into {} lake files ({} bytes)\n\
         retention: {} partitions truncated, {} records expired\n\
         garbage collection: {} unreferenced and {} orphaned objects deleted\n\
         left raw: {} bytes, the oldest {} ms old\n\
         took {} ms\n",
        n("chunks_merged"),
        n("records_rewritten"),
        n("bytes_read"),
        n("lake_files_written"),
        n("bytes_written"),
        n("partitions_truncated"),
        n("records_expired"),
        n("unreferenced_deleted"),
        n("orphans_deleted"),
        n("lag_bytes"),
        n("lag_ms"),
        n("duration_ms"),
    );
    for e in r["errors"].as_array().into_iter().flatten() {
        out.push_str(&format!("error: {}\n", e.as_str().unwrap_or_default()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn every_command(
        command: &clap::Command,
        path: String,
        out: &mut Vec<(String, clap::Command)>,
    ) {
        out.push((path.clone(), command.clone()));
        for sub in command.get_subcommands() {
            every_command(sub, format!("{path} {}", sub.get_name()), out);
        }
    }

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn every_flag_and_argument_says_what_it_is() {
        let mut commands = Vec::new();
        every_command(&Cli::command(), "silt".into(), &mut commands);
        let mut missing = Vec::new();
        for (path, command) in &commands {
            if path != "silt" && !path.starts_with("silt help") && command.get_about().is_none() {
                missing.push(format!("{path} has no description"));
            }
            for arg in command.get_arguments() {
                let id = arg.get_id().as_str();
                if matches!(id, "help" | "version") {
                    continue;
                }
                let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
                if help.trim().is_empty() {
                    missing.push(format!("{path}: {id} has no help"));
                }
            }
        }
        assert!(missing.is_empty(), "{}", missing.join("\n"));
    }

    #[test]
    fn node_flags_name_their_setting_and_default() {
        let command = Cli::command();
        for name in ["dev", "serve"] {
            let sub = command.find_subcommand(name).expect(name);
            for arg in sub.get_arguments() {
                let id = arg.get_id().as_str();
                if matches!(id, "help" | "config") {
                    continue;
                }
                let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
                assert!(help.contains("[default: "), "silt {name} --{id}: {help}");
            }
        }
    }

    #[test]
    fn users_and_acls_take_only_what_finds_the_store() {
        for command in ["users", "acls"] {
            let err = Cli::try_parse_from(["silt", command, "list", "--linger", "5ms"])
                .expect_err("a node flag");
            assert!(err.to_string().contains("--linger"), "{err}");
            Cli::try_parse_from(["silt", command, "list", "--data-dir", "d"]).expect("data dir");
        }
    }

    #[test]
    fn config_dev_shows_the_roles_dev_runs() {
        let cli = Cli::try_parse_from(["silt", "config", "--dev"]).expect("parses");
        let Command::Config(args) = cli.command else {
            panic!("config")
        };
        assert!(args.dev);
    }
}
