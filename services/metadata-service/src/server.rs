//! The metadata service: the store's API and the group coordinator over HTTP/2, served
//! only while this process is the active one.

use std::convert::Infallible;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response as HttpResponse};
use axum::routing::{get, post};
use bytes::BytesMut;
use silt_groups::{Coordinator, GroupConfig, GroupService};
use silt_metadata::{MetadataError, MetadataStore};
use tokio::sync::{broadcast, mpsc, watch};
use tokio_util::codec::{Encoder, LengthDelimitedCodec};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::wire::{
    Answer, FEED_PATH, FeedFrame, GroupRequest, GroupResponse, HEALTH_PATH, RPC_PATH, Request,
    Response, StoreRequest, StoreResponse, WireArg, decode, encode,
};

/// Largest request body accepted (a segment commit of many chunks stays far below).
const MAX_REQUEST_BYTES: usize = 64 * 1024 * 1024;

struct Active {
    epoch: i64,
    groups: Coordinator,
}

/// One metadata process: a store, and — while it holds the lease — a group coordinator.
pub struct MetadataService {
    store: Arc<dyn MetadataStore>,
    group_config: GroupConfig,
    active: RwLock<Option<Arc<Active>>>,
    /// The active epoch, for feed streams to end when it changes.
    epoch_tx: watch::Sender<Option<i64>>,
    /// Renders this process's Prometheus metrics for `GET /metrics`.
    metrics: std::sync::OnceLock<MetricsRenderer>,
}

/// Renders the Prometheus exposition text.
pub type MetricsRenderer = Arc<dyn Fn() -> String + Send + Sync>;

impl std::fmt::Debug for MetadataService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetadataService")
            .field("active_epoch", &self.active_epoch())
            .finish_non_exhaustive()
    }
}

impl MetadataService {
    /// A service on `store`, standing by until [`MetadataService::activate`].
    pub fn new(store: Arc<dyn MetadataStore>, group_config: GroupConfig) -> Arc<Self> {
        Arc::new(Self {
            store,
            group_config,
            active: RwLock::new(None),
            epoch_tx: watch::channel(None).0,
            metrics: std::sync::OnceLock::new(),
        })
    }

    /// Serves `GET /metrics` with `render` (set once, before serving).
    pub fn set_metrics(&self, render: MetricsRenderer) {
        let _ = self.metrics.set(render);
    }

    /// Starts serving with lease epoch `epoch`: a fresh group coordinator (members rejoin,
    /// as after a Kafka coordinator failover; committed offsets are in the store).
    pub fn activate(&self, epoch: i64) {
        let mut active = self.active.write().unwrap_or_else(|e| e.into_inner());
        if let Some(old) = active.take() {
            old.groups.shutdown();
        }
        let groups = Coordinator::start(
            self.group_config.clone(),
            self.store.clone(),
            self.store.clone(),
        );
        *active = Some(Arc::new(Active { epoch, groups }));
        self.epoch_tx.send_replace(Some(epoch));
        metrics::gauge!("silt_metadata_active").set(1.0);
        metrics::gauge!("silt_metadata_epoch").set(epoch as f64);
        info!(epoch, "metadata service is active");
    }

    /// Stops serving at once (the lease is lost or the process stops).
    pub fn deactivate(&self) {
        let mut active = self.active.write().unwrap_or_else(|e| e.into_inner());
        if let Some(old) = active.take() {
            old.groups.shutdown();
            warn!(epoch = old.epoch, "metadata service is no longer active");
        }
        self.epoch_tx.send_replace(None);
        metrics::gauge!("silt_metadata_active").set(0.0);
    }

    /// The epoch this process serves with, if it is the active one.
    pub fn active_epoch(&self) -> Option<i64> {
        self.current().map(|a| a.epoch)
    }

    fn current(&self) -> Option<Arc<Active>> {
        self.active
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The HTTP routes: requests, the change feed and health.
    pub fn router(self: &Arc<Self>) -> Router {
        Router::new()
            .route(RPC_PATH, post(rpc))
            .route(FEED_PATH, get(feed))
            .route(HEALTH_PATH, get(health))
            .route("/metrics", get(metrics_text))
            .layer(axum::extract::DefaultBodyLimit::max(MAX_REQUEST_BYTES))
            .with_state(self.clone())
    }

    async fn handle(&self, active: &Active, request: Request) -> Answer {
        Ok(match request {
            Request::Store(request) => Response::Store(dispatch(&*self.store, request).await?),
            Request::Group(request) => Response::Group(serve_group(&active.groups, request).await),
        })
    }
}

/// Answers every store call of the API table from `store`.
macro_rules! define_dispatch {
    ($(
        $(#[$trait_doc:meta])*
        $role:ident $(: $sup:ident)? {
            $(
                $(#[$doc:meta])*
                $policy:ident fn $method:ident($($arg:ident: $ty:ty $(as $wire:ty)?),* $(,)?) -> $ret:ty => $variant:ident;
            )*
        }
    )*) => {
        async fn dispatch(
            store: &dyn MetadataStore,
            request: StoreRequest,
        ) -> silt_metadata::Result<StoreResponse> {
            Ok(match request {
                $($(
                    StoreRequest::$variant { $($arg),* } => StoreResponse::$variant(
                        silt_metadata::$role::$method(store, $(from_wire!($arg $(, $wire)?)),*).await?,
                    ),
                )*)*
            })
        }
    };
}

/// An argument from its wire form.
macro_rules! from_wire {
    ($arg:ident) => {
        $arg
    };
    ($arg:ident, $wire:ty) => {
        WireArg::from_wire(&$arg)
    };
}

silt_metadata::metadata_api!(define_dispatch);

async fn serve_group(groups: &Coordinator, request: GroupRequest) -> GroupResponse {
    match request {
        GroupRequest::Join(req) => GroupResponse::Join(groups.join(req).await),
        GroupRequest::Sync(req) => GroupResponse::Sync(groups.sync(req).await),
        GroupRequest::Heartbeat {
            group_id,
            member_id,
            instance,
            generation,
        } => GroupResponse::Done(
            GroupService::heartbeat(
                groups,
                &group_id,
                &member_id,
                instance.as_deref(),
                generation,
            )
            .await,
        ),
        GroupRequest::Leave { group_id, members } => {
            GroupResponse::Left(GroupService::leave(groups, &group_id, &members).await)
        }
        GroupRequest::CommitOffsets {
            group_id,
            member_id,
            instance,
            generation,
            offsets,
        } => GroupResponse::Done(
            groups
                .commit_offsets(
                    &group_id,
                    &member_id,
                    instance.as_deref(),
                    generation,
                    &offsets,
                )
                .await,
        ),
        GroupRequest::CheckTxnCommit {
            group_id,
            member_id,
            instance,
            generation,
        } => GroupResponse::Done(groups.check_txn_commit(
            &group_id,
            &member_id,
            instance.as_deref(),
            generation,
        )),
        GroupRequest::FetchOffsets { group_id } => {
            GroupResponse::FetchedOffsets(groups.fetch_offsets(&group_id).await)
        }
        GroupRequest::ListGroups => GroupResponse::GroupList(groups.list().await),
        GroupRequest::DescribeGroup { group_id } => {
            GroupResponse::Described(groups.describe(&group_id).await)
        }
        GroupRequest::DeleteGroup { group_id } => {
            GroupResponse::Done(groups.delete(&group_id).await)
        }
        GroupRequest::DeleteOffsets {
            group_id,
            partitions,
        } => GroupResponse::Done(groups.delete_offsets(&group_id, &partitions).await),
        GroupRequest::ConsumerHeartbeat(req) => {
            GroupResponse::ConsumerHeartbeat(GroupService::consumer_heartbeat(groups, req).await)
        }
    }
}

fn standby() -> HttpResponse {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        "this metadata process is standing by: another one is active",
    )
        .into_response()
}

async fn rpc(State(service): State<Arc<MetadataService>>, body: Bytes) -> HttpResponse {
    let Some(active) = service.current() else {
        return standby();
    };
    let request: Request = match decode(&body) {
        Ok(r) => r,
        Err(e) => return (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    };
    let call = request.name();
    let started = std::time::Instant::now();
    let answer = service.handle(&active, request).await;
    let outcome = match &answer {
        Ok(_) => "ok",
        Err(e) => e.kind().name(),
    };
    metrics::histogram!("silt_metadata_request_seconds", "call" => call)
        .record(started.elapsed().as_secs_f64());
    metrics::counter!("silt_metadata_requests_total", "call" => call, "outcome" => outcome)
        .increment(1);
    if let Err(MetadataError::NotActive { epoch }) = &answer {
        // Another process took the lease (and fenced our writes): stop at once.
        warn!(
            ours = active.epoch,
            theirs = epoch,
            "fenced by a newer lease holder"
        );
        service.deactivate();
        return standby();
    }
    let answer = answer.map_err(MetadataError::into_portable);
    match encode(&answer) {
        Ok(bytes) => ([(header::CONTENT_TYPE, "application/msgpack")], bytes).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

fn frame(value: &FeedFrame) -> Option<Bytes> {
    let payload = encode(value).ok()?;
    let mut out = BytesMut::new();
    LengthDelimitedCodec::new()
        .encode(Bytes::from(payload), &mut out)
        .ok()?;
    Some(out.freeze())
}

async fn feed(State(service): State<Arc<MetadataService>>) -> HttpResponse {
    let Some(active) = service.current() else {
        return standby();
    };
    let mut events = service.store.watch_feed();
    let mut epoch = service.epoch_tx.subscribe();
    let (tx, rx) = mpsc::channel::<Result<Bytes, Infallible>>(1024);
    tokio::spawn(async move {
        let ours = active.epoch;
        drop(active);
        let Some(hello) = frame(&FeedFrame::Hello { epoch: ours }) else {
            return;
        };
        if tx.send(Ok(hello)).await.is_err() {
            return;
        }
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            let next = tokio::select! {
                event = events.recv() => match event {
                    Ok(e) => FeedFrame::Event(e),
                    Err(broadcast::error::RecvError::Lagged(_)) => FeedFrame::Resync,
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                _ = tick.tick() => FeedFrame::Tick,
                changed = epoch.changed() => {
                    if changed.is_err() || *epoch.borrow() != Some(ours) {
                        return; // no longer active: the client moves on
                    }
                    continue;
                }
            };
            let Some(bytes) = frame(&next) else { return };
            if tx.send(Ok(bytes)).await.is_err() {
                return;
            }
        }
    });
    let stream = tokio_stream::wrappers::ReceiverStream::new(rx);
    (
        [(header::CONTENT_TYPE, "application/octet-stream")],
        Body::from_stream(stream),
    )
        .into_response()
}

async fn metrics_text(State(service): State<Arc<MetadataService>>) -> HttpResponse {
    let body = service
        .metrics
        .get()
        .map(|render| render())
        .unwrap_or_default();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}

async fn health(State(service): State<Arc<MetadataService>>) -> HttpResponse {
    let epoch = service.active_epoch();
    let body = serde_json::json!({ "active": epoch.is_some(), "epoch": epoch });
    let status = if epoch.is_some() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(body)).into_response()
}

/// Serves `service` on `listener` until `stop`: HTTP/1.1 and HTTP/2 in plaintext, or over
/// TLS with `tls` (built with ALPN `h2` and `http/1.1`).
pub async fn serve(
    listener: tokio::net::TcpListener,
    service: Arc<MetadataService>,
    tls: Option<Arc<rustls::ServerConfig>>,
    stop: CancellationToken,
) -> std::io::Result<()> {
    use axum::serve::ListenerExt;
    if let Some(tls) = tls {
        // The TLS listener sets TCP_NODELAY itself.
        let listener = silt_tls::TlsListener::new(listener, tls)?;
        return axum::serve(listener, service.router())
            .with_graceful_shutdown(async move { stop.cancelled().await })
            .await;
    }
    // Small request/answer frames: without TCP_NODELAY, Nagle's algorithm and delayed
    // ACKs hold some of them for ~40 ms.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, service.router())
        .with_graceful_shutdown(async move { stop.cancelled().await })
        .await
}
