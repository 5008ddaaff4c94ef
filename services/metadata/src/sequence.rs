//! The idempotent-producer rules, shared by every store: given what the store remembers
//! of a producer in a partition, is a batch the next one, a retry, or refused?

use crate::error::MetadataError;
use crate::model::{BatchKind, ChunkCommit, ChunkEntry, ProducerBatch};

/// Batches of one producer kept per partition for duplicate detection, as in Kafka.
pub(crate) const PRODUCER_BATCHES_KEPT: i64 = 5;

/// Sequence numbers wrap from `i32::MAX` to 0.
pub(crate) fn seq_add(seq: i32, n: i64) -> i32 {
    ((i64::from(seq) + n).rem_euclid(i64::from(i32::MAX) + 1)) as i32
}

/// The last sequence number of a batch.
pub(crate) fn last_sequence(chunk: &ChunkCommit, producer: &ProducerBatch) -> i32 {
    seq_add(producer.base_sequence, i64::from(chunk.record_count) - 1)
}

/// A batch the store remembers: first and last sequence, and where it was committed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RememberedBatch {
    pub(crate) first_seq: i32,
    pub(crate) last_seq: i32,
    pub(crate) base_offset: i64,
}

pub(crate) enum SequenceCheck {
    /// The batch is the next one expected: commit it.
    Next,
    /// Already committed at this base offset.
    Duplicate(i64),
    Refused(MetadataError),
}

/// A retried commit of a segment that was committed without this chunk.
pub(crate) fn not_in_segment(chunk: &ChunkCommit) -> MetadataError {
    MetadataError::InvalidRequest {
        reason: format!(
            "segment was already committed without its chunk for {}/{}",
            chunk.topic, chunk.partition
        ),
    }
}

/// Judges a batch. `current_epoch` is the producer's epoch (None: unknown producer);
/// `recent` the remembered batches of this producer and epoch in this partition, oldest
/// first.
///
/// An idempotent producer may bump its own epoch (librdkafka and the Java client do, after
/// a batch whose fate they cannot know, KIP-360): a batch of a newer epoch is accepted if
/// it starts that epoch's sequence at 0, and committing it makes the new epoch current, so
/// the producer's older epoch is fenced from then on. Kafka brokers do the same.
pub(crate) fn judge(
    chunk: &ChunkCommit,
    producer: &ProducerBatch,
    current_epoch: Option<i64>,
    recent: &[RememberedBatch],
) -> SequenceCheck {
    let Some(current) = current_epoch else {
        return SequenceCheck::Refused(MetadataError::UnknownProducerId {
            producer_id: producer.producer_id,
        });
    };
    let epoch = i64::from(producer.epoch);
    if epoch < current {
        return SequenceCheck::Refused(MetadataError::ProducerFenced {
            producer_id: producer.producer_id,
            epoch: producer.epoch,
            current: current as i16,
        });
    }
    if epoch > current {
        if producer.base_sequence != 0 {
            return SequenceCheck::Refused(MetadataError::OutOfOrderSequence {
                producer_id: producer.producer_id,
                topic: chunk.topic.clone(),
                partition: chunk.partition,
                expected: 0,
                got: producer.base_sequence,
            });
        }
        return SequenceCheck::Next;
    }
    let last = last_sequence(chunk, producer);
    if let Some(b) = recent
        .iter()
        .find(|b| b.first_seq == producer.base_sequence && b.last_seq == last)
    {
        return SequenceCheck::Duplicate(b.base_offset);
    }
    let expected = recent.last().map_or(0, |b| seq_add(b.last_seq, 1));
    if producer.base_sequence != expected {
        return SequenceCheck::Refused(MetadataError::OutOfOrderSequence {
            producer_id: producer.producer_id,
            topic: chunk.topic.clone(),
            partition: chunk.partition,
            expected,
            got: producer.base_sequence,
        });
    }
    SequenceCheck::Next
}

/// Checks the shape of a compaction swap: contiguous replaced entries, the new ones in one
/// object, in order, inside the replaced offsets and clear of its markers (new may be
/// empty when every replaced record was aborted). Returns the offset range.
pub(crate) fn check_swap(
    replaced: &[ChunkEntry],
    new: &[ChunkEntry],
) -> Result<(i64, i64), MetadataError> {
    let invalid = |reason: &str| MetadataError::InvalidRequest {
        reason: format!("compaction swap: {reason}"),
    };
    let (Some(first), Some(last)) = (replaced.first(), replaced.last()) else {
        return Err(invalid("nothing to replace"));
    };
    let (start, end) = (first.base_offset, last.end_offset());
    // The new entries lie in one object, in order, within the replaced offsets and off
    // the markers, which stay. Offsets between them held aborted records: gaps, as in
    // a compacted Kafka log.
    let markers: Vec<&ChunkEntry> = replaced
        .iter()
        .filter(|c| c.kind == BatchKind::Marker)
        .collect();
    let mut next = start;
    for entry in new {
        if entry.segment != new[0].segment {
            return Err(invalid("new entries span several objects"));
        }
        if entry.base_offset < next || entry.record_count == 0 {
            return Err(invalid("new entries overlap or are out of order"));
        }
        if markers
            .iter()
            .any(|m| m.base_offset < entry.end_offset() && entry.base_offset < m.end_offset())
        {
            return Err(invalid("new entries overlap a transaction marker"));
        }
        next = entry.end_offset();
    }
    if next > end {
        return Err(invalid("new entries go past the replaced offsets"));
    }
    if new.is_empty() && markers.len() == replaced.len() {
        return Err(invalid("nothing but markers to replace"));
    }
    let mut expect = start;
    for entry in replaced {
        if entry.base_offset != expect {
            return Err(invalid("replaced entries are not contiguous"));
        }
        expect = entry.end_offset();
    }
    Ok((start, end))
}

/// Whether the entries now in the index are exactly those the compactor read.
pub(crate) fn same_entries(current: &[(i64, i64, String)], replaced: &[ChunkEntry]) -> bool {
    current.len() == replaced.len()
        && current.iter().zip(replaced).all(|((base, count, key), r)| {
            *base == r.base_offset && *count == i64::from(r.record_count) && *key == r.segment.key
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequences_wrap_at_i32_max() {
        assert_eq!(seq_add(i32::MAX, 1), 0);
        assert_eq!(seq_add(i32::MAX - 1, 3), 1);
        assert_eq!(seq_add(5, 0), 5);
    }
}
