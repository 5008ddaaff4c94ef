//! `silt backup` and `silt restore`: the embedded (SQLite) metadata store copied while its
//! node runs, and put back into a data folder after proving that the object store still
//! holds every object it refers to.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use object_store::ObjectStoreExt;
use silt_metadata::{CatalogStore, LogStore, SqliteStore};

use crate::config::{Config, MetadataStoreKind};

/// The SQLite file the configuration names, or what to do instead.
fn sqlite_path(config: &Config, verb: &str) -> anyhow::Result<PathBuf> {
    if !config.metadata.urls.is_empty() {
        bail!(
            "this configuration reaches a metadata service ({}): {verb} the store of the \
             node that runs the metadata role (for PostgreSQL, pg_dump and pg_restore)",
            config.metadata.urls.join(", ")
        );
    }
    match config.metadata_store()? {
        MetadataStoreKind::Sqlite(path) => Ok(path),
        MetadataStoreKind::Postgres(_) => bail!(
            "the metadata store is PostgreSQL: {verb} it with PostgreSQL's tools, e.g. \
             `pg_dump --format=custom --file=silt.dump URL` and `pg_restore --clean \
             --dbname=URL silt.dump` (docs/operations.md, Backup and restore)"
        ),
    }
}

pub(crate) async fn backup(config: &Config, to: &Path) -> anyhow::Result<()> {
    let db = sqlite_path(config, "back up")?;
    SqliteStore::backup_sqlite(&db, to)
        .await
        .with_context(|| format!("backing up {} to {}", db.display(), to.display()))?;
    let bytes = std::fs::metadata(to).map(|m| m.len()).unwrap_or(0);
    println!(
        "backed up the metadata at {} to {} ({bytes} bytes)",
        db.display(),
        to.display()
    );
    Ok(())
}

/// Every object the metadata's index refers to (raw segments and lake files).
async fn referenced_objects(store: &SqliteStore) -> anyhow::Result<BTreeSet<String>> {
    let mut keys = BTreeSet::new();
    for topic in store.topics().await? {
        for p in store.partition_offsets(&topic.name).await? {
            let mut offset = p.log_start_offset;
            while offset < p.high_watermark {
                let chunks = store
                    .chunks_from(&topic.name, p.partition, offset, 1000)
                    .await?;
                let Some(last) = chunks.last() else { break };
                let next = last.end_offset();
                keys.extend(chunks.into_iter().map(|c| c.segment.key));
                if next <= offset {
                    break;
                }
                offset = next;
            }
        }
    }
    Ok(keys)
}

pub(crate) async fn restore(config: &Config, from: &Path, replace: bool) -> anyhow::Result<()> {
    let db = sqlite_path(config, "restore")?;
    if !from.is_file() {
        bail!("{} is not a backup file", from.display());
    }
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating {}", config.data_dir.display()))?;
    // No node may run on the folder meanwhile.
    let _lock = crate::node::lock_data_dir(&config.data_dir)?;
    if db.exists() && !replace {
        bail!(
            "{} exists: pass --replace to put the backup in its place (the current file is \
             kept as {}.before-restore)",
            db.display(),
            db.display()
        );
    }
    let staged = db.with_extension("db.restoring");
    let _ = std::fs::remove_file(&staged);
    std::fs::copy(from, &staged)
        .with_context(|| format!("copying {} to {}", from.display(), staged.display()))?;
    let checked = async {
        // Opening runs the migrations of this build: a backup from an older one is upgraded,
        // one from a newer one is refused.
        let store = SqliteStore::open(&staged)
            .await
            .with_context(|| format!("{} is not a usable metadata backup", from.display()))?;
        let keys = referenced_objects(&store).await?;
        store.close().await;
        let settings = crate::node::store_settings(config);
        let objects = silt_storage::build_store(&settings).await?;
        let mut missing = Vec::new();
        for key in &keys {
            match objects
                .head(&object_store::path::Path::from(key.as_str()))
                .await
            {
                Ok(_) => {}
                Err(object_store::Error::NotFound { .. }) => missing.push(key.clone()),
                Err(e) => return Err(e).context("checking the object store"),
            }
        }
        if !missing.is_empty() {
            bail!(
                "the object store lacks {} of the {} objects the backup refers to (for example \
                 {}): restore the bucket to the time of the backup (versioning), or use a more \
                 recent backup. Nothing was changed.",
                missing.len(),
                keys.len(),
                missing
                    .iter()
                    .take(3)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        anyhow::Ok(keys.len())
    }
    .await;
    let objects = match checked {
        Ok(n) => n,
        Err(e) => {
            let _ = std::fs::remove_file(&staged);
            return Err(e);
        }
    };
    if db.exists() {
        let kept = PathBuf::from(format!("{}.before-restore", db.display()));
        std::fs::rename(&db, &kept)
            .with_context(|| format!("keeping {} as {}", db.display(), kept.display()))?;
    }
    // The old file's write-ahead log belongs to it, not to the restored file; the staged
    // file's own (if its checkpoint left one) moves with it.
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
    std::fs::rename(&staged, &db)
        .with_context(|| format!("moving the restored metadata to {}", db.display()))?;
    let staged_wal = PathBuf::from(format!("{}-wal", staged.display()));
    if staged_wal.exists() {
        std::fs::rename(&staged_wal, format!("{}-wal", db.display()))?;
    }
    let _ = std::fs::remove_file(format!("{}-shm", staged.display()));
    println!(
        "restored {} into {}: every one of the {objects} objects it refers to is in the object store",
        from.display(),
        db.display()
    );
    Ok(())
}
