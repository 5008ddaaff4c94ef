use std::path::PathBuf;

/// Reader settings: cache sizes and where the disk cache lives.
#[derive(Debug, Clone)]
pub struct ReaderConfig {
    /// Bytes of chunk and footer data kept in memory.
    pub memory_cache_bytes: usize,
    /// Bytes of chunk data kept on local disk; 0 disables the disk tier.
    pub disk_cache_bytes: usize,
    /// Folder for the disk tier.
    pub cache_dir: PathBuf,
    /// Index entries looked up per fetch round trip to the metadata service.
    pub chunks_per_lookup: u32,
}

impl Default for ReaderConfig {
    fn default() -> Self {
        Self {
            memory_cache_bytes: 256 << 20,
            disk_cache_bytes: 1 << 30,
            cache_dir: PathBuf::from("silt-data/cache"),
            chunks_per_lookup: 16,
        }
    }
}
