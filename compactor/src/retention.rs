//! Retention: `retention.ms` and `retention.bytes`, with Kafka's semantics at the grain of
//! index entries (Kafka deletes whole log segments the same way).

use silt_metadata::{ChunkEntry, CompactionStore, Topic};

use crate::{CompactorConfig, CompactorError, PassReport};

/// Most entries fetched per query.
const BATCH: u32 = 10_000;

pub(crate) async fn apply(
    metadata: &dyn CompactionStore,
    topic: &Topic,
    partition: i32,
    config: &CompactorConfig,
    now_ms: i64,
    report: &mut PassReport,
) -> Result<(), CompactorError> {
    let retention_ms = match topic.config.retention_ms {
        Some(ms) if ms >= 0 => Some(ms),
        Some(_) => None,
        None => config.default_retention.map(|d| d.as_millis() as i64),
    };
    let retention_bytes = topic.config.retention_bytes.filter(|b| *b >= 0);
    if retention_ms.is_none() && retention_bytes.is_none() {
        return Ok(());
    }
    let offsets = metadata.partition_offset(&topic.name, partition).await?;
    let entries = all_entries(metadata, &topic.name, partition, offsets.log_start_offset).await?;
    let mut start = offsets.log_start_offset;
    if let Some(ms) = retention_ms {
        let cutoff = now_ms.saturating_sub(ms);
        // Entries whose newest record is older than the cutoff go, oldest first.
        let expired = entries
            .iter()
            .take_while(|e| e.max_timestamp_ms < cutoff)
            .last();
        if let Some(e) = expired {
            start = start.max(e.end_offset());
        }
    }
    if let Some(limit) = retention_bytes {
        // Keep the newest entries that fit in `limit` bytes; older ones go.
        let mut kept = 0u64;
        for e in entries.iter().rev() {
            kept += e.byte_len;
            if kept > limit as u64 {
                start = start.max(e.end_offset());
                break;
            }
        }
    }
    if start > offsets.log_start_offset {
        let moved = metadata
            .advance_log_start(&topic.name, partition, start)
            .await?;
        report.partitions_truncated += 1;
        report.records_expired += (moved.log_start_offset - offsets.log_start_offset) as u64;
    }
    Ok(())
}

async fn all_entries(
    metadata: &dyn CompactionStore,
    topic: &str,
    partition: i32,
    from: i64,
) -> Result<Vec<ChunkEntry>, CompactorError> {
    let mut out: Vec<ChunkEntry> = Vec::new();
    let mut offset = from;
    loop {
        let batch = metadata
            .chunks_from(topic, partition, offset, BATCH)
            .await?;
        let Some(last) = batch.last() else { break };
        offset = last.end_offset();
        let full = batch.len() as u32 == BATCH;
        out.extend(batch.into_iter().filter(|e| e.end_offset() > from));
        if !full {
            break;
        }
    }
    Ok(out)
}
