use std::time::Duration;

use serde::{Deserialize, Serialize};
use silt_segment::SegmentCompression;

/// How ingest batches records into segments (the `[ingest]` settings).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IngestConfig {
    /// How long the first record of a segment waits for company before the segment is written.
    #[serde(with = "humantime_serde")]
    pub linger: Duration,
    /// A segment is written as soon as it holds this many bytes of records.
    pub max_segment_bytes: usize,
    /// Most bytes of records waiting in ingest (buffered or being written); appends past
    /// this wait for earlier segments to be acknowledged.
    pub max_buffered_bytes: usize,
    /// Most segments being encoded and uploaded at once.
    pub max_inflight_segments: usize,
    /// Codec of raw segment pages: lz4, zstd or none (lake files always use zstd).
    pub compression: SegmentCompression,
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            linger: Duration::from_millis(20),
            max_segment_bytes: 8 << 20,
            max_buffered_bytes: 64 << 20,
            max_inflight_segments: 4,
            compression: SegmentCompression::default(),
        }
    }
}
