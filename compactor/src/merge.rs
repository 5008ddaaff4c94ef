//! Merging a partition's raw index entries into lake files.

use std::collections::HashMap;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt, stream};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use silt_metadata::{
    AbortedTransaction, BatchKind, ChunkEntry, CompactionStore, MetadataError, SegmentRef,
};
use silt_segment::{SegmentFooter, encode_lake_runs, lake_key};
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
    // Markers stay raw, so the window moves on by offset rather than by what is left.
    let mut from = 0;
    loop {
        let chunks = metadata
            .raw_chunks(topic, partition, from, cutoff, BATCH)
            .await?;
        let Some(last) = chunks.last() else {
            break;
        };
        from = last.end_offset();
        let full = chunks.len() as u32 == BATCH;
        for group in groups(chunks, config.target_file_bytes) {
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
    // What is left raw (but markers, which stay: decision 0008): the compaction lag.
    let left = metadata
        .raw_chunks(topic, partition, from, i64::MAX, BATCH)
        .await?;
    let left: Vec<&ChunkEntry> = left
        .iter()
        .filter(|c| c.kind != BatchKind::Marker)
        .collect();
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

/// Runs of entries with consecutive offsets holding at most `target` bytes of records (at
/// least one entry each). Markers ride along (they stay raw, the records around them are
/// merged into one file); a run of markers alone is left out. An offset missing from the
/// entries (a lake object already, or an open transaction's records) ends a run.
fn groups(chunks: Vec<ChunkEntry>, target: u64) -> Vec<Vec<ChunkEntry>> {
    let mut out = Vec::new();
    let mut current: Vec<ChunkEntry> = Vec::new();
    let mut bytes = 0;
    let flush = |current: &mut Vec<ChunkEntry>, out: &mut Vec<Vec<ChunkEntry>>| {
        if current.iter().any(|c| c.kind != BatchKind::Marker) {
            out.push(std::mem::take(current));
        }
        current.clear();
    };
    for chunk in chunks {
        let follows = current
            .last()
            .is_none_or(|c: &ChunkEntry| c.end_offset() == chunk.base_offset);
        let records = if chunk.kind == BatchKind::Marker {
            0
        } else {
            chunk.byte_len
        };
        if !follows || (bytes > 0 && bytes + records > target) {
            flush(&mut current, &mut out);
            bytes = 0;
        }
        bytes += records;
        current.push(chunk);
    }
    flush(&mut current, &mut out);
    out
}

/// Whether a transaction's chunk belongs to an aborted transaction (one of `aborted`, the
/// partition's aborted ranges around it).
fn is_aborted(chunk: &ChunkEntry, aborted: &[AbortedTransaction]) -> bool {
    let Some(producer) = chunk
        .producer
        .filter(|_| chunk.kind == BatchKind::Transactional)
    else {
        return false;
    };
    aborted.iter().any(|a| {
        a.producer_id == producer.producer_id
            && (a.first_offset..a.last_offset).contains(&chunk.base_offset)
    })
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
    // The records to keep: plain ones and committed transactions' (every transaction in
    // the group has ended; the aborted ranges name those that were aborted). Markers stay
    // raw; aborted records are dropped, unread.
    let (start, end) = (group[0].base_offset, group[group.len() - 1].end_offset());
    let transactional = group.iter().any(|c| c.kind == BatchKind::Transactional);
    let aborted = if transactional {
        metadata
            .aborted_transactions(topic, partition, start, end)
            .await?
    } else {
        Vec::new()
    };
    let kept: Vec<ChunkEntry> = group
        .iter()
        .filter(|c| c.kind != BatchKind::Marker && !is_aborted(c, &aborted))
        .cloned()
        .collect();
    if kept.is_empty() {
        // Nothing but aborted records (and markers): their entries just go.
        metadata
            .replace_chunks(topic, partition, group, &[])
            .await?;
        report.chunks_merged += group.len() as u64;
        return Ok(());
    }
    // The footers of segments not seen yet in this pass, then every chunk's byte range,
    // several GETs at a time.
    let mut missing: Vec<&SegmentRef> = Vec::new();
    for chunk in &kept {
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
    let needed: HashMap<String, SegmentFooter> = kept
        .iter()
        .filter_map(|c| {
            let key = &c.segment.key;
            footers.decoded.get(key).map(|f| (key.clone(), f.clone()))
        })
        .collect();
    let fetches: Vec<_> = kept.iter().map(|chunk| fetch_chunk(store, chunk)).collect();
    let ranges: Vec<bytes::Bytes> = stream::iter(fetches)
        .buffered(FETCH_CONCURRENCY)
        .try_collect()
        .await?;
    report.bytes_read += kept.iter().map(|c| c.byte_len).sum::<u64>();
    let first = kept[0].base_offset;
    let last = kept[kept.len() - 1].end_offset() - 1;
    let count: u64 = kept.iter().map(|c| u64::from(c.record_count)).sum();
    let key = lake_key(topic, partition, first, last);
    let rows_per_group = config.rows_per_group.max(1);
    // Decoding and encoding are CPU work: off the async runtime.
    let (encoded, bases) = tokio::task::spawn_blocking(move || {
        // Runs of consecutive offsets, each (first offset, records).
        let mut runs: Vec<(i64, Vec<silt_segment::Record>)> = Vec::new();
        for (chunk, bytes) in kept.iter().zip(ranges) {
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
            match runs.last_mut() {
                Some((run_first, records))
                    if *run_first + records.len() as i64 == chunk.base_offset =>
                {
                    records.extend(got);
                }
                _ => runs.push((chunk.base_offset, got)),
            }
        }
        // The first offset of each row group the encoder cuts: a run's, every
        // `rows_per_group` records.
        let bases: Vec<i64> = runs
            .iter()
            .flat_map(|(run_first, records)| {
                (0..records.len())
                    .step_by(rows_per_group)
                    .map(move |i| run_first + i as i64)
            })
            .collect();
        let runs: Vec<(i64, &[silt_segment::Record])> =
            runs.iter().map(|(f, r)| (*f, r.as_slice())).collect();
        Ok((encode_lake_runs(partition, &runs, rows_per_group)?, bases))
    })
    .await
    .map_err(|e| CompactorError::Invalid(format!("compaction task failed: {e}")))??;
    if bases.len() != encoded.chunks.len() {
        return Err(CompactorError::Invalid(format!(
            "lake file {key}: {} row groups, {} expected",
            encoded.chunks.len(),
            bases.len()
        )));
    }

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
    let new: Vec<ChunkEntry> = encoded
        .chunks
        .iter()
        .zip(bases)
        .map(|(c, base)| ChunkEntry {
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

    fn bases(groups: Vec<Vec<ChunkEntry>>) -> Vec<Vec<i64>> {
        groups
            .iter()
            .map(|g| g.iter().map(|c| c.base_offset).collect())
            .collect()
    }

    #[test]
    fn markers_ride_along_and_gaps_end_runs() {
        let mut chunks: Vec<ChunkEntry> = (0..6).map(|i| entry(i, 10)).collect();
        chunks[2].kind = BatchKind::Transactional;
        chunks[3].kind = BatchKind::Marker;
        assert_eq!(bases(groups(chunks, 1000)), [vec![0, 1, 2, 3, 4, 5]]);
        // An offset the raw entries do not hold (an open transaction's, a lake object's)
        // ends a run.
        let plain: Vec<ChunkEntry> = [0, 1, 4, 5].into_iter().map(|i| entry(i, 10)).collect();
        assert_eq!(bases(groups(plain, 1000)), [vec![0, 1], vec![4, 5]]);
        // Markers count no bytes; a run of markers alone is no group.
        let mut chunks: Vec<ChunkEntry> = (0..5).map(|i| entry(i, 60)).collect();
        chunks[1].kind = BatchKind::Marker;
        chunks[3].kind = BatchKind::Marker;
        chunks[4].kind = BatchKind::Marker;
        assert_eq!(bases(groups(chunks, 100)), [vec![0, 1], vec![2, 3, 4]]);
        let mut markers: Vec<ChunkEntry> = (0..2).map(|i| entry(i, 10)).collect();
        markers.iter_mut().for_each(|m| m.kind = BatchKind::Marker);
        assert!(groups(markers, 100).is_empty());
    }

    #[test]
    fn aborted_chunks_are_those_of_an_aborted_range_of_their_producer() {
        let aborted = [AbortedTransaction {
            producer_id: 7,
            first_offset: 10,
            last_offset: 20,
        }];
        let mut chunk = entry(12, 10);
        chunk.kind = BatchKind::Transactional;
        chunk.producer = Some(silt_metadata::ProducerBatch {
            producer_id: 7,
            epoch: 0,
            base_sequence: 0,
        });
        assert!(is_aborted(&chunk, &aborted));
        chunk.base_offset = 20;
        assert!(!is_aborted(&chunk, &aborted), "the marker's offset ends it");
        chunk.base_offset = 12;
        chunk.producer = chunk.producer.map(|p| silt_metadata::ProducerBatch {
            producer_id: 8,
            ..p
        });
        assert!(!is_aborted(&chunk, &aborted), "another producer's");
        chunk.kind = BatchKind::Plain;
        assert!(!is_aborted(&chunk, &aborted));
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
