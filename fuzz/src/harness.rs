//! One node's services, built once per process and shared by every input of a target.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use object_store::memory::InMemory;
use silt_groups::{Coordinator, GroupConfig, GroupService};
use silt_ingest::{Ingest, IngestConfig, TopicDefaults};
use silt_metadata::{MetadataStore, SqliteStore, TopicConfig};
use silt_reader::{Reader, ReaderConfig};
use tokio::runtime::Runtime;

/// Topic created up front, so produced and fetched inputs reach the data path.
pub(crate) const TOPIC: &str = "fuzz";
pub(crate) const PARTITIONS: i32 = 3;

pub(crate) struct Node {
    pub(crate) runtime: Runtime,
    pub(crate) metadata: Arc<dyn MetadataStore>,
    pub(crate) ingest: Ingest,
    pub(crate) reader: Reader,
    pub(crate) groups: Arc<dyn GroupService>,
    _dir: tempfile::TempDir,
}

pub(crate) fn node() -> &'static Node {
    static NODE: OnceLock<Node> = OnceLock::new();
    NODE.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().to_path_buf();
        let (metadata, ingest, reader, groups) = runtime.block_on(async move {
            let metadata: Arc<dyn MetadataStore> = Arc::new(
                SqliteStore::open(&path.join("metadata.db"))
                    .await
                    .expect("metadata store"),
            );
            metadata
                .create_topic(TOPIC, PARTITIONS, TopicConfig::default())
                .await
                .expect("topic");
            let store = Arc::new(InMemory::new());
            let reader = Reader::build(
                ReaderConfig {
                    memory_cache_bytes: 16 << 20,
                    disk_cache_bytes: 0,
                    cache_dir: Some(path.join("cache")),
                    chunks_per_lookup: 8,
                },
                store.clone(),
                metadata.clone(),
            )
            .await
            .expect("reader");
            let ingest = Ingest::start(
                IngestConfig {
                    linger: Duration::from_millis(1),
                    ..IngestConfig::default()
                },
                store,
                metadata.clone(),
                None,
            )
            .with_rules(TopicDefaults {
                max_message_bytes: 64 << 10,
                default_partitions: 2,
                ..TopicDefaults::default()
            });
            let groups: Arc<dyn GroupService> = Arc::new(Coordinator::start(
                GroupConfig {
                    // Joins answer once the delay has passed: keep inputs quick.
                    initial_rebalance_delay: Duration::ZERO,
                    ..GroupConfig::default()
                },
                metadata.clone(),
                metadata.clone(),
            ));
            (metadata, ingest, reader, groups)
        });
        Node {
            runtime,
            metadata,
            ingest,
            reader,
            groups,
            _dir: dir,
        }
    })
}

/// How long one input may take. Some valid requests wait on purpose (a fetch's long poll,
/// a join waiting for the group's first rebalance): cutting them short is no failure.
pub(crate) const PATIENCE: Duration = Duration::from_millis(200);
