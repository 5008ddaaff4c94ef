use chrono::{DateTime, Utc};
use uuid::Uuid;

/// Folder (under the configured prefix) holding raw ingest segments.
pub const SEGMENTS_DIR: &str = "segments";

/// The object key of a raw segment written at `at`, relative to the store's prefix:
/// `segments/<yyyy>/<mm>/<dd>/<hh>/<uuid-v7>.parquet`. The UUID v7 makes the name unique
/// and sortable by creation time.
pub fn segment_key(id: Uuid, at: DateTime<Utc>) -> String {
    format!("{SEGMENTS_DIR}/{}/{id}.parquet", at.format("%Y/%m/%d/%H"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn key_is_partitioned_by_hour() {
        let at = Utc
            .with_ymd_and_hms(2026, 3, 7, 9, 41, 0)
            .single()
            .expect("valid time");
        let id = Uuid::nil();
        assert_eq!(
            segment_key(id, at),
            "segments/2026/03/07/09/00000000-0000-0000-0000-000000000000.parquet"
        );
    }
}
