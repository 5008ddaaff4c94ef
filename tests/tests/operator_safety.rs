//! What an operator can get wrong, refused with a message that says what to do: a second
//! node on a data folder in use, read-only commands on a folder with no metadata; and
//! logs that a log collector can read (no colour codes in files, JSON on request).

use std::process::{Command, Stdio};
use std::time::Duration;

use silt_e2e::{Backend, Node, free_port, silt_bin};

#[tokio::test]
async fn a_second_node_on_a_data_folder_in_use_stops_with_a_clear_message() {
    let node = Node::start(Backend::Local, &[]).await.expect("first node");
    let data = node.dir.path().join("data");
    let mut second = Command::new(silt_bin())
        .arg("dev")
        .arg("--data-dir")
        .arg(&data)
        .env("SILT_HTTP__ADDR", format!("127.0.0.1:{}", free_port()))
        .env("SILT_KAFKA__ADDR", format!("127.0.0.1:{}", free_port()))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("second node runs");
    // It must stop by itself, soon; one that keeps running shares the folder.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while second.try_wait().expect("wait").is_none() {
        if std::time::Instant::now() > deadline {
            let _ = second.kill();
            panic!("a second node started on a data folder in use");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let second = second.wait_with_output().expect("output");
    assert!(!second.status.success(), "the second node must not start");
    let said = String::from_utf8_lossy(&second.stderr).to_string()
        + &String::from_utf8_lossy(&second.stdout);
    assert!(
        said.contains("another silt process is using the data folder")
            && said.contains(&data.display().to_string())
            && said.contains("--data-dir"),
        "{said}"
    );
    // The first node goes on serving.
    let (status, _) = node.get("/healthz").await.expect("health");
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_data_folder_is_free_again_once_its_node_is_gone() {
    let mut node = Node::start(Backend::Local, &[]).await.expect("node");
    node.kill().expect("kill -9");
    // The lock went with the process: the same folder starts again at once.
    node.spawn().await.expect("restarts on its folder");
}

#[test]
fn read_only_commands_create_no_metadata() {
    let cwd = tempfile::tempdir().expect("tempdir");
    for command in [["users", "list"], ["acls", "list"]] {
        let out = Command::new(silt_bin())
            .args(command)
            .current_dir(cwd.path())
            .stdin(Stdio::null())
            .output()
            .expect("runs");
        assert!(!out.status.success(), "{command:?} succeeded on nothing");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("no metadata at") && err.contains("--data-dir"),
            "{command:?}: {err}"
        );
    }
    let left: Vec<_> = std::fs::read_dir(cwd.path())
        .expect("read dir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert!(left.is_empty(), "read-only commands left {left:?}");
}

#[tokio::test]
async fn logs_in_files_have_no_colour_codes_and_json_logs_are_json() {
    let node = Node::start(Backend::Local, &[]).await.expect("node");
    let text = node.log();
    assert!(text.contains("silt is ready"), "{text}");
    assert!(
        !text.contains('\u{1b}'),
        "colour codes in a log file: {text}"
    );
    assert!(
        !text.contains("[recover] finish"),
        "the cache library's chatter: {text}"
    );
    assert!(
        !text.contains("Instrumented(") && text.contains("objects"),
        "internal type names instead of the store's place: {text}"
    );

    let json = Node::start(Backend::Local, &["--log-format", "json"])
        .await
        .expect("node with JSON logs");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let log = json.log();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l["fields"]["message"] == "silt is ready" && l["level"] == "INFO"),
        "{log}"
    );
}

/// Runs `silt dev` with `args` in a fresh data folder until it is ready (`Ok(log)`) or
/// exits (`Err(log)`), at most 60 s; a ready node is stopped.
fn dev_until_ready_or_exit(args: &[&str]) -> Result<String, String> {
    let dir = tempfile::tempdir().expect("tempdir");
    let log_path = dir.path().join("silt.log");
    let log = std::fs::File::create(&log_path).expect("log file");
    let http = free_port();
    let mut child = Command::new(silt_bin())
        .arg("dev")
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(args)
        .env("SILT_HTTP__ADDR", format!("127.0.0.1:{http}"))
        .env("SILT_KAFKA__ADDR", format!("127.0.0.1:{}", free_port()))
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .expect("silt runs");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let text = std::fs::read_to_string(&log_path).unwrap_or_default();
        if child.try_wait().expect("wait").is_some() {
            return Err(std::fs::read_to_string(&log_path).unwrap_or_default());
        }
        if text.contains("silt is ready") {
            let _ = child.kill();
            let _ = child.wait();
            return Ok(text);
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("neither ready nor stopped after 60 s:\n{text}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn bucket(name: &str) -> String {
    format!("silt-{name}-{}-{}", std::process::id(), fastrand::u32(..))
}

#[test]
fn an_s3_endpoint_typed_as_minio_users_type_it_just_works() {
    // No --s3-allow-http, no --s3-path-style: an http:// endpoint on an IP address says both.
    let endpoint = silt_e2e::s3_endpoint();
    let bucket = bucket("typed");
    let log = dev_until_ready_or_exit(&[
        "--s3-endpoint",
        &endpoint,
        "--s3-bucket",
        &bucket,
        "--create-bucket",
    ])
    .unwrap_or_else(|log| panic!("the node stopped:\n{log}"));
    assert!(
        log.contains(&format!("s3://{bucket} at {endpoint}")),
        "{log}"
    );
}

#[test]
fn a_store_that_does_not_work_stops_the_node_before_ready_saying_what_to_change() {
    let endpoint = silt_e2e::s3_endpoint();
    // A bucket that does not exist, and no --create-bucket.
    let log = dev_until_ready_or_exit(&[
        "--s3-endpoint",
        &endpoint,
        "--s3-bucket",
        &bucket("missing"),
    ])
    .expect_err("a node on a missing bucket must not be ready");
    assert!(
        log.contains("does not work") && log.contains("--create-bucket"),
        "{log}"
    );
    // An endpoint where nothing listens.
    let nowhere = format!("http://127.0.0.1:{}", free_port());
    let log =
        dev_until_ready_or_exit(&["--s3-endpoint", &nowhere, "--s3-bucket", &bucket("nowhere")])
            .expect_err("a node on a dead endpoint must not be ready");
    assert!(
        log.contains(&nowhere) && log.contains("storage.s3.endpoint"),
        "{log}"
    );
}

#[tokio::test]
async fn readyz_reports_a_store_that_stopped_working() {
    let node = Node::start(Backend::Local, &[]).await.expect("node");
    let (status, body) = node.get("/readyz").await.expect("readyz");
    assert_eq!(status, 200, "{body}");
    // The local object folder becomes unwritable.
    let objects = node.dir.path().join("data").join("objects");
    let moved = node.dir.path().join("objects-gone");
    std::fs::rename(&objects, &moved).expect("move the folder away");
    std::fs::write(&objects, b"not a folder").expect("a file in its place");
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    let (status, body) = node.get("/readyz").await.expect("readyz");
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["code"], "store_unavailable", "{body}");
    // Liveness is not readiness: the process still answers /healthz.
    let (status, _) = node.get("/healthz").await.expect("healthz");
    assert_eq!(status, 200);
}

#[test]
fn a_cluster_node_refuses_a_local_folder_the_others_cannot_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new(silt_bin())
        .args(["serve", "--roles", "ingest,reader", "--metadata-url"])
        .arg(format!("http://127.0.0.1:{}", free_port()))
        .arg("--data-dir")
        .arg(dir.path())
        .stdin(Stdio::null())
        .output()
        .expect("runs");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("other nodes of the cluster cannot read")
            && err.contains("--s3-bucket")
            && err.contains("local_shared"),
        "{err}"
    );
}

#[tokio::test]
async fn cli_commands_find_the_node_from_its_configuration_and_encode_names() {
    let node = Node::start(Backend::Local, &[]).await.expect("node");
    let run = |args: &[&str]| {
        Command::new(silt_bin())
            .args(args)
            // The same variable the node was started with: no --url needed.
            .env("SILT_HTTP__ADDR", format!("127.0.0.1:{}", node.port))
            .stdin(Stdio::null())
            .output()
            .expect("runs")
    };
    let listed = run(&["groups", "list"]);
    assert!(
        listed.status.success(),
        "{}",
        String::from_utf8_lossy(&listed.stderr)
    );
    // A group id with a space and a slash reaches the group endpoint, not another route.
    let described = run(&["groups", "describe", "a b/c"]);
    let err = String::from_utf8_lossy(&described.stderr);
    assert!(!described.status.success());
    assert!(
        err.contains("404") && !err.contains("no such endpoint"),
        "{err}"
    );
    // compact says what it did in words, or as JSON on request.
    let summary = run(&["compact", "--min-age", "0s"]);
    let text = String::from_utf8_lossy(&summary.stdout);
    assert!(
        summary.status.success(),
        "{}",
        String::from_utf8_lossy(&summary.stderr)
    );
    assert!(
        text.contains("merged") && text.contains("garbage collection"),
        "{text}"
    );
    let json = run(&["compact", "--min-age", "0s", "--json"]);
    let report: serde_json::Value =
        serde_json::from_slice(&json.stdout).expect("the report is JSON");
    assert!(report["duration_ms"].is_u64(), "{report}");
}

#[tokio::test]
async fn topics_are_listed_described_created_altered_and_deleted_from_the_command_line() {
    let node = Node::start(Backend::Local, &[]).await.expect("node");
    let url = format!("http://127.0.0.1:{}", node.port);
    let run = |args: &[&str]| {
        let out = Command::new(silt_bin())
            .args(args)
            .args(["--url", &url])
            .stdin(Stdio::null())
            .output()
            .expect("runs");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, out, err) = run(&[
        "topics",
        "create",
        "orders",
        "--partitions",
        "3",
        "--add-config",
        "retention.ms=3600000",
    ]);
    assert!(ok, "{err}");
    assert!(
        out.contains("partitions 3") && out.contains("retention.ms=3600000"),
        "{out}"
    );
    let (ok, out, err) = run(&["topics", "list"]);
    assert!(ok && out.contains("orders"), "{out}{err}");
    let (ok, out, err) = run(&[
        "topics",
        "alter",
        "orders",
        "--partitions",
        "5",
        "--add-config",
        "max.message.bytes=2048",
        "--delete-config",
        "retention.ms",
    ]);
    assert!(ok, "{err}");
    assert!(
        out.contains("partitions 5")
            && out.contains("max.message.bytes=2048")
            && !out.contains("retention.ms"),
        "{out}"
    );
    let (ok, out, err) = run(&["topics", "describe", "orders"]);
    assert!(ok, "{err}");
    assert_eq!(
        out.lines()
            .filter(|l| l.trim_start().starts_with(char::is_numeric))
            .count(),
        5,
        "one line per partition: {out}"
    );
    // Mistakes get Kafka's words and change nothing.
    let (ok, _, err) = run(&[
        "topics",
        "alter",
        "orders",
        "--add-config",
        "retention.mss=1",
    ]);
    assert!(
        !ok && err.contains("Unknown topic config name: retention.mss"),
        "{err}"
    );
    let (ok, _, err) = run(&["topics", "alter", "orders", "--partitions", "2"]);
    assert!(!ok && err.contains("never shrinks"), "{err}");
    let (ok, _, err) = run(&["topics", "create", "bad name"]);
    assert!(!ok && err.contains("invalid topic name"), "{err}");
    let (ok, out, err) = run(&["topics", "delete", "orders"]);
    assert!(ok && out.contains("deleted"), "{err}");
    let (ok, _, err) = run(&["topics", "describe", "orders"]);
    assert!(!ok && err.contains("404"), "{err}");
}

#[tokio::test]
async fn every_metric_on_metrics_has_help() {
    let node = Node::start(Backend::Local, &[]).await.expect("node");
    node.create_topic("helped", 1).await.expect("topic");
    let (status, _) = node
        .post(
            "/v1/topics/helped/records",
            serde_json::json!({"records": [{"value": "x"}]}),
        )
        .await
        .expect("produce");
    assert_eq!(status, 200);
    let text = node
        .http
        .get(format!("{}/metrics", node.base()))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    let typed: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| name.starts_with("silt_"))
        .collect();
    assert!(typed.len() >= 10, "{text}");
    for name in typed {
        assert!(
            text.contains(&format!("# HELP {name} ")),
            "{name} has no HELP line"
        );
    }
}
