//! The backup and restore procedure of docs/operations.md, as an operator runs it: a
//! metadata backup taken while the node serves, the machine lost, the backup restored
//! into a new data folder over the same bucket, and a node that serves the same records
//! and consumer-group offsets.

use std::process::Command;

use serde_json::json;
use silt_e2e::{Backend, Node, silt_bin};

fn run(mut cmd: Command) -> (bool, String) {
    let out = cmd.output().expect("runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

async fn produce(node: &Node, topic: &str, from: usize, count: usize) {
    let records: Vec<_> = (from..from + count)
        .map(|i| json!({"key": format!("k{i}"), "value": format!("v{i}")}))
        .collect();
    let (status, body) = node
        .post(
            &format!("/v1/topics/{topic}/records"),
            json!({ "records": records }),
        )
        .await
        .expect("produce");
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn a_backup_restored_over_the_same_bucket_serves_the_same_records() {
    let mut node = Node::start(Backend::S3, &[]).await.expect("node");
    node.create_topic("orders", 3).await.expect("topic");
    node.create_topic("clicks", 1).await.expect("topic");
    produce(&node, "orders", 0, 300).await;
    produce(&node, "clicks", 0, 50).await;
    // Some of it merged into the lake first: the backup refers to both kinds of object.
    let (status, _) = node
        .post("/v1/admin/compact?min_age=0s", json!({}))
        .await
        .expect("compact");
    assert_eq!(status, 200);
    produce(&node, "orders", 300, 100).await;
    let committed = node
        .http
        .put(format!("{}/v1/groups/billing/offsets", node.base()))
        .json(&json!({"offsets": [{"topic": "orders", "partition": 1, "offset": 7}]}))
        .send()
        .await
        .expect("commit");
    assert_eq!(committed.status().as_u16(), 204);
    let mut before = Vec::new();
    for (topic, partitions) in [("orders", 3), ("clicks", 1)] {
        for p in 0..partitions {
            before.push(node.read_partition(topic, p).await.expect("read"));
        }
    }

    // The backup is taken while the node runs.
    let backups = tempfile::tempdir().expect("tempdir");
    let file = backups.path().join("metadata-backup.db");
    let mut backup = Command::new(silt_bin());
    backup
        .args(["backup", "--to"])
        .arg(&file)
        .arg("--data-dir")
        .arg(node.dir.path().join("data"));
    let (ok, text) = run(backup);
    assert!(ok && text.contains("backed up"), "{text}");
    // A second backup to the same file is refused rather than overwriting it.
    let mut again = Command::new(silt_bin());
    again
        .args(["backup", "--to"])
        .arg(&file)
        .arg("--data-dir")
        .arg(node.dir.path().join("data"));
    let (ok, text) = run(again);
    assert!(!ok && text.contains("exists"), "{text}");

    // Restoring under a running node is refused.
    let from = format!("--from={}", file.display());
    let restore = node.store_command(&["restore", "--replace", &from]);
    let (ok, text) = run(restore);
    assert!(
        !ok && text.contains("another silt process is using"),
        "{text}"
    );

    // The machine is lost: its data folder (metadata, cache) is gone; the bucket is not.
    node.terminate().expect("stop");
    std::fs::remove_dir_all(node.dir.path().join("data")).expect("lose the data folder");
    let from = format!("--from={}", file.display());
    let restore = node.store_command(&["restore", &from]);
    let (ok, text) = run(restore);
    assert!(ok && text.contains("restored"), "{text}");
    node.spawn().await.expect("the restored node starts");

    let mut after = Vec::new();
    for (topic, partitions) in [("orders", 3), ("clicks", 1)] {
        for p in 0..partitions {
            after.push(node.read_partition(topic, p).await.expect("read"));
        }
    }
    assert_eq!(before, after, "the same records at the same offsets");
    let (status, offsets) = node
        .get("/v1/groups/billing/offsets")
        .await
        .expect("offsets");
    assert_eq!(status, 200);
    assert_eq!(offsets["offsets"][0]["offset"], 7, "{offsets}");
    // And it takes new records after them.
    produce(&node, "clicks", 50, 1).await;
    let clicks = node.read_partition("clicks", 0).await.expect("read");
    assert_eq!(clicks.len(), 51);
    assert_eq!(clicks[50]["value"], "v50");
}

#[tokio::test]
async fn a_backup_whose_objects_are_gone_is_refused_and_nothing_changes() {
    let mut node = Node::start(Backend::Local, &[]).await.expect("node");
    node.create_topic("t", 1).await.expect("topic");
    produce(&node, "t", 0, 10).await;
    let backups = tempfile::tempdir().expect("tempdir");
    let file = backups.path().join("b.db");
    let mut backup = Command::new(silt_bin());
    backup
        .args(["backup", "--to"])
        .arg(&file)
        .arg("--data-dir")
        .arg(node.dir.path().join("data"));
    let (ok, text) = run(backup);
    assert!(ok, "{text}");
    node.terminate().expect("stop");
    // The segment the backup refers to is deleted from the store.
    let objects = node.dir.path().join("data/objects");
    let mut removed = 0;
    for entry in walk(&objects) {
        if entry.extension().is_some_and(|e| e == "parquet") {
            std::fs::remove_file(&entry).expect("remove");
            removed += 1;
        }
    }
    assert!(removed > 0, "no segment found under {}", objects.display());
    let metadata = node.dir.path().join("data/metadata.db");
    let current = std::fs::read(&metadata).expect("current metadata");
    let from = format!("--from={}", file.display());
    let restore = node.store_command(&["restore", "--replace", &from]);
    let (ok, text) = run(restore);
    assert!(
        !ok && text.contains("lacks 1 of the 1 objects") && text.contains("Nothing was changed"),
        "{text}"
    );
    assert_eq!(std::fs::read(&metadata).expect("metadata"), current);
    // Without --replace an existing metadata file is never overwritten.
    let from = format!("--from={}", file.display());
    let restore = node.store_command(&["restore", &from]);
    let (ok, text) = run(restore);
    assert!(!ok && text.contains("pass --replace"), "{text}");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}
