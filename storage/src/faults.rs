//! Fault injection for test clusters and tests: a wrapper that, on a seeded schedule,
//! fails requests, slows them down, or performs a PUT and then reports it failed (so a
//! retry meets an object that already exists). Never meant for production: a node only
//! wraps its store in it when `storage.fault_injection.enabled` is set, and says so loudly.

use std::fmt;
use std::ops::Range;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, Result,
};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// What to inject, as fractions of requests (0.0 – 1.0).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FaultSettings {
    /// Off unless set: the wrapper is only installed when this is true.
    pub enabled: bool,
    /// Seed of the schedule: the same seed and the same request sequence give the same faults.
    pub seed: u64,
    /// Requests that fail without reaching the store (like a 503 or a connection reset).
    pub error_rate: f64,
    /// PUTs that are performed, then reported failed (a lost acknowledgement).
    pub put_lost_ack_rate: f64,
    /// Requests delayed by `slow_delay` before they are sent.
    pub slow_rate: f64,
    #[serde(with = "humantime_serde")]
    pub slow_delay: Duration,
}

impl Default for FaultSettings {
    fn default() -> Self {
        Self {
            enabled: false,
            seed: 0,
            error_rate: 0.0,
            put_lost_ack_rate: 0.0,
            slow_rate: 0.0,
            slow_delay: Duration::from_millis(200),
        }
    }
}

impl FaultSettings {
    /// Checks that every rate is a fraction.
    pub fn validate(&self) -> std::result::Result<(), String> {
        for (name, rate) in [
            ("error_rate", self.error_rate),
            ("put_lost_ack_rate", self.put_lost_ack_rate),
            ("slow_rate", self.slow_rate),
        ] {
            if !(0.0..=1.0).contains(&rate) {
                return Err(format!(
                    "storage.fault_injection.{name} must be between 0 and 1, not {rate}"
                ));
            }
        }
        Ok(())
    }
}

/// What the schedule decided for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    None,
    Fail,
    LoseAck,
}

/// Wraps a store and injects faults while active (see [`FaultSettings`]).
pub struct FaultyStore {
    inner: Arc<dyn ObjectStore>,
    settings: FaultSettings,
    rng: Mutex<fastrand::Rng>,
    active: AtomicBool,
}

impl fmt::Debug for FaultyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FaultyStore")
            .field("settings", &self.settings)
            .field("active", &self.is_active())
            .finish()
    }
}

impl fmt::Display for FaultyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FaultInjection({})", self.inner)
    }
}

fn injected(op: &str, what: &str) -> object_store::Error {
    object_store::Error::Generic {
        store: "fault-injection",
        source: format!("injected fault: {op} {what}").into(),
    }
}

impl FaultyStore {
    /// Wraps `inner`; faults are injected from the start.
    pub fn new(inner: Arc<dyn ObjectStore>, settings: FaultSettings) -> Self {
        for kind in ["error", "lost_ack", "slow"] {
            metrics::counter!("silt_faults_injected_total", "kind" => kind).increment(0);
        }
        Self {
            rng: Mutex::new(fastrand::Rng::with_seed(settings.seed)),
            inner,
            settings,
            active: AtomicBool::new(true),
        }
    }

    /// Turns injection on or off (a test cluster's nemesis toggles it).
    pub fn set_active(&self, active: bool) {
        self.active.store(active, Ordering::SeqCst);
    }

    pub fn is_active(&self) -> bool {
        self.active.load(Ordering::SeqCst)
    }

    /// Draws this request's fate, and sleeps first if it is to be slow.
    async fn decide(&self, put: bool) -> Fault {
        if !self.is_active() {
            return Fault::None;
        }
        let (slow, fail, lose) = {
            let mut rng = self.rng.lock().unwrap_or_else(|e| e.into_inner());
            (rng.f64(), rng.f64(), rng.f64())
        };
        if slow < self.settings.slow_rate {
            metrics::counter!("silt_faults_injected_total", "kind" => "slow").increment(1);
            tokio::time::sleep(self.settings.slow_delay).await;
        }
        if fail < self.settings.error_rate {
            metrics::counter!("silt_faults_injected_total", "kind" => "error").increment(1);
            return Fault::Fail;
        }
        if put && lose < self.settings.put_lost_ack_rate {
            metrics::counter!("silt_faults_injected_total", "kind" => "lost_ack").increment(1);
            return Fault::LoseAck;
        }
        Fault::None
    }
}

#[async_trait]
impl ObjectStore for FaultyStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        match self.decide(true).await {
            Fault::Fail => Err(injected("put", "failed")),
            Fault::LoseAck => {
                self.inner.put_opts(location, payload, opts).await?;
                Err(injected("put", "done, acknowledgement lost"))
            }
            Fault::None => self.inner.put_opts(location, payload, opts).await,
        }
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        match self.decide(false).await {
            Fault::None | Fault::LoseAck => self.inner.put_multipart_opts(location, opts).await,
            Fault::Fail => Err(injected("put_multipart", "failed")),
        }
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        match self.decide(false).await {
            Fault::None | Fault::LoseAck => self.inner.get_opts(location, options).await,
            Fault::Fail => Err(injected("get", "failed")),
        }
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        match self.decide(false).await {
            Fault::None | Fault::LoseAck => self.inner.get_ranges(location, ranges).await,
            Fault::Fail => Err(injected("get", "failed")),
        }
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        // Deletes are not delayed (the stream API is synchronous to set up); failing a
        // batch of deletes is enough to exercise the callers' retries.
        if self.is_active() {
            let fail = {
                let mut rng = self.rng.lock().unwrap_or_else(|e| e.into_inner());
                rng.f64() < self.settings.error_rate
            };
            if fail {
                metrics::counter!("silt_faults_injected_total", "kind" => "error").increment(1);
                return locations
                    .and_then(|_| async { Err(injected("delete", "failed")) })
                    .boxed();
            }
        }
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        match self.decide(false).await {
            Fault::None | Fault::LoseAck => self.inner.list_with_delimiter(prefix).await,
            Fault::Fail => Err(injected("list", "failed")),
        }
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        match self.decide(false).await {
            Fault::None | Fault::LoseAck => self.inner.copy_opts(from, to, options).await,
            Fault::Fail => Err(injected("copy", "failed")),
        }
    }
}

#[cfg(test)]
mod tests {
    use object_store::ObjectStoreExt;
    use object_store::memory::InMemory;

    use super::*;

    fn settings(error: f64, lost: f64) -> FaultSettings {
        FaultSettings {
            enabled: true,
            seed: 42,
            error_rate: error,
            put_lost_ack_rate: lost,
            ..FaultSettings::default()
        }
    }

    #[tokio::test]
    async fn a_lost_ack_put_is_stored_but_reported_failed() {
        let inner: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let store = FaultyStore::new(inner.clone(), settings(0.0, 1.0));
        let path = Path::from("segments/a.parquet");
        let err = store
            .put(&path, PutPayload::from_static(b"data"))
            .await
            .expect_err("reported failed");
        assert!(err.to_string().contains("acknowledgement lost"), "{err}");
        let stored = inner.get(&path).await.expect("stored").bytes().await;
        assert_eq!(&stored.expect("body")[..], b"data");
    }

    #[tokio::test]
    async fn the_schedule_follows_the_seed_and_can_be_switched_off() {
        async fn outcomes(store: &FaultyStore) -> Vec<bool> {
            let mut out = Vec::new();
            for i in 0..200 {
                let path = Path::from(format!("k/{i}"));
                out.push(
                    store
                        .put(&path, PutPayload::from_static(b"x"))
                        .await
                        .is_ok(),
                );
            }
            out
        }
        let a = FaultyStore::new(Arc::new(InMemory::new()), settings(0.3, 0.0));
        let b = FaultyStore::new(Arc::new(InMemory::new()), settings(0.3, 0.0));
        let (first, second) = (outcomes(&a).await, outcomes(&b).await);
        assert_eq!(first, second, "same seed, same faults");
        let failed = first.iter().filter(|ok| !**ok).count();
        assert!(
            (30..=90).contains(&failed),
            "{failed} of 200 failed at rate 0.3"
        );
        a.set_active(false);
        assert!(
            outcomes(&a).await.iter().all(|ok| *ok),
            "inactive: no faults"
        );
    }

    #[test]
    fn rates_must_be_fractions() {
        assert!(settings(1.5, 0.0).validate().is_err());
        assert!(settings(0.5, -0.1).validate().is_err());
        assert!(settings(0.5, 0.5).validate().is_ok());
    }
}
