use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Reader settings (the `[cache]` settings): cache sizes and where the disk cache lives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReaderConfig {
    /// Bytes of chunk and footer data kept in memory.
    #[serde(rename = "memory_bytes")]
    pub memory_cache_bytes: usize,
    /// Bytes of chunk data kept on local disk; 0 disables the disk tier.
    #[serde(rename = "disk_bytes")]
    pub disk_cache_bytes: usize,
    /// Folder for the disk tier (the binary's default: `<data_dir>/cache`); without one
    /// the cache stays in memory.
    #[serde(rename = "dir", skip_serializing_if = "Option::is_none")]
    pub cache_dir: Option<PathBuf>,
    /// Index entries looked up per fetch round trip to the metadata service.
    #[serde(skip)]
    pub chunks_per_lookup: u32,
}

impl Default for ReaderConfig {
    fn default() -> Self {
        Self {
            memory_cache_bytes: 256 << 20,
            disk_cache_bytes: 1 << 30,
            cache_dir: None,
            chunks_per_lookup: 16,
        }
    }
}
