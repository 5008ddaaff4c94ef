//! Garbage collection: unreferenced objects after their grace period, and orphans.

use std::time::Duration;

use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use silt_metadata::CompactionStore;
use silt_segment::{LAKE_DIR, SEGMENTS_DIR};

use crate::{CompactorError, PassReport};

/// Keys handled per metadata call.
const BATCH: u32 = 1000;

pub(crate) async fn collect(
    store: &dyn ObjectStore,
    metadata: &dyn CompactionStore,
    grace: Duration,
    orphan_grace: Duration,
    now_ms: i64,
    report: &mut PassReport,
) -> Result<(), CompactorError> {
    let before = now_ms.saturating_sub(orphan_grace.as_millis() as i64);
    // Objects no index entry has referred to for the grace period.
    loop {
        let keys = metadata.unreferenced_segments(grace, BATCH).await?;
        if keys.is_empty() {
            break;
        }
        for key in &keys {
            delete(store, key).await?;
        }
        metadata.forget_segments(&keys).await?;
        report.unreferenced_deleted += keys.len() as u64;
        if (keys.len() as u32) < BATCH {
            break;
        }
    }
    // Orphans: objects the index does not know, older than the grace period (an ingest
    // node writes its object moments before committing it; a compaction, before swapping).
    let cutoff = std::time::SystemTime::UNIX_EPOCH + Duration::from_millis(before.max(0) as u64);
    for dir in [SEGMENTS_DIR, LAKE_DIR] {
        let mut listing = store.list(Some(&Path::from(dir)));
        let mut candidates = Vec::new();
        while let Some(meta) = listing.try_next().await? {
            if std::time::SystemTime::from(meta.last_modified) < cutoff {
                candidates.push(meta.location.to_string());
            }
            if candidates.len() as u32 >= BATCH {
                report.orphans_deleted += delete_unknown(store, metadata, &candidates).await?;
                candidates.clear();
            }
        }
        report.orphans_deleted += delete_unknown(store, metadata, &candidates).await?;
    }
    Ok(())
}

async fn delete_unknown(
    store: &dyn ObjectStore,
    metadata: &dyn CompactionStore,
    keys: &[String],
) -> Result<u64, CompactorError> {
    if keys.is_empty() {
        return Ok(0);
    }
    let known = metadata.known_segments(keys).await?;
    let mut deleted = 0;
    for key in keys.iter().filter(|k| !known.contains(k)) {
        delete(store, key).await?;
        deleted += 1;
    }
    Ok(deleted)
}

async fn delete(store: &dyn ObjectStore, key: &str) -> Result<(), CompactorError> {
    match store.delete(&Path::from(key)).await {
        Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
        Err(e) => Err(e.into()),
    }
}
