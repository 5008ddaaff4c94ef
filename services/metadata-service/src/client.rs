//! The client every non-metadata role uses: the same metadata role traits and
//! [`GroupService`] traits as in-process, over HTTP/2 to whichever metadata process is
//! active. Requests fail over between the configured endpoints; a change feed keeps local
//! high-watermark watchers awake.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use silt_groups::{
    ConsumerHeartbeat, ConsumerHeartbeatResponse, GroupDescription, GroupError, GroupService,
    GroupSummary, JoinRequest, JoinResponse, SyncRequest,
};
use silt_metadata::{ErrorKind, GroupOffset, MetadataError, Watch, WatchEvent, Watchers};
use tokio::sync::{broadcast, watch};
use tokio::time::Instant;
use tokio_util::codec::{FramedRead, LengthDelimitedCodec};
use tokio_util::io::StreamReader;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use crate::wire::{
    Answer, FEED_PATH, FeedFrame, GroupRequest, GroupResponse, RPC_PATH, Request, Response,
    StoreRequest, StoreResponse, WireArg, decode, encode,
};

/// Client settings.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Base URLs of the metadata processes (`http://host:port`), active and standbys.
    pub endpoints: Vec<String>,
    /// How long a request keeps retrying while no metadata process answers (failover).
    pub retry_for: Duration,
    /// The same for group requests: Kafka clients retry those themselves, so give up
    /// sooner and let them.
    pub group_retry_for: Duration,
    /// Time limit of one attempt (group joins and syncs wait longer: they last a rebalance).
    pub request_timeout: Duration,
    /// KIP-848 heartbeat interval members are told (the coordinator's setting).
    pub consumer_heartbeat_interval: Duration,
    /// For `https://` endpoints: the PEM authorities to trust (instead of the system's),
    /// and the PEM certificate and key to present when the service asks for one.
    pub tls_ca_pem: Option<Vec<u8>>,
    pub tls_identity_pem: Option<Vec<u8>>,
}

impl ClientConfig {
    pub fn new(endpoints: Vec<String>) -> Self {
        Self {
            endpoints,
            retry_for: Duration::from_secs(30),
            group_retry_for: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            consumer_heartbeat_interval: Duration::from_secs(2),
            tls_ca_pem: None,
            tls_identity_pem: None,
        }
    }
}

/// How long a feed may stay silent (the server ticks every second) before the client
/// reconnects.
const FEED_IDLE: Duration = Duration::from_secs(5);
/// Longest wait of a group join or sync (a rebalance).
const REBALANCE_WAIT: Duration = Duration::from_secs(600);

struct Inner {
    config: ClientConfig,
    current: AtomicUsize,
    http: reqwest::Client,
    watchers: Watchers,
    /// Whether the change feed is connected.
    feed_up: watch::Sender<bool>,
    stop: CancellationToken,
}

/// A connection to the metadata service. Cheap to clone.
#[derive(Clone)]
pub struct MetadataClient {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for MetadataClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetadataClient")
            .field("endpoints", &self.inner.config.endpoints)
            .finish_non_exhaustive()
    }
}

fn unavailable(message: String) -> MetadataError {
    MetadataError::Service {
        kind: ErrorKind::Unavailable,
        message,
    }
}

fn unexpected(response: &Response) -> MetadataError {
    MetadataError::Service {
        kind: ErrorKind::Internal,
        message: format!("unexpected answer from the metadata service: {response:?}"),
    }
}

impl MetadataClient {
    /// Builds the client and starts its change feed (on the current runtime). Nothing is
    /// contacted before the first request.
    pub fn connect(config: ClientConfig) -> Result<Self, MetadataError> {
        if config.endpoints.is_empty() {
            return Err(MetadataError::InvalidRequest {
                reason: "no metadata service URL configured".into(),
            });
        }
        let invalid = |what: &str, e: reqwest::Error| MetadataError::InvalidRequest {
            reason: format!("{what}: {e}"),
        };
        let mut http = reqwest::Client::builder()
            .http2_prior_knowledge()
            .connect_timeout(Duration::from_secs(2))
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(2))
            .http2_keep_alive_timeout(Duration::from_secs(4));
        if let Some(pem) = &config.tls_ca_pem {
            let roots = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| invalid("the metadata service's certificate authorities", e))?;
            http = http.tls_certs_only(roots);
        }
        if let Some(pem) = &config.tls_identity_pem {
            let identity = reqwest::Identity::from_pem(pem)
                .map_err(|e| invalid("this node's certificate and key", e))?;
            http = http.identity(identity);
        }
        let http = http
            .build()
            .map_err(|e| invalid("building the HTTP client", e))?;
        let inner = Arc::new(Inner {
            config,
            current: AtomicUsize::new(0),
            http,
            watchers: Watchers::default(),
            feed_up: watch::channel(false).0,
            stop: CancellationToken::new(),
        });
        tokio::spawn(run_feed(Arc::downgrade(&inner), inner.stop.clone()));
        Ok(Self { inner })
    }

    /// Waits until the change feed is connected to an active metadata process (so the
    /// service is reachable and no change goes unnoticed), at most `timeout`.
    pub async fn wait_connected(&self, timeout: Duration) -> Result<(), MetadataError> {
        let mut up = self.inner.feed_up.subscribe();
        tokio::time::timeout(timeout, up.wait_for(|up| *up))
            .await
            .map(|_| ())
            .map_err(|_| {
                unavailable(format!(
                    "no active metadata service at {} after {timeout:?}",
                    self.inner.config.endpoints.join(", ")
                ))
            })
    }

    /// Stops the change feed.
    pub fn shutdown(&self) {
        self.inner.stop.cancel();
    }

    /// Sends a request to the active metadata process, failing over and retrying while
    /// none answers, within the retry budget.
    async fn call(&self, request: Request) -> Answer {
        let inner = &self.inner;
        let body = Bytes::from(encode(&request).map_err(|e| MetadataError::InvalidRequest {
            reason: e.to_string(),
        })?);
        let idempotent = request.is_idempotent();
        let budget = if request.is_group() {
            inner.config.group_retry_for
        } else {
            inner.config.retry_for
        };
        let timeout = match &request {
            Request::Group(GroupRequest::Join(_) | GroupRequest::Sync(_)) => REBALANCE_WAIT,
            _ => inner.config.request_timeout,
        };
        let deadline = Instant::now() + budget;
        let endpoints = &inner.config.endpoints;
        let mut backoff = Duration::from_millis(50);
        loop {
            let index = inner.current.load(Ordering::Relaxed) % endpoints.len();
            let endpoint = &endpoints[index];
            let sent = inner
                .http
                .post(format!("{endpoint}{RPC_PATH}"))
                .header("content-type", "application/msgpack")
                .body(body.clone())
                .timeout(timeout)
                .send()
                .await;
            let why = match sent {
                Ok(response) if response.status().is_success() => match response.bytes().await {
                    Ok(bytes) => {
                        let answer =
                            decode::<Answer>(&bytes).map_err(|e| MetadataError::Service {
                                kind: ErrorKind::Internal,
                                message: e.to_string(),
                            })?;
                        match answer {
                            // The store was briefly unreachable (PostgreSQL restarting):
                            // try again, as long as trying twice is harmless.
                            Err(e) if idempotent && e.is_retriable() => {
                                let why = format!("{endpoint}: {e}");
                                if Instant::now() + backoff > deadline {
                                    return Err(e);
                                }
                                debug!(reason = %why, "metadata request retried");
                                tokio::time::sleep(backoff).await;
                                backoff = (backoff * 2).min(Duration::from_secs(1));
                                continue;
                            }
                            answer => return answer,
                        }
                    }
                    Err(e) if idempotent => format!("{endpoint}: {e}"),
                    Err(e) => {
                        return Err(unavailable(format!(
                            "{endpoint}: the answer was lost ({e}); the request may have been applied"
                        )));
                    }
                },
                Ok(response) if response.status() == reqwest::StatusCode::SERVICE_UNAVAILABLE => {
                    format!("{endpoint} is standing by")
                }
                Ok(response) => {
                    let status = response.status();
                    let text = response.text().await.unwrap_or_default();
                    return Err(MetadataError::Service {
                        kind: ErrorKind::Internal,
                        message: format!("{endpoint} answered {status}: {text}"),
                    });
                }
                Err(e) if e.is_connect() || idempotent => format!("{endpoint}: {e}"),
                Err(e) => {
                    return Err(unavailable(format!(
                        "{endpoint}: {e}; the request may have been applied"
                    )));
                }
            };
            // Try the next endpoint (unless another request already moved on).
            let _ = inner.current.compare_exchange(
                index,
                (index + 1) % endpoints.len(),
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
            if Instant::now() + backoff > deadline {
                return Err(unavailable(format!(
                    "no active metadata service answered within {budget:?}; last: {why}"
                )));
            }
            debug!(reason = %why, "metadata request retried");
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(1));
        }
    }

    /// A group request: transport failures become COORDINATOR_NOT_AVAILABLE, which Kafka
    /// clients answer by finding the coordinator again and retrying.
    async fn call_group(&self, request: GroupRequest) -> Result<GroupResponse, GroupError> {
        match self.call(Request::Group(request)).await {
            Ok(Response::Group(answer)) => Ok(answer),
            Ok(other) => Err(GroupError::Metadata(unexpected(&other).to_string())),
            Err(e) => {
                debug!(error = %e, "group request failed");
                Err(GroupError::CoordinatorNotAvailable)
            }
        }
    }
}

async fn run_feed(inner: std::sync::Weak<Inner>, stop: CancellationToken) {
    // Whether the last attempt connected: log changes, not every retry.
    let mut was_connected = false;
    while !stop.is_cancelled() {
        let Some(client) = inner.upgrade() else {
            return;
        };
        let endpoints = &client.config.endpoints;
        let index = client.current.load(Ordering::Relaxed) % endpoints.len();
        let endpoint = endpoints[index].clone();
        let response = client
            .http
            .get(format!("{endpoint}{FEED_PATH}"))
            .send()
            .await;
        match response {
            Ok(response) if response.status().is_success() => {
                info!(%endpoint, "metadata change feed connected");
                was_connected = true;
                // Changes may have been missed while disconnected.
                client.watchers.wake_all();
                client.feed_up.send_replace(true);
                let bytes = response.bytes_stream().map_err(std::io::Error::other);
                let mut frames =
                    FramedRead::new(StreamReader::new(bytes), LengthDelimitedCodec::new());
                loop {
                    let next = tokio::select! {
                        () = stop.cancelled() => return,
                        next = tokio::time::timeout(FEED_IDLE, frames.next()) => next,
                    };
                    let Ok(Some(Ok(frame))) = next else {
                        break;
                    };
                    match decode::<FeedFrame>(&frame) {
                        Ok(FeedFrame::Event(event)) => client.watchers.apply(&event),
                        Ok(FeedFrame::Resync) => client.watchers.wake_all(),
                        Ok(FeedFrame::Hello { .. } | FeedFrame::Tick) => {}
                        Err(_) => break,
                    }
                }
                client.feed_up.send_replace(false);
                client.watchers.wake_all();
            }
            _ => {
                if was_connected {
                    info!(%endpoint, "metadata change feed lost; trying the next endpoint");
                }
                was_connected = false;
                let _ = client.current.compare_exchange(
                    index,
                    (index + 1) % endpoints.len(),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                );
            }
        }
        drop(client);
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
    }
}

/// Implements every role trait of the API table by sending the call to the service.
macro_rules! impl_store_client {
    ($(
        $(#[$trait_doc:meta])*
        $role:ident $(: $sup:ident)? {
            $(
                $(#[$doc:meta])*
                $policy:ident fn $method:ident($($arg:ident: $ty:ty $(as $wire:ty)?),* $(,)?) -> $ret:ty => $variant:ident;
            )*
        }
    )*) => {$(
        #[async_trait]
        impl silt_metadata::$role for MetadataClient {
            $(
                async fn $method(&self, $($arg: $ty),*) -> silt_metadata::Result<$ret> {
                    let request = StoreRequest::$variant { $($arg: to_wire!($arg $(, $wire)?)),* };
                    match self.call(Request::Store(request)).await? {
                        Response::Store(StoreResponse::$variant(answer)) => Ok(answer),
                        other => Err(unexpected(&other)),
                    }
                }
            )*
        }
    )*};
}

/// An argument in its wire form.
macro_rules! to_wire {
    ($arg:ident) => {
        $arg
    };
    ($arg:ident, $wire:ty) => {
        WireArg::to_wire(&$arg)
    };
}

silt_metadata::metadata_api!(impl_store_client);

impl Watch for MetadataClient {
    fn watch_feed(&self) -> broadcast::Receiver<WatchEvent> {
        self.inner.watchers.feed()
    }

    fn watch(&self, topic: &str, partition: i32) -> watch::Receiver<i64> {
        self.inner.watchers.subscribe(topic, partition)
    }
}

fn unexpected_group(response: &GroupResponse) -> GroupError {
    GroupError::Metadata(format!(
        "unexpected answer from the metadata service: {response:?}"
    ))
}

#[async_trait]
impl GroupService for MetadataClient {
    async fn join(&self, req: JoinRequest) -> JoinResponse {
        let member_id = req.member_id.clone();
        match self.call_group(GroupRequest::Join(req)).await {
            Ok(GroupResponse::Join(r)) => r,
            Ok(other) => JoinResponse::error(unexpected_group(&other), member_id),
            Err(e) => JoinResponse::error(e, member_id),
        }
    }

    async fn sync(&self, req: SyncRequest) -> Result<Bytes, GroupError> {
        match self.call_group(GroupRequest::Sync(req)).await? {
            GroupResponse::Sync(r) => r,
            other => Err(unexpected_group(&other)),
        }
    }

    async fn heartbeat(
        &self,
        group_id: &str,
        member_id: &str,
        instance: Option<&str>,
        generation: i32,
    ) -> Result<(), GroupError> {
        let request = GroupRequest::Heartbeat {
            group_id: group_id.into(),
            member_id: member_id.into(),
            instance: instance.map(str::to_string),
            generation,
        };
        match self.call_group(request).await? {
            GroupResponse::Done(r) => r,
            other => Err(unexpected_group(&other)),
        }
    }

    async fn leave(
        &self,
        group_id: &str,
        members: &[(String, Option<String>)],
    ) -> Vec<Result<(), GroupError>> {
        let request = GroupRequest::Leave {
            group_id: group_id.into(),
            members: members.to_vec(),
        };
        match self.call_group(request).await {
            Ok(GroupResponse::Left(r)) => r,
            Ok(other) => vec![Err(unexpected_group(&other)); members.len()],
            Err(e) => vec![Err(e); members.len()],
        }
    }

    async fn commit_offsets(
        &self,
        group_id: &str,
        member_id: &str,
        instance: Option<&str>,
        generation: i32,
        offsets: &[GroupOffset],
    ) -> Result<(), GroupError> {
        let request = GroupRequest::CommitOffsets {
            group_id: group_id.into(),
            member_id: member_id.into(),
            instance: instance.map(str::to_string),
            generation,
            offsets: offsets.to_vec(),
        };
        match self.call_group(request).await? {
            GroupResponse::Done(r) => r,
            other => Err(unexpected_group(&other)),
        }
    }

    async fn check_txn_commit(
        &self,
        group_id: &str,
        member_id: &str,
        instance: Option<&str>,
        generation: i32,
    ) -> Result<(), GroupError> {
        let request = GroupRequest::CheckTxnCommit {
            group_id: group_id.into(),
            member_id: member_id.into(),
            instance: instance.map(str::to_string),
            generation,
        };
        match self.call_group(request).await? {
            GroupResponse::Done(r) => r,
            other => Err(unexpected_group(&other)),
        }
    }

    async fn fetch_offsets(&self, group_id: &str) -> Result<Vec<GroupOffset>, GroupError> {
        let request = GroupRequest::FetchOffsets {
            group_id: group_id.into(),
        };
        match self.call_group(request).await? {
            GroupResponse::FetchedOffsets(r) => r,
            other => Err(unexpected_group(&other)),
        }
    }

    async fn list(&self) -> Result<Vec<GroupSummary>, GroupError> {
        match self.call_group(GroupRequest::ListGroups).await? {
            GroupResponse::GroupList(r) => r,
            other => Err(unexpected_group(&other)),
        }
    }

    async fn describe(&self, group_id: &str) -> Result<GroupDescription, GroupError> {
        let request = GroupRequest::DescribeGroup {
            group_id: group_id.into(),
        };
        match self.call_group(request).await? {
            GroupResponse::Described(r) => r,
            other => Err(unexpected_group(&other)),
        }
    }

    async fn delete(&self, group_id: &str) -> Result<(), GroupError> {
        let request = GroupRequest::DeleteGroup {
            group_id: group_id.into(),
        };
        match self.call_group(request).await? {
            GroupResponse::Done(r) => r,
            other => Err(unexpected_group(&other)),
        }
    }

    async fn delete_offsets(
        &self,
        group_id: &str,
        partitions: &[(String, i32)],
    ) -> Result<(), GroupError> {
        let request = GroupRequest::DeleteOffsets {
            group_id: group_id.into(),
            partitions: partitions.to_vec(),
        };
        match self.call_group(request).await? {
            GroupResponse::Done(r) => r,
            other => Err(unexpected_group(&other)),
        }
    }

    fn consumer_heartbeat_interval(&self) -> Duration {
        self.inner.config.consumer_heartbeat_interval
    }

    async fn consumer_heartbeat(
        &self,
        req: ConsumerHeartbeat,
    ) -> Result<ConsumerHeartbeatResponse, GroupError> {
        match self
            .call_group(GroupRequest::ConsumerHeartbeat(req))
            .await?
        {
            GroupResponse::ConsumerHeartbeat(r) => r,
            other => Err(unexpected_group(&other)),
        }
    }
}
