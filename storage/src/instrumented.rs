//! Counts object-store requests by operation.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, Result,
};

/// Request counts seen by one [`InstrumentedStore`] since it was made.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RequestCounts {
    pub puts: u64,
    pub put_bytes: u64,
    pub gets: u64,
    pub get_bytes: u64,
    pub lists: u64,
    pub deletes: u64,
    pub other: u64,
}

#[derive(Debug, Default)]
struct Counters {
    puts: AtomicU64,
    put_bytes: AtomicU64,
    gets: AtomicU64,
    get_bytes: AtomicU64,
    lists: AtomicU64,
    deletes: AtomicU64,
    other: AtomicU64,
}

/// Wraps a store and counts every request: `silt_object_requests_total{op}`,
/// `silt_object_bytes_total{op}`, `silt_object_request_seconds{op}` and
/// `silt_object_errors_total{op}`, plus local counters readable with [`Self::counts`].
#[derive(Debug)]
pub struct InstrumentedStore {
    inner: Arc<dyn ObjectStore>,
    counters: Counters,
}

impl InstrumentedStore {
    pub fn new(inner: Arc<dyn ObjectStore>) -> Self {
        // Register the request series at zero, so "no GETs" reads as 0 rather than absent.
        for op in ["put", "get", "head", "list", "delete", "copy"] {
            metrics::counter!("silt_object_requests_total", "op" => op).increment(0);
            metrics::counter!("silt_object_errors_total", "op" => op).increment(0);
        }
        Self {
            inner,
            counters: Counters::default(),
        }
    }

    pub fn counts(&self) -> RequestCounts {
        let c = &self.counters;
        RequestCounts {
            puts: c.puts.load(Ordering::Relaxed),
            put_bytes: c.put_bytes.load(Ordering::Relaxed),
            gets: c.gets.load(Ordering::Relaxed),
            get_bytes: c.get_bytes.load(Ordering::Relaxed),
            lists: c.lists.load(Ordering::Relaxed),
            deletes: c.deletes.load(Ordering::Relaxed),
            other: c.other.load(Ordering::Relaxed),
        }
    }

    fn record<T>(&self, op: &'static str, started: Instant, result: &Result<T>) {
        metrics::counter!("silt_object_requests_total", "op" => op).increment(1);
        metrics::histogram!("silt_object_request_seconds", "op" => op)
            .record(started.elapsed().as_secs_f64());
        if result.is_err() {
            metrics::counter!("silt_object_errors_total", "op" => op).increment(1);
        }
    }

    fn bytes(&self, op: &'static str, counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
        metrics::counter!("silt_object_bytes_total", "op" => op).increment(n);
    }
}

impl fmt::Display for InstrumentedStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Instrumented({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for InstrumentedStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        let started = Instant::now();
        let len = payload.content_length() as u64;
        self.counters.puts.fetch_add(1, Ordering::Relaxed);
        let result = self.inner.put_opts(location, payload, opts).await;
        self.record("put", started, &result);
        if result.is_ok() {
            self.bytes("put", &self.counters.put_bytes, len);
        }
        result
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        let started = Instant::now();
        self.counters.other.fetch_add(1, Ordering::Relaxed);
        let result = self.inner.put_multipart_opts(location, opts).await;
        self.record("put_multipart", started, &result);
        result
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        let started = Instant::now();
        let head = options.head;
        let op = if head { "head" } else { "get" };
        if head {
            self.counters.other.fetch_add(1, Ordering::Relaxed);
        } else {
            self.counters.gets.fetch_add(1, Ordering::Relaxed);
        }
        let result = self.inner.get_opts(location, options).await;
        self.record(op, started, &result);
        if let (Ok(r), false) = (&result, head) {
            self.bytes("get", &self.counters.get_bytes, r.range.end - r.range.start);
        }
        result
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        // Counted per range: the inner store issues (at most) one request per range.
        let started = Instant::now();
        self.counters
            .gets
            .fetch_add(ranges.len() as u64, Ordering::Relaxed);
        let result = self.inner.get_ranges(location, ranges).await;
        self.record("get", started, &result);
        if let Ok(parts) = &result {
            let n = parts.iter().map(|b| b.len() as u64).sum();
            self.bytes("get", &self.counters.get_bytes, n);
        }
        result
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        self.counters.deletes.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("silt_object_requests_total", "op" => "delete").increment(1);
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.counters.lists.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("silt_object_requests_total", "op" => "list").increment(1);
        self.inner.list(prefix).boxed()
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        let started = Instant::now();
        self.counters.lists.fetch_add(1, Ordering::Relaxed);
        let result = self.inner.list_with_delimiter(prefix).await;
        self.record("list", started, &result);
        result
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        let started = Instant::now();
        self.counters.other.fetch_add(1, Ordering::Relaxed);
        let result = self.inner.copy_opts(from, to, options).await;
        self.record("copy", started, &result);
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::ObjectStoreExt;
    use object_store::memory::InMemory;

    #[tokio::test]
    async fn counts_puts_gets_and_bytes() {
        let store = InstrumentedStore::new(Arc::new(InMemory::new()));
        let path = Path::from("a/b");
        store
            .put(&path, PutPayload::from_static(b"hello world"))
            .await
            .expect("put");
        let part = store.get_range(&path, 0..5).await.expect("get");
        assert_eq!(&part[..], b"hello");
        store
            .get(&path)
            .await
            .expect("get")
            .bytes()
            .await
            .expect("body");
        let c = store.counts();
        assert_eq!((c.puts, c.put_bytes, c.gets, c.get_bytes), (1, 11, 2, 16));
    }
}
