//! Merging a partition's raw index entries into lake files.

use std::collections::HashMap;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt, stream};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use silt_metadata::{BatchKind, ChunkEntry, CompactionStore, MetadataError, SegmentRef};
use silt_segment::{SegmentFooter, encode_lake, lake_key};
use tracing::debug;

use crate::{CompactorConfig, CompactorError, PassReport};

/// Most raw entries looked at per query.
const BATCH: u32 = 10_000;

/// Ranged GETs in flight at once while reading a group's footers and chunks.
const FETCH_CONCURRENCY: usize = 8;

/// Most bytes of decoded footers kept for the rest of a pass.
const FOOTER_BUDGET: usize = 64 << 20;

/// Decoded footers of the raw segments read so far in a pass. A raw segment holds chunks
/// of many partitions, and the pass visits partitions one by one: without this, each
/// segment's footer was fetched again for every partition it holds.
#[derive(Default)]
pub(crate) struct Footers {
    decoded: HashMap<String, SegmentFooter>,
    bytes: usize,
}

impl Footers {
    fn insert(&mut self, key: String, footer: SegmentFooter) {
        let size = footer.memory_size() + key.len();
        if self.bytes + size > FOOTER_BUDGET {
            self.decoded.clear();
            self.bytes = 0;
        }
        self.bytes += size;
        self.decoded.insert(key, footer);
    }
}

#[allow(clippy::too_many_arguments)] // the pass's state, passed down as it is
pub(crate) async fn partition(
    store: &dyn ObjectStore,
    metadata: &dyn CompactionStore,
    topic: &str,
    partition: i32,
    min_age: Duration,
    now_ms: i64,
    config: &CompactorConfig,
    footers: &mut Footers,
    report: &mut PassReport,
) -> Result<(), CompactorError> {
    let cutoff = now_ms.saturating_sub(min_age.as_millis() as i64);
    loop {
        let chunks = metadata.raw_chunks(topic, partition, cutoff, BATCH).await?;
        if chunks.is_empty() {
            break;
        }
        let full = chunks.len() as u32 == BATCH;
        let groups = groups(chunks, config.target_file_bytes);
        if groups.is_empty() {
            // Only transactions' chunks left in this window: they stay raw.
            break;
        }
        for group in groups {
            let merged = merge_group(
                store, metadata, topic, partition, &group, config, footers, report,
            )
            .await;
            match merged {
                Ok(()) => {}
                // Retention or another pass changed the index meanwhile: the lake object
                // just written is unreferenced and GC removes it; try again next pass.
                Err(CompactorError::Metadata(MetadataError::Stale { reason })) => {
                    debug!(%reason, "compaction of a partition skipped");
                    return Ok(());
                }
                Err(e) => return Err(e),
            }
        }
        if !full {
            break;
        }
    }
    // What is left raw: the compaction lag.
    let left = metadata
        .raw_chunks(topic, partition, i64::MAX, BATCH)
        .await?;
    // Transactions' chunks stay raw by design (decision 0008): they are not lag.
    let left: Vec<&ChunkEntry> = left.iter().filter(|c| c.kind == BatchKind::Plain).collect();
    report.lag_bytes += left.iter().map(|c| c.byte_len).sum::<u64>();
    if let Some(oldest) = left.iter().map(|c| c.min_timestamp_ms).min() {
        report.lag_ms = report
            .lag_ms
            .max(now_ms.saturating_sub(oldest).max(0) as u64);
    }
    Ok(())
}

async fn fetch_chunk(
    store: &dyn ObjectStore,
    chunk: &ChunkEntry,
) -> Result<bytes::Bytes, object_store::Error> {
    let path = Path::from(chunk.segment.key.as_str());
    store
        .get_range(&path, chunk.byte_start..chunk.byte_start + chunk.byte_len)
        .await
}

async fn fetch_footer(
    store: &dyn ObjectStore,
    segment: &SegmentRef,
) -> Result<(String, SegmentFooter), CompactorError> {
    let start = segment
        .size
        .checked_sub(segment.footer_len)
        .ok_or_else(|| {
            CompactorError::Invalid(format!("footer of {} longer than it", segment.key))
        })?;
    let raw = store
        .get_range(&Path::from(segment.key.as_str()), start..segment.size)
        .await?;
    let (size, crc) = (segment.size, segment.footer_crc);
    let footer = tokio::task::spawn_blocking(move || SegmentFooter::decode_checked(raw, size, crc))
        .await
        .map_err(|e| CompactorError::Invalid(format!("footer decoding failed: {e}")))??;
    Ok((segment.key.clone(), footer))
}

/// Consecutive runs of plain entries of at most `target` bytes (at least one entry
/// each). A transaction's records and markers stay in their raw segments, where the index
/// keeps their producer and kind for read_committed readers: a run ends before one.
fn groups(chunks: Vec<ChunkEntry>, target: u64) -> Vec<Vec<ChunkEntry>> {
    let mut out = Vec::new();
    let mut current: Vec<ChunkEntry> = Vec::new();
    let mut bytes = 0;
    for chunk in chunks {
        if chunk.kind != BatchKind::Plain {
            if !current.is_empty() {
                out.push(std::mem::take(&mut current));
            }
            bytes = 0;
            continue;
        }
        // Offsets of a group are contiguous: a transaction's chunk between two plain ones
        // (left out of the raw entries the index answers) ends a group too.
        let follows = current
            .last()
            .is_none_or(|c: &ChunkEntry| c.end_offset() == chunk.base_offset);
        if !follows {
            out.push(std::mem::take(&mut current));
            bytes = 0;
        }
        if !current.is_empty() && bytes + chunk.byte_len > target {
            out.push(std::mem::take(&mut current));
            bytes = 0;
        }
        bytes += chunk.byte_len;
        current.push(chunk);
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

#[allow(clippy::too_many_arguments)]
async fn merge_group(
    store: &dyn ObjectStore,
    metadata: &dyn CompactionStore,
    topic: &str,
    partition: i32,
    group: &[ChunkEntry],
    config: &CompactorConfig,
    footers: &mut Footers,
    report: &mut PassReport,
) -> Result<(), CompactorError> {
    // The footers of segments not seen yet in this pass, then every chunk's byte range,
    // several GETs at a time.
    let mut missing: Vec<&SegmentRef> = Vec::new();
    for chunk in group {
        let segment = &chunk.segment;
        if !footers.decoded.contains_key(&segment.key)
            && !missing.iter().any(|s| s.key == segment.key)
        {
            missing.push(segment);
        }
    }
    // (Futures collected first: a stream over a closure borrowing the store trips the
    // compiler's lifetime inference in the spawned pass loop.)
    let fetches: Vec<_> = missing
        .into_iter()
        .map(|segment| fetch_footer(store, segment))
        .collect();
    let fetched: Vec<(String, SegmentFooter)> = stream::iter(fetches)
        .buffered(FETCH_CONCURRENCY)
        .try_collect()
        .await?;
    for (key, footer) in fetched {
        footers.insert(key, footer);
    }
    let needed: HashMap<String, SegmentFooter> = group
        .iter()
        .filter_map(|c| {
            let key = &c.segment.key;
            footers.decoded.get(key).map(|f| (key.clone(), f.clone()))
        })
        .collect();
    let fetches: Vec<_> = group
        .iter()
        .map(|chunk| fetch_chunk(store, chunk))
        .collect();
    let ranges: Vec<bytes::Bytes> = stream::iter(fetches)
        .buffered(FETCH_CONCURRENCY)
        .try_collect()
        .await?;
    report.bytes_read += group.iter().map(|c| c.byte_len).sum::<u64>();
    let first = group[0].base_offset;
    let count: u64 = group.iter().map(|c| u64::from(c.record_count)).sum();
    let last = first + count as i64 - 1;
    let key = lake_key(topic, partition, first, last);
    let owned: Vec<ChunkEntry> = group.to_vec();
    let rows_per_group = config.rows_per_group;
    // Decoding and encoding are CPU work: off the async runtime.
    let encoded = tokio::task::spawn_blocking(move || {
        let mut records = Vec::with_capacity(count as usize);
        for (chunk, bytes) in owned.iter().zip(ranges) {
            let segment = &chunk.segment;
            let footer = needed.get(&segment.key).ok_or_else(|| {
                CompactorError::Invalid(format!("no footer read for {}", segment.key))
            })?;
            let got = footer.decode_chunk(chunk.row_group as usize, chunk.byte_start, bytes)?;
            if got.len() != chunk.record_count as usize {
                return Err(CompactorError::Invalid(format!(
                    "{} row group {} holds {} records, the index says {}",
                    segment.key,
                    chunk.row_group,
                    got.len(),
                    chunk.record_count
                )));
            }
            records.extend(got);
        }
        Ok(encode_lake(partition, first, &records, rows_per_group)?)
    })
    .await
    .map_err(|e| CompactorError::Invalid(format!("compaction task failed: {e}")))??;

    let size = encoded.data.len() as u64;
    // The name is a function of the offsets, so a retry after a crash writes the same
    // object again (plain PUT: it overwrites the unreferenced leftover).
    store
        .put(
            &Path::from(key.as_str()),
            PutPayload::from(encoded.data.clone()),
        )
        .await?;
    let segment = SegmentRef {
        key,
        size,
        footer_len: encoded.footer_len,
        footer_crc: Some(encoded.footer_crc),
    };
    let mut base = first;
    let new: Vec<ChunkEntry> = encoded
        .chunks
        .iter()
        .map(|c| {
            let entry = ChunkEntry {
                partition,
                base_offset: base,
                record_count: c.record_count,
                segment: segment.clone(),
                row_group: c.row_group as u32,
                byte_start: c.byte_start,
                byte_len: c.byte_len,
                min_timestamp_ms: c.min_timestamp_ms,
                max_timestamp_ms: c.max_timestamp_ms,
                // Lake files hold committed records only, of many batches: plain ones.
                producer: None,
                kind: BatchKind::Plain,
            };
            base += i64::from(c.record_count);
            entry
        })
        .collect();
    metadata
        .replace_chunks(topic, partition, group, &new)
        .await?;
    report.chunks_merged += group.len() as u64;
    report.lake_files_written += 1;
    report.records_rewritten += count;
    report.bytes_written += size;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(base: i64, bytes: u64) -> ChunkEntry {
        ChunkEntry {
            partition: 0,
            base_offset: base,
            record_count: 1,
            segment: SegmentRef {
                key: "s".into(),
                size: 10,
                footer_len: 2,
                footer_crc: None,
            },
            row_group: 0,
            byte_start: 0,
            byte_len: bytes,
            min_timestamp_ms: 0,
            max_timestamp_ms: 0,
            producer: None,
            kind: BatchKind::Plain,
        }
    }

    #[test]
    fn transactions_chunks_stay_raw_and_end_runs() {
        let mut chunks: Vec<ChunkEntry> = (0..6).map(|i| entry(i, 10)).collect();
        chunks[2].kind = BatchKind::Transactional;
        chunks[3].kind = BatchKind::Marker;
        let got: Vec<Vec<i64>> = groups(chunks, 1000)
            .iter()
            .map(|g| g.iter().map(|c| c.base_offset).collect())
            .collect();
        assert_eq!(got, [vec![0, 1], vec![4, 5]]);
        // The index leaves them out of the raw entries: the gap ends a run as well.
        let plain: Vec<ChunkEntry> = [0, 1, 4, 5].into_iter().map(|i| entry(i, 10)).collect();
        let got: Vec<Vec<i64>> = groups(plain, 1000)
            .iter()
            .map(|g| g.iter().map(|c| c.base_offset).collect())
            .collect();
        assert_eq!(got, [vec![0, 1], vec![4, 5]]);
    }

    #[test]
    fn groups_stay_under_the_target_and_keep_order() {
        let chunks = vec![
            entry(0, 40),
            entry(1, 40),
            entry(2, 40),
            entry(3, 200),
            entry(4, 10),
        ];
        let g = groups(chunks, 100);
        let bases: Vec<Vec<i64>> = g
            .iter()
            .map(|g| g.iter().map(|c| c.base_offset).collect())
            .collect();
        assert_eq!(bases, [vec![0, 1], vec![2], vec![3], vec![4]]);
    }
}
