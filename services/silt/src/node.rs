//! Wiring the roles of one node together, and stopping them in order.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use object_store::ObjectStore;
use silt_compactor::Compactor;
use silt_groups::{Coordinator, GroupConfig, GroupService};
use silt_http::{AppState, Maintenance};
use silt_ingest::{Ingest, SegmentListener, WrittenSegment};
use silt_kafka::{KafkaConfig, KafkaSecurity, KafkaState, NodeCache};
use silt_metadata::{MetadataStore, NodeInfo, PostgresStore, Role, SqliteStore};
use silt_metadata_service::lease::{self, LeaseTiming};
use silt_metadata_service::{ClientConfig, MetadataClient, MetadataService};
use silt_reader::{Reader, ReaderConfig};
use silt_storage::{FaultyStore, InstrumentedStore, StoreSettings, build_store, probe_store};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};
use tracing_subscriber::EnvFilter;

use crate::config::{Config, MetadataStoreKind};

/// Logs to standard output: text (coloured only on a terminal) or one JSON object per
/// line. The cache library's own INFO chatter is quiet unless the filter names it.
pub fn init_tracing(log: &crate::config::LogConfig) {
    let directives = match std::env::var("RUST_LOG") {
        Ok(env) if !env.is_empty() => env,
        _ => log.filter.clone(),
    };
    let mut filter = EnvFilter::new(&directives);
    if !directives.contains("foyer")
        && let Ok(quiet) = "foyer=warn".parse()
    {
        filter = filter.add_directive(quiet);
    }
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    match log.format {
        crate::config::LogFormat::Json => builder.json().init(),
        crate::config::LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
            .init(),
    }
}

fn install_metrics() -> anyhow::Result<PrometheusHandle> {
    let latency = [
        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    ];
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &latency)?
        .install_recorder()
        .context("installing the metrics recorder")?;
    crate::metrics::describe();
    crate::metrics::zero_rare_counters();
    Ok(handle)
}

/// Publishes the allocator's view of memory every second: bytes the process has
/// allocated, and bytes of physical memory the allocator holds (what RSS mostly is).
async fn report_memory() {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    loop {
        tick.tick().await;
        if tikv_jemalloc_ctl::epoch::advance().is_err() {
            return;
        }
        if let Ok(allocated) = tikv_jemalloc_ctl::stats::allocated::read() {
            metrics::gauge!("silt_memory_allocated_bytes").set(allocated as f64);
        }
        if let Ok(resident) = tikv_jemalloc_ctl::stats::resident::read() {
            metrics::gauge!("silt_memory_resident_bytes").set(resident as f64);
        }
    }
}

/// Puts every segment this node writes into its reader's cache, so that tailing
/// consumers on this node never read the object back.
struct CacheOnWrite(Reader);

impl SegmentListener for CacheOnWrite {
    fn segment_written(&self, segment: &WrittenSegment) {
        self.0.cache_segment(
            &segment.key,
            &segment.data,
            segment.footer_len,
            segment
                .chunks
                .iter()
                .map(|c| (c.row_group as u32, c.byte_start, c.byte_len)),
        );
    }
}

pub(crate) fn store_settings(config: &Config) -> StoreSettings {
    if config.storage.s3.bucket.is_empty() {
        StoreSettings::Local {
            root: config.objects_dir(),
        }
    } else {
        StoreSettings::S3(config.storage.s3.clone())
    }
}

/// A node of a cluster must keep its objects where every node reads them: a local folder
/// only works for a node alone (its own SQLite metadata role), or a folder every node
/// shares.
fn check_cluster_store(config: &Config, runs_metadata: bool) -> anyhow::Result<()> {
    let alone = runs_metadata
        && config.metadata.urls.is_empty()
        && matches!(config.metadata_store(), Ok(MetadataStoreKind::Sqlite(_)));
    if config.storage.s3.bucket.is_empty() && !alone && !config.storage.local_shared {
        anyhow::bail!(
            "silt serve would keep objects in the local folder {}, which the other nodes of \
             the cluster cannot read. Set storage.s3.bucket (--s3-bucket) to a bucket every \
             node uses, or storage.local_shared = true (SILT_STORAGE__LOCAL_SHARED=true) if \
             every node sees this same folder",
            config.objects_dir().display()
        );
    }
    Ok(())
}

/// Where the objects live, as the operator configured it (for the "ready" line).
fn store_place(config: &Config) -> String {
    let s3 = &config.storage.s3;
    if s3.bucket.is_empty() {
        config.objects_dir().display().to_string()
    } else {
        let prefix = if s3.prefix.is_empty() {
            String::new()
        } else {
            format!("/{}", s3.prefix.trim_matches('/'))
        };
        match &s3.endpoint {
            Some(endpoint) => format!("s3://{}{prefix} at {endpoint}", s3.bucket),
            None => format!("s3://{}{prefix}", s3.bucket),
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}

/// `POST /v1/admin/compact` runs a pass of this node's compactor.
struct CompactorAdmin(Compactor);

#[async_trait::async_trait]
impl Maintenance for CompactorAdmin {
    async fn compact(&self, min_age: Option<Duration>) -> Result<serde_json::Value, String> {
        let report = self.0.run_pass(min_age).await.map_err(|e| e.to_string())?;
        serde_json::to_value(report).map_err(|e| e.to_string())
    }
}

/// `POST /v1/admin/faults` switches the store's fault injection.
/// How long the start-up and readiness probes of the object store may take.
const STORE_PROBE_PATIENCE: Duration = Duration::from_secs(30);

/// `GET /readyz`: the object store takes a probe object now (checked at most every two
/// seconds, so a load balancer's probes cost the store little).
struct StoreReadiness {
    store: Arc<dyn ObjectStore>,
    settings: StoreSettings,
    last: tokio::sync::Mutex<Option<(tokio::time::Instant, Result<(), String>)>>,
}

#[async_trait::async_trait]
impl silt_http::Readiness for StoreReadiness {
    async fn check(&self) -> Result<(), String> {
        let mut last = self.last.lock().await;
        if let Some((at, result)) = last.as_ref()
            && at.elapsed() < Duration::from_secs(2)
        {
            return result.clone();
        }
        let result = probe_store(self.store.as_ref(), &self.settings, Duration::from_secs(5))
            .await
            .map_err(|e| e.to_string());
        *last = Some((tokio::time::Instant::now(), result.clone()));
        result
    }
}

struct FaultAdmin(Arc<FaultyStore>);

impl silt_http::FaultSwitch for FaultAdmin {
    fn set_active(&self, active: bool) {
        self.0.set_active(active);
    }

    fn is_active(&self) -> bool {
        self.0.is_active()
    }
}

/// What the ingest and reader roles need of the metadata service.
type DataRoles = (Arc<dyn MetadataStore>, Arc<dyn GroupService>);

/// How the process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `silt dev`: every role, metadata in-process on SQLite.
    Dev,
    /// `silt serve`: the configured roles; metadata through the metadata service.
    Serve,
}

/// A metadata role running in this process (its server and lease tasks run in the
/// node's tracker).
struct MetadataRole {
    stop: CancellationToken,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    lease: Option<tokio::task::JoinHandle<()>>,
}

impl MetadataRole {
    async fn stop(self) {
        self.stop.cancel();
        if let Some(lease) = self.lease {
            let _ = lease.await;
        }
        let _ = tokio::time::timeout(Duration::from_secs(5), self.server).await;
    }
}

async fn start_metadata_role(
    config: &Config,
    node_id: i32,
    metrics: PrometheusHandle,
    tasks: &TaskTracker,
) -> anyhow::Result<MetadataRole> {
    let stop = CancellationToken::new();
    let group_config = GroupConfig::default();
    let (service, lease, store) = match config.metadata_store()? {
        MetadataStoreKind::Sqlite(path) => {
            let store: Arc<dyn MetadataStore> = Arc::new(
                SqliteStore::open(&path)
                    .await
                    .with_context(|| format!("opening metadata at {}", path.display()))?,
            );
            let service = MetadataService::new(store.clone(), group_config);
            // One process owns a SQLite store: it is always the active one.
            service.activate(0);
            (service, None, store)
        }
        MetadataStoreKind::Postgres(url) => {
            let store = Arc::new(
                PostgresStore::connect(&url)
                    .await
                    .context("connecting to the PostgreSQL metadata store")?,
            );
            let service = MetadataService::new(store.clone(), group_config);
            let holder = format!("node {node_id} at {}", config.metadata.addr);
            let lease = tasks.spawn(lease::run(
                service.clone(),
                store.clone(),
                url,
                holder,
                LeaseTiming::default(),
                stop.clone(),
            ));
            (service, Some(lease), store as Arc<dyn MetadataStore>)
        }
    };
    // The active process coordinates the groups: it publishes their lag.
    let active = service.clone();
    crate::metrics::spawn_lag_publisher(
        tasks,
        store,
        move || active.active_epoch().is_some(),
        stop.clone(),
    );
    service.set_metrics(Arc::new(move || metrics.render()));
    let listener = tokio::net::TcpListener::bind(config.metadata.addr)
        .await
        .with_context(|| format!("binding the metadata service to {}", config.metadata.addr))?;
    info!(addr = %listener.local_addr()?, "metadata service listening");
    let tls = listener_tls(config, config.metadata.tls, silt_tls::HTTP_ALPN, "metadata")?;
    let server = tasks.spawn(silt_metadata_service::serve(
        listener,
        service,
        tls,
        stop.clone(),
    ));
    Ok(MetadataRole {
        stop,
        server,
        lease,
    })
}

/// Renews this node's entry in the live-node list until `stop`, then removes it.
fn spawn_heartbeat(
    tasks: &TaskTracker,
    metadata: Arc<dyn MetadataStore>,
    node: NodeInfo,
    interval: Duration,
    ttl: Duration,
    stop: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tasks.spawn(async move {
        let mut failing = false;
        loop {
            match metadata.heartbeat_node(&node, ttl).await {
                Ok(()) if failing => {
                    info!("node heartbeat renewed again");
                    failing = false;
                }
                Ok(()) => {}
                Err(e) if !failing => {
                    warn!(error = %e, "node heartbeat failed; retrying");
                    failing = true;
                }
                Err(_) => {}
            }
            tokio::select! {
                () = stop.cancelled() => break,
                () = tokio::time::sleep(interval) => {}
            }
        }
        let _ =
            tokio::time::timeout(Duration::from_secs(2), metadata.remove_node(node.node_id)).await;
    })
}

/// The TLS configuration of a listener with `tls = true`, its certificate read now.
fn listener_tls(
    config: &Config,
    enabled: bool,
    alpn: &[&[u8]],
    listener: &str,
) -> anyhow::Result<Option<Arc<silt_tls::ServerConfig>>> {
    enabled
        .then(|| silt_tls::server_config(&config.tls, alpn))
        .transpose()
        .with_context(|| format!("TLS for the {listener} listener"))
}

/// How this node reaches the metadata service: its URLs, and for `https://` ones the
/// authorities to trust and the certificate to present (`[tls]`).
pub(crate) fn metadata_client_config(
    config: &Config,
    urls: Vec<String>,
) -> anyhow::Result<ClientConfig> {
    let mut client = ClientConfig::new(urls);
    let read = |path: &std::path::Path| {
        std::fs::read(path).with_context(|| format!("reading {}", path.display()))
    };
    if let Some(ca) = &config.tls.ca_file {
        client.tls_ca_pem = Some(read(ca)?);
    }
    if let (Some(cert), Some(key)) = (&config.tls.cert_file, &config.tls.key_file) {
        let mut identity = read(cert)?;
        identity.push(b'\n');
        identity.extend(read(key)?);
        client.tls_identity_pem = Some(identity);
    }
    Ok(client)
}

/// Authentication and authorisation of the Kafka and HTTP doors, from `[kafka]`,
/// `[http]`, `[tls]` and `[auth]`. With ACLs on, they are reloaded every
/// `auth.acl_refresh` until `stop`.
async fn security(
    config: &Config,
    metadata: Arc<dyn MetadataStore>,
    stop: CancellationToken,
) -> anyhow::Result<KafkaSecurity> {
    let tokens = config
        .http
        .tokens
        .iter()
        .map(|t| {
            let principal = t
                .principal
                .split_once(':')
                .map(|(_, name)| silt_auth::Principal::user(name))
                .context("a token's principal is Type:name")?;
            let sha256 = silt_auth::parse_sha256_hex(&t.sha256)
                .context("a token's sha256 is 64 hex digits")?;
            Ok(silt_auth::BearerToken { principal, sha256 })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let authorizer = silt_auth::Authorizer::new(
        silt_auth::AclSettings {
            enabled: config.auth.acls,
            super_users: config.auth.super_users.iter().cloned().collect(),
            allow_if_no_acls: config.auth.allow_if_no_acls,
        },
        metadata.clone(),
    );
    if config.auth.acls {
        // Loaded before the node serves, so its first requests see the ACLs in force.
        authorizer
            .refresh()
            .await
            .context("loading ACLs from the metadata service")?;
        authorizer.spawn_refresh(config.auth.acl_refresh, stop);
    }
    Ok(KafkaSecurity {
        sasl_mechanisms: config.kafka.sasl_mechanisms.clone(),
        reauth_after: config.kafka.max_reauth,
        authenticator: silt_auth::Authenticator::new(metadata, tokens),
        authorizer,
        tls_principal: config.tls.principal,
    })
}

fn http_url(config: &Config, kafka_host: &str) -> String {
    let addr = config.http.addr;
    let host = if addr.ip().is_unspecified() {
        kafka_host.to_string()
    } else {
        addr.ip().to_string()
    };
    let scheme = if config.http.tls { "https" } else { "http" };
    format!("{scheme}://{host}:{}", addr.port())
}

/// Runs the roles of `mode` in this process until SIGTERM or Ctrl-C, then stops accepting
/// requests, flushes and commits buffered records, and exits.
pub async fn run(config: Config, mode: Mode) -> anyhow::Result<()> {
    let node = Node::start(config, mode).await?;
    shutdown_signal().await;
    node.stop().await;
    Ok(())
}

/// Takes the data folder's lock (`<data_dir>/silt.lock`), held as long as the process
/// lives: a second node on the same folder would share its SQLite file, cache and
/// compactor.
pub(crate) fn lock_data_dir(dir: &std::path::Path) -> anyhow::Result<std::fs::File> {
    let path = dir.join("silt.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => anyhow::bail!(
            "another silt process is using the data folder {}: stop it first, or give this one \
             its own folder with --data-dir",
            dir.display()
        ),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("locking {}", path.display()))
        }
    }
}

/// The doors and data path of a node that serves clients.
struct DataPath {
    ingest: Ingest,
    reader: Reader,
    doors: Vec<tokio::task::JoinHandle<()>>,
    heartbeat: tokio::task::JoinHandle<()>,
    heartbeat_stop: CancellationToken,
}

/// One node: the roles it runs, every task they spawned (in one tracker), and what
/// stopping them takes, in order.
pub struct Node {
    roles: Vec<Role>,
    /// Every task of every role: doors, heartbeat, compactor, metadata server and lease.
    tasks: TaskTracker,
    /// Stops the doors accepting, the compactor's passes and ACL refreshes.
    stop: CancellationToken,
    data_path: Option<DataPath>,
    coordinator: Option<Coordinator>,
    client: Option<MetadataClient>,
    metadata_role: Option<MetadataRole>,
    sqlite: Option<Arc<SqliteStore>>,
    /// Held while the node runs: one process per data folder.
    _data_lock: std::fs::File,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("roles", &self.roles)
            .field("tasks", &self.tasks.len())
            .finish_non_exhaustive()
    }
}

impl Node {
    /// Starts the roles of `mode`; the node is ready (listening, certificates read,
    /// metadata reachable) when this returns.
    pub async fn start(config: Config, mode: Mode) -> anyhow::Result<Self> {
        let tasks = TaskTracker::new();
        let metrics = install_metrics()?;
        tokio::spawn(report_memory());
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("creating data_dir {}", config.data_dir.display()))?;
        let data_lock = lock_data_dir(&config.data_dir)?;
        let roles: Vec<Role> = match mode {
            Mode::Dev => Role::ALL.to_vec(),
            Mode::Serve => config.node.roles.clone(),
        };
        let has = |role: Role| roles.contains(&role);
        if mode == Mode::Serve && (has(Role::Ingest) || has(Role::Reader) || has(Role::Compactor)) {
            check_cluster_store(&config, has(Role::Metadata))?;
        }
        let role_names = roles.iter().map(|r| r.name()).collect::<Vec<_>>().join(",");
        if roles.is_empty() {
            anyhow::bail!("node.roles is empty: name at least one of metadata, ingest, reader");
        }
        let node_id = config.node.id.unwrap_or_else(|| match mode {
            Mode::Dev => 0,
            Mode::Serve => fastrand::i32(1..1_000_000_000),
        });

        // Metadata: in-process (dev), or a service (this process's, another's) via the client.
        let mut metadata_role = None;
        let mut sqlite = None;
        let mut client = None;
        let mut coordinator = None;
        let stop = CancellationToken::new();
        let data_roles: Option<DataRoles> = match mode {
            Mode::Dev => {
                let store = Arc::new(
                    SqliteStore::open(&config.metadata_path())
                        .await
                        .with_context(|| {
                            format!("opening metadata at {}", config.metadata_path().display())
                        })?,
                );
                sqlite = Some(store.clone());
                let metadata: Arc<dyn MetadataStore> = store;
                crate::metrics::spawn_lag_publisher(
                    &tasks,
                    metadata.clone(),
                    || true,
                    stop.clone(),
                );
                let local =
                    Coordinator::start(GroupConfig::default(), metadata.clone(), metadata.clone());
                coordinator = Some(local.clone());
                Some((metadata, Arc::new(local)))
            }
            Mode::Serve => {
                if has(Role::Metadata) {
                    metadata_role =
                        Some(start_metadata_role(&config, node_id, metrics.clone(), &tasks).await?);
                }
                if has(Role::Ingest) || has(Role::Reader) || has(Role::Compactor) {
                    let urls = config.metadata_urls();
                    let c =
                        MetadataClient::connect(metadata_client_config(&config, urls.clone())?)?;
                    info!(urls = ?urls, "waiting for the metadata service");
                    c.wait_connected(Duration::from_secs(60)).await?;
                    client = Some(c.clone());
                    Some((Arc::new(c.clone()), Arc::new(c)))
                } else {
                    None
                }
            }
        };

        let mut doors = Vec::new();
        let mut data_path = None;
        let mut faults = None;
        let store: Option<Arc<dyn ObjectStore>> = match &data_roles {
            Some(_) => {
                let settings = store_settings(&config);
                let mut inner = build_store(&settings).await?;
                // Nothing says "ready" before the store has taken a write, a read and a
                // delete: a misconfigured store stops the node here, saying what to change.
                probe_store(inner.as_ref(), &settings, STORE_PROBE_PATIENCE).await?;
                let settings = &config.storage.fault_injection;
                if settings.enabled {
                    warn!(
                        ?settings,
                        "OBJECT-STORE FAULT INJECTION IS ON: requests will fail on purpose (test clusters only)"
                    );
                    let faulty = Arc::new(FaultyStore::new(inner, settings.clone()));
                    faults = Some(faulty.clone());
                    inner = faulty;
                }
                Some(Arc::new(InstrumentedStore::new(inner)))
            }
            None => None,
        };
        let compactor = match (&data_roles, &store) {
            (Some((metadata, _)), Some(store)) if has(Role::Compactor) => {
                let compactor = Compactor::new(
                    store.clone(),
                    metadata.clone(),
                    metadata.clone(),
                    config.compactor.clone(),
                );
                let (passes, stop) = (compactor.clone(), stop.clone());
                tasks.spawn(async move { passes.run_every_interval(stop).await });
                Some(compactor)
            }
            _ => None,
        };
        let serves_doors = has(Role::Ingest) || has(Role::Reader);
        if let (Some((metadata, groups)), Some(store), true) = (data_roles, store, serves_doors) {
            let reader_config = ReaderConfig {
                cache_dir: Some(config.cache_dir()),
                ..config.cache.clone()
            };
            let reader = Reader::build(reader_config, store.clone(), metadata.clone()).await?;
            let listener: Arc<dyn SegmentListener> = Arc::new(CacheOnWrite(reader.clone()));
            let ingest = Ingest::start(
                config.ingest.clone(),
                store.clone(),
                metadata.clone(),
                Some(listener),
            )
            .with_rules(config.topics.clone());
            let security = security(&config, metadata.clone(), stop.clone()).await?;
            let render = Arc::new(move || metrics.render());
            let mut state = AppState::new(
                metadata.clone(),
                ingest.clone(),
                reader.clone(),
                groups.clone(),
                config.http.clone(),
                Some(render),
            );
            if let Some(compactor) = &compactor {
                state = state.with_maintenance(Arc::new(CompactorAdmin(compactor.clone())));
            }
            if let Some(faults) = &faults {
                state = state.with_faults(Arc::new(FaultAdmin(faults.clone())));
            }
            state = state.with_readiness(Arc::new(StoreReadiness {
                store: store.clone(),
                settings: store_settings(&config),
                last: tokio::sync::Mutex::new(None),
            }));
            if config.http.require_auth || config.auth.acls {
                state = state.with_security(silt_http::HttpSecurity {
                    require_auth: config.http.require_auth,
                    authenticator: security.authenticator.clone(),
                    authorizer: security.authorizer.clone(),
                });
            }
            let app = silt_http::router(state);
            let http = tokio::net::TcpListener::bind(config.http.addr)
                .await
                .with_context(|| format!("binding HTTP to {}", config.http.addr))?;
            let kafka_listener = tokio::net::TcpListener::bind(config.kafka.addr)
                .await
                .with_context(|| format!("binding Kafka to {}", config.kafka.addr))?;
            let (advertised_host, advertised_port) =
                config.kafka.advertised().map_err(anyhow::Error::msg)?;
            let node_roles: Vec<Role> = roles
                .iter()
                .copied()
                .filter(|r| *r != Role::Metadata)
                .collect();
            let node = NodeInfo {
                node_id,
                kafka_host: advertised_host.clone(),
                kafka_port: advertised_port,
                http_url: http_url(&config, &advertised_host),
                roles: node_roles.clone(),
                rack: config.node.rack.clone(),
            };
            let kafka_config = KafkaConfig {
                advertised_host,
                advertised_port,
                node_id,
                roles: node_roles,
                rack: config.node.rack.clone(),
                settings: config.kafka.clone(),
                log_dir: store_place(&config),
                default_retention_ms: config
                    .compactor
                    .default_retention
                    .map_or(-1, |d| d.as_millis() as i64),
                ..KafkaConfig::default()
            };
            let kafka_state = KafkaState {
                config: Arc::new(kafka_config),
                metadata: metadata.clone(),
                ingest: ingest.clone(),
                reader: reader.clone(),
                groups,
                nodes: Arc::new(NodeCache::default()),
                security: Arc::new(security),
            };
            // Certificates are read before the node says it is ready: a bad one stops it here.
            let http_tls = listener_tls(&config, config.http.tls, silt_tls::HTTP_ALPN, "HTTP")?;
            let kafka_tls = listener_tls(&config, config.kafka.tls, &[], "Kafka")?
                .map(silt_kafka::TlsAcceptor::from);
            info!(
                node_id,
                roles = %role_names,
                http = %http.local_addr()?,
                kafka = %kafka_listener.local_addr()?,
                data_dir = %config.data_dir.display(),
                store = %store_place(&config),
                "silt is ready"
            );
            let http_stop = stop.clone();
            if let Some(tls) = http_tls {
                let http = silt_tls::TlsListener::new(http, tls)?;
                doors.push(tasks.spawn(async move {
                    let _ = axum::serve(
                        http,
                        app.into_make_service_with_connect_info::<silt_tls::PeerAddr>(),
                    )
                    .with_graceful_shutdown(async move { http_stop.cancelled().await })
                    .await;
                }));
            } else {
                doors.push(tasks.spawn(async move {
                    let _ = axum::serve(
                        http,
                        app.into_make_service_with_connect_info::<silt_tls::PeerAddr>(),
                    )
                    .with_graceful_shutdown(async move { http_stop.cancelled().await })
                    .await;
                }));
            }
            if roles.contains(&Role::Ingest) {
                // Nodes that write can end transactions that outlived their timeout.
                tasks.spawn(silt_kafka::run_transaction_timeouts(
                    kafka_state.clone(),
                    stop.clone(),
                ));
            }
            doors.push(tasks.spawn(silt_kafka::serve(
                kafka_listener,
                kafka_state,
                kafka_tls,
                stop.clone(),
            )));
            let heartbeat_stop = CancellationToken::new();
            let heartbeat = spawn_heartbeat(
                &tasks,
                metadata,
                node,
                config.node.heartbeat_interval,
                config.node.heartbeat_ttl,
                heartbeat_stop.clone(),
            );
            data_path = Some(DataPath {
                ingest,
                reader,
                doors: std::mem::take(&mut doors),
                heartbeat,
                heartbeat_stop,
            });
        } else {
            info!(node_id, roles = %role_names, "silt is ready");
        }
        Ok(Self {
            roles,
            tasks,
            stop,
            data_path,
            coordinator,
            client,
            metadata_role,
            sqlite,
            _data_lock: data_lock,
        })
    }

    /// Stops accepting work, writes and commits everything buffered (producers waiting
    /// on it get their answers), gives open connections a moment to drain (not forever:
    /// long polls and live tails would otherwise hold the exit), then stops the rest in
    /// the order they depend on each other.
    pub async fn stop(self) {
        info!("shutting down: flushing buffered records, then closing connections");
        // Doors stop accepting; a compaction pass in progress is abandoned (its lake
        // object stays unreferenced until GC).
        self.stop.cancel();
        if let Some(data) = self.data_path {
            data.ingest.shutdown().await;
            data.heartbeat_stop.cancel();
            let _ = data.heartbeat.await;
            let drained = tokio::time::timeout(Duration::from_secs(5), async {
                for door in data.doors {
                    let _ = door.await;
                }
            })
            .await;
            if drained.is_err() {
                info!("connections still open after 5s; closing them");
            }
            data.reader.close().await;
        }
        if let Some(c) = self.coordinator {
            c.shutdown();
        }
        if let Some(c) = self.client {
            c.shutdown();
        }
        if let Some(role) = self.metadata_role {
            role.stop().await;
        }
        self.tasks.close();
        if tokio::time::timeout(Duration::from_secs(5), self.tasks.wait())
            .await
            .is_err()
        {
            info!(
                left = self.tasks.len(),
                "tasks still running after 5s; leaving them"
            );
        }
        if let Some(s) = self.sqlite {
            s.close().await;
        }
        info!("stopped");
    }
}
