//! Harness for end-to-end tests: starts real `silt` processes (built by the workspace) on
//! free ports against a local folder or the S3-compatible server named by
//! `E2E_S3_ENDPOINT`, and talks to them over HTTP like any client would.
//!
//! `scripts/test` builds the binary, starts the S3 server and sets the variables.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

/// Where a node keeps its objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// `<data-dir>/objects`
    Local,
    /// The S3-compatible server at `E2E_S3_ENDPOINT`, a fresh bucket per node.
    S3,
}

/// The benchmark harness, built next to `silt`.
pub fn bench_bin() -> PathBuf {
    silt_bin().with_file_name("silt-bench")
}

pub fn silt_bin() -> PathBuf {
    if let Ok(bin) = std::env::var("E2E_SILT_BIN") {
        return PathBuf::from(bin);
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/debug/silt")
}

/// The S3 endpoint for tests. Its absence is an error, not a skip: `scripts/test` starts one.
pub fn s3_endpoint() -> String {
    std::env::var("E2E_S3_ENDPOINT").unwrap_or_else(|_| {
        panic!(
            "E2E_S3_ENDPOINT is not set: run the tests with scripts/test, which starts an S3 server"
        )
    })
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

static BUCKETS: AtomicU32 = AtomicU32::new(0);

/// A `silt dev` process and what is needed to restart it on the same data.
pub struct Node {
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub kafka_port: u16,
    pub backend: Backend,
    bucket: String,
    extra: Vec<String>,
    child: Option<Child>,
    pub http: reqwest::Client,
}

impl Node {
    pub async fn start(backend: Backend, extra: &[&str]) -> Result<Self> {
        let bucket = format!(
            "silt-e2e-{}-{}",
            std::process::id(),
            BUCKETS.fetch_add(1, Ordering::SeqCst)
        );
        let mut node = Self {
            dir: tempfile::tempdir()?,
            port: free_port(),
            kafka_port: free_port(),
            backend,
            bucket,
            extra: extra.iter().map(|s| s.to_string()).collect(),
            child: None,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()?,
        };
        node.spawn().await?;
        Ok(node)
    }

    /// The flags that give another `silt` command this node's data folder and object
    /// store (and the environment its S3 client needs).
    pub fn store_command(&self, command: &[&str]) -> Command {
        let mut cmd = Command::new(silt_bin());
        cmd.args(command)
            .arg("--data-dir")
            .arg(self.dir.path().join("data"))
            .stdin(Stdio::null());
        if self.backend == Backend::S3 {
            cmd.args(["--s3-endpoint", &s3_endpoint(), "--s3-bucket", &self.bucket])
                .args(["--s3-path-style", "--s3-allow-http"])
                .env("AWS_ACCESS_KEY_ID", "testing")
                .env("AWS_SECRET_ACCESS_KEY", "testing")
                .env("AWS_REGION", "us-east-1");
        }
        cmd
    }

    /// The process id of the running node.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("silt.log")
    }

    /// Starts the process (again) on the same data and waits until it answers.
    pub async fn spawn(&mut self) -> Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())?;
        let mut cmd = Command::new(silt_bin());
        cmd.arg("dev")
            .arg("--data-dir")
            .arg(self.dir.path().join("data"))
            .args(&self.extra)
            // The HTTP address comes from the environment, which also proves SILT_* overrides.
            .env("SILT_HTTP__ADDR", format!("127.0.0.1:{}", self.port))
            .env("SILT_KAFKA__ADDR", format!("127.0.0.1:{}", self.kafka_port))
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        if self.backend == Backend::S3 {
            cmd.args(["--s3-endpoint", &s3_endpoint(), "--s3-bucket", &self.bucket])
                .args(["--s3-path-style", "--s3-allow-http", "--create-bucket"])
                .env("AWS_ACCESS_KEY_ID", "testing")
                .env("AWS_SECRET_ACCESS_KEY", "testing")
                .env("AWS_REGION", "us-east-1");
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {}", silt_bin().display()))?;
        self.child = Some(child);
        let started = Instant::now();
        loop {
            let healthy = self
                .http
                .get(format!("{}/healthz", self.base()))
                .send()
                .await;
            if healthy.is_ok_and(|r| r.status().is_success()) {
                return Ok(());
            }
            if let Some(status) = self
                .child
                .as_mut()
                .map(Child::try_wait)
                .transpose()?
                .flatten()
            {
                bail!("silt exited with {status} during start-up:\n{}", self.log());
            }
            if started.elapsed() > Duration::from_secs(30) {
                bail!("silt did not become healthy in 30s:\n{}", self.log());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// `kill -9`: no chance to flush anything.
    pub fn kill(&mut self) -> Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill()?;
            child.wait()?;
        }
        Ok(())
    }

    /// SIGTERM, then wait for a clean exit.
    pub fn terminate(&mut self) -> Result<std::process::ExitStatus> {
        let mut child = self.child.take().context("not running")?;
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status()?;
        if !status.success() {
            bail!("kill -TERM failed");
        }
        Ok(child.wait()?)
    }

    pub async fn post(&self, path: &str, body: Value) -> Result<(u16, Value)> {
        status_and_json(self.http.post(format!("{}{path}", self.base())).json(&body)).await
    }

    pub async fn get(&self, path: &str) -> Result<(u16, Value)> {
        status_and_json(self.http.get(format!("{}{path}", self.base()))).await
    }

    pub async fn create_topic(&self, name: &str, partitions: i32) -> Result<()> {
        let (s, body) = self
            .post(
                "/v1/topics",
                json!({"name": name, "partitions": partitions}),
            )
            .await?;
        if s != 201 {
            bail!("create topic: {s} {body}");
        }
        Ok(())
    }

    /// Reads a whole partition from offset 0 to the high watermark.
    pub async fn read_partition(&self, topic: &str, partition: i32) -> Result<Vec<Value>> {
        let mut out = Vec::new();
        let mut offset = 0;
        loop {
            let (s, body) = self
                .get(&format!(
                    "/v1/topics/{topic}/partitions/{partition}/records?offset={offset}&limit=10000"
                ))
                .await?;
            if s != 200 {
                bail!("read {topic}/{partition}@{offset}: {s} {body}");
            }
            let records = body["records"].as_array().cloned().unwrap_or_default();
            out.extend(records);
            offset = body["next_offset"].as_i64().context("next_offset")?;
            if offset >= body["high_watermark"].as_i64().context("high_watermark")? {
                return Ok(out);
            }
        }
    }

    /// A counter's value from `/metrics` (summed over label sets matching `labels`).
    pub async fn metric(&self, name: &str, labels: &str) -> Result<f64> {
        scrape(&self.http, &self.base(), name, labels).await
    }
}

/// Sends a request; answers its status and its body as JSON (or as a JSON string when
/// the body is not JSON).
async fn status_and_json(request: reqwest::RequestBuilder) -> Result<(u16, Value)> {
    let r = request.send().await?;
    let status = r.status().as_u16();
    let text = r.text().await?;
    Ok((
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    ))
}

/// Sum of the samples of metric `name` whose labels contain `labels`, in Prometheus text.
pub fn metric_value(text: &str, name: &str, labels: &str) -> f64 {
    text.lines()
        .filter(|l| {
            l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']) && l.contains(labels)
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Scrapes `<base>/metrics` and sums metric `name` over the label sets matching `labels`.
pub async fn scrape(http: &reqwest::Client, base: &str, name: &str, labels: &str) -> Result<f64> {
    let text = http
        .get(format!("{base}/metrics"))
        .send()
        .await?
        .text()
        .await?;
    Ok(metric_value(&text, name, labels))
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.kill();
    }
}
