//! A store that counts the calls made through it, per call: how tests and benchmarks see
//! what a request path costs the metadata service (a long poll's wake, a produce).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use tokio::sync::{broadcast, watch};

use crate::store::{MetadataStore, Watch};
use crate::watch::WatchEvent;

/// Every role of `inner`, counting each call by name (watches are local, not counted).
pub struct Counted {
    inner: Arc<dyn MetadataStore>,
    calls: Mutex<BTreeMap<&'static str, u64>>,
}

impl std::fmt::Debug for Counted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Counted")
            .field("calls", &self.calls())
            .finish_non_exhaustive()
    }
}

impl Counted {
    pub fn new(inner: Arc<dyn MetadataStore>) -> Self {
        Self {
            inner,
            calls: Mutex::default(),
        }
    }

    /// Calls so far, by name.
    pub fn calls(&self) -> BTreeMap<&'static str, u64> {
        self.calls.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// All calls so far.
    pub fn total(&self) -> u64 {
        self.calls().values().sum()
    }

    /// Starts counting from zero.
    pub fn reset(&self) {
        self.calls.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    fn count(&self, call: &'static str) {
        *self
            .calls
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(call)
            .or_default() += 1;
    }
}

/// Implements every role of the table by counting, then delegating.
macro_rules! define_counted {
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
        impl crate::store::$role for Counted {
            $(
                async fn $method(&self, $($arg: $ty),*) -> crate::Result<$ret> {
                    self.count(stringify!($method));
                    self.inner.$method($($arg),*).await
                }
            )*
        }
    )*};
}

crate::metadata_api!(define_counted);

impl Watch for Counted {
    fn watch_feed(&self) -> broadcast::Receiver<WatchEvent> {
        self.inner.watch_feed()
    }

    fn watch(&self, topic: &str, partition: i32) -> watch::Receiver<i64> {
        self.inner.watch(topic, partition)
    }
}
