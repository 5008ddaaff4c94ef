//! Segment objects damaged behind Silt's back: reads of the affected range fail with an
//! error naming the object (and a metric), while every other partition keeps serving.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use silt_e2e::{Backend, Node};

fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("read dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "parquet") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

#[tokio::test]
async fn damaged_objects_fail_their_own_range_and_nothing_else() {
    let mut node = Node::start(Backend::Local, &[]).await.expect("silt starts");
    node.create_topic("d", 3).await.expect("topic");
    // One request per partition, one after the other: one segment each, in order.
    for p in 0..3 {
        let records: Vec<Value> = (0..100)
            .map(|i| json!({"value": format!("p{p}-{i}"), "partition": p}))
            .collect();
        let (s, body) = node
            .post("/v1/topics/d/records", json!({ "records": records }))
            .await
            .expect("produce");
        assert_eq!(s, 200, "{body}");
    }
    node.terminate().expect("stops");
    let objects = node.dir.path().join("data/objects/segments");
    let files = segment_files(&objects);
    assert_eq!(files.len(), 3, "{files:?}");
    // Partition 0's object is overwritten with garbage, partition 1's deleted.
    let len = std::fs::metadata(&files[0]).expect("stat").len() as usize;
    std::fs::write(&files[0], vec![0x5a; len]).expect("overwrite");
    std::fs::remove_file(&files[1]).expect("delete");
    std::fs::remove_dir_all(node.dir.path().join("data/cache")).expect("cache removed");
    node.spawn().await.expect("restart");

    for (partition, code, file) in [
        (0, "corrupt_object", &files[0]),
        (1, "object_missing", &files[1]),
    ] {
        let (s, body) = node
            .get(&format!(
                "/v1/topics/d/partitions/{partition}/records?offset=0"
            ))
            .await
            .expect("read");
        assert!((500..600).contains(&s), "partition {partition}: {s} {body}");
        assert_eq!(body["code"], code, "{body}");
        let name = file
            .file_name()
            .expect("name")
            .to_string_lossy()
            .to_string();
        assert!(
            body["message"].as_str().expect("message").contains(&name),
            "the error names the object {name}: {body}"
        );
    }
    let intact = node
        .read_partition("d", 2)
        .await
        .expect("partition 2 reads");
    assert_eq!(intact.len(), 100);
    assert_eq!(intact[99]["value"], "p2-99");
    // The node still serves writes too.
    let (s, _) = node
        .post(
            "/v1/topics/d/records",
            json!({"records": [{"value": "after", "partition": 2}]}),
        )
        .await
        .expect("produce");
    assert_eq!(s, 200);
    for kind in ["corrupt", "missing"] {
        let n = node
            .metric(
                "silt_reader_object_errors_total",
                &format!("kind=\"{kind}\""),
            )
            .await
            .expect("metrics");
        assert!(n >= 1.0, "{kind}: {n}");
    }
}

#[tokio::test]
async fn records_before_a_damaged_object_are_still_read_and_errors_name_no_server_path() {
    let mut node = Node::start(Backend::Local, &[]).await.expect("silt starts");
    node.create_topic("before", 1).await.expect("topic");
    // Three requests, three objects: offsets 0-99, 100-199, 200-299.
    for round in 0..3 {
        let records: Vec<Value> = (0..100)
            .map(|i| json!({"value": format!("r{round}-{i}")}))
            .collect();
        let (s, body) = node
            .post("/v1/topics/before/records", json!({ "records": records }))
            .await
            .expect("produce");
        assert_eq!(s, 200, "{body}");
    }
    node.terminate().expect("stops");
    let mut files = segment_files(&node.dir.path().join("data/objects/segments"));
    files.sort(); // names grow with time
    assert_eq!(files.len(), 3, "{files:?}");
    std::fs::remove_file(&files[1]).expect("delete the middle object");
    std::fs::remove_dir_all(node.dir.path().join("data/cache")).expect("cache removed");
    node.spawn().await.expect("restart");

    // The intact records before the damage come back; the damaged range is the error.
    let (s, body) = node
        .get("/v1/topics/before/partitions/0/records?offset=0&limit=1000")
        .await
        .expect("read");
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["records"].as_array().expect("records").len(), 100);
    assert_eq!(body["next_offset"], 100);
    let (s, body) = node
        .get("/v1/topics/before/partitions/0/records?offset=100")
        .await
        .expect("read");
    assert_eq!(
        (s, body["code"].as_str()),
        (500, Some("object_missing")),
        "{body}"
    );
    let message = body["message"].as_str().expect("message");
    let root = node.dir.path().to_string_lossy().to_string();
    assert!(!message.contains(&root), "no server path in {message}");
    let name = files[1]
        .file_name()
        .expect("name")
        .to_string_lossy()
        .to_string();
    assert!(message.contains(&name), "the object is named: {message}");
    // After the damage, reading goes on.
    let (s, body) = node
        .get("/v1/topics/before/partitions/0/records?offset=200&limit=1000")
        .await
        .expect("read");
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["records"][0]["value"], "r2-0");
}
