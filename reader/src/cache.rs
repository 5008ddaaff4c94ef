//! The chunk cache: raw footer and row-group bytes in a foyer hybrid cache (memory and
//! local disk), decoded footers in a small in-memory cache, all filled from the object store.

use std::sync::Arc;

use bytes::Bytes;
use foyer::{
    BlockEngineConfig, Cache, CacheBuilder, DeviceBuilder, FsDeviceBuilder, HybridCache,
    HybridCacheBuilder, PsyncIoEngineConfig,
};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use silt_metadata::SegmentRef;
use silt_segment::SegmentFooter;

use tracing::warn;

use crate::config::ReaderConfig;
use crate::error::ReaderError;

const BLOCK_SIZE: usize = 16 << 20;
/// Write buffers of the disk tier: entries wait here to be written (foyer's buffer pool
/// and submit queue, 16 MiB each).
const DISK_BUFFER: usize = 16 << 20;

pub(crate) fn footer_key(segment: &str) -> String {
    format!("{segment}#footer")
}

pub(crate) fn chunk_key(segment: &str, row_group: u32) -> String {
    format!("{segment}#rg{row_group}")
}

pub(crate) struct ChunkCache {
    bytes: HybridCache<String, Bytes>,
    footers: Cache<String, SegmentFooter>,
    store: Arc<dyn ObjectStore>,
}

fn cache_error(source: foyer::Error) -> ReaderError {
    ReaderError::Cache { source }
}

/// Opens the disk tier's device in `dir`, creating it.
fn disk_device(
    config: &ReaderConfig,
    dir: &std::path::Path,
) -> Result<Arc<dyn foyer::Device>, String> {
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let capacity = config.disk_cache_bytes.max(2 * BLOCK_SIZE);
    FsDeviceBuilder::new(dir)
        .with_capacity(capacity)
        .build()
        .map_err(|e| e.to_string())
}

/// Logs a cache read error at most once every ten seconds (a bad disk fails every read).
fn warn_rarely(error: &foyer::Error) {
    static LAST: std::sync::Mutex<Option<std::time::Instant>> = std::sync::Mutex::new(None);
    let mut last = LAST.lock().unwrap_or_else(|e| e.into_inner());
    if last.is_none_or(|t| t.elapsed() >= std::time::Duration::from_secs(10)) {
        *last = Some(std::time::Instant::now());
        warn!(error = %error, "reading the cache's disk tier failed: reading from the object store instead");
    }
}

impl ChunkCache {
    pub(crate) async fn build(
        config: &ReaderConfig,
        store: Arc<dyn ObjectStore>,
    ) -> Result<Self, ReaderError> {
        // One memory budget: an eighth for decoded footers, the disk tier's write buffers,
        // the rest for raw bytes.
        let total = config.memory_cache_bytes.max(2 << 20);
        let footer_bytes = total / 8;
        // The disk tier needs a folder and some bytes.
        let disk_dir = config
            .cache_dir
            .as_deref()
            .filter(|_| config.disk_cache_bytes > 0);
        let disk_buffers = if disk_dir.is_none() {
            0
        } else {
            2 * DISK_BUFFER
        };
        let memory = HybridCacheBuilder::new()
            .with_name("silt-chunks")
            .memory(
                total
                    .saturating_sub(footer_bytes + disk_buffers)
                    .max(1 << 20),
            )
            .with_weighter(|key: &String, value: &Bytes| key.len() + value.len());
        let disk = match disk_dir {
            None => None,
            Some(dir) => match disk_device(config, dir) {
                Ok(device) => Some(device),
                Err(reason) => {
                    // The cache is an optimisation: without its disk the node still serves
                    // every read, from memory and the object store.
                    warn!(
                        dir = %dir.display(),
                        "the cache's disk tier cannot be used ({reason}): caching in memory only"
                    );
                    None
                }
            },
        };
        metrics::gauge!("silt_reader_cache_disk_enabled").set(if disk.is_some() {
            1.0
        } else {
            0.0
        });
        let bytes = match disk {
            None => memory.storage().build().await.map_err(cache_error)?,
            Some(device) => memory
                .storage()
                .with_io_engine_config(PsyncIoEngineConfig::new())
                .with_engine_config(
                    BlockEngineConfig::new(device)
                        .with_block_size(BLOCK_SIZE)
                        .with_buffer_pool_size(DISK_BUFFER)
                        .with_submit_queue_size_threshold(DISK_BUFFER),
                )
                .build()
                .await
                .map_err(cache_error)?,
        };
        let footers = CacheBuilder::new(footer_bytes)
            .with_weighter(|key: &String, footer: &SegmentFooter| key.len() + footer.memory_size())
            .build();
        Ok(Self {
            bytes,
            footers,
            store,
        })
    }

    /// Puts an object this node has just written into the cache, footer and chunks. Each
    /// entry is copied into its own allocation: a slice would keep the whole segment alive
    /// until its last chunk is evicted, so the cache would hold more than it weighs.
    pub(crate) fn insert_segment(
        &self,
        key: &str,
        data: &Bytes,
        footer_len: u64,
        chunks: impl Iterator<Item = (u32, u64, u64)>,
    ) {
        let len = data.len() as u64;
        if footer_len > len {
            return;
        }
        let footer = Bytes::copy_from_slice(&data[(len - footer_len) as usize..]);
        if let Ok(decoded) = SegmentFooter::decode(footer.clone(), len) {
            self.footers.insert(footer_key(key), decoded);
        }
        self.bytes.insert(footer_key(key), footer);
        for (row_group, start, chunk_len) in chunks {
            let end = start + chunk_len;
            if end <= len {
                self.bytes.insert(
                    chunk_key(key, row_group),
                    Bytes::copy_from_slice(&data[start as usize..end as usize]),
                );
            }
        }
    }

    async fn bytes(
        &self,
        cache_key: String,
        object: &str,
        range: std::ops::Range<u64>,
    ) -> Result<Bytes, ReaderError> {
        match self.bytes.get(&cache_key).await {
            Ok(Some(entry)) => {
                metrics::counter!("silt_reader_cache_requests_total", "result" => "hit")
                    .increment(1);
                return Ok(entry.value().clone());
            }
            Ok(None) => {}
            // A failing cache disk (I/O errors, damaged or vanished files) costs a GET, not
            // the read: the entry is fetched from the object store like a miss.
            Err(e) => {
                metrics::counter!("silt_reader_cache_errors_total").increment(1);
                warn_rarely(&e);
            }
        }
        metrics::counter!("silt_reader_cache_requests_total", "result" => "miss").increment(1);
        let data = self
            .store
            .get_range(&Path::from(object), range)
            .await
            .map_err(|source| ReaderError::ObjectStore {
                key: object.to_string(),
                source,
            })?;
        self.bytes.insert(cache_key, data.clone());
        Ok(data)
    }

    pub(crate) async fn footer(&self, segment: &SegmentRef) -> Result<SegmentFooter, ReaderError> {
        let key = footer_key(&segment.key);
        if let Some(entry) = self.footers.get(&key) {
            return Ok(entry.value().clone());
        }
        let start = segment
            .size
            .checked_sub(segment.footer_len)
            .ok_or_else(|| ReaderError::Internal {
                reason: format!("footer of {} longer than the object", segment.key),
            })?;
        let raw = self
            .bytes(key.clone(), &segment.key, start..segment.size)
            .await?;
        let (size, crc) = (segment.size, segment.footer_crc);
        let decoded =
            tokio::task::spawn_blocking(move || SegmentFooter::decode_checked(raw, size, crc))
                .await
                .map_err(|e| ReaderError::Internal {
                    reason: format!("footer decoder panicked: {e}"),
                })?
                .map_err(|source| ReaderError::Segment {
                    key: segment.key.clone(),
                    source,
                })?;
        self.footers.insert(key, decoded.clone());
        Ok(decoded)
    }

    pub(crate) async fn chunk(
        &self,
        segment: &SegmentRef,
        row_group: u32,
        start: u64,
        len: u64,
    ) -> Result<Bytes, ReaderError> {
        self.bytes(
            chunk_key(&segment.key, row_group),
            &segment.key,
            start..start + len,
        )
        .await
    }

    pub(crate) async fn close(&self) {
        let _ = self.bytes.close().await;
    }
}
