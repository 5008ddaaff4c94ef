//! Object-store plumbing shared by every role: building the store from settings (a local
//! folder or any S3-compatible endpoint) and the [`InstrumentedStore`] wrapper that counts
//! every request by operation, with bytes and latency, for `/metrics` and for tests.
//! Depends only on `object_store`; the roles take the result as `Arc<dyn ObjectStore>`.

mod builder;
mod faults;
mod instrumented;

pub use builder::{S3Settings, StorageError, StoreSettings, build_store, probe_store};
pub use faults::{FaultSettings, FaultyStore};
pub use instrumented::{InstrumentedStore, RequestCounts};
