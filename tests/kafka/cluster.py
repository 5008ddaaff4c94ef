"""A Silt cluster of real processes for the multi-node tests: metadata processes on a
fresh PostgreSQL database, ingest/reader nodes on a fresh bucket of the S3 server.

Needs E2E_POSTGRES_URL, E2E_S3_ENDPOINT (and, to restart PostgreSQL, E2E_POSTGRES_BIN and
E2E_POSTGRES_DATA), all set by scripts/test.
"""

import json
import os
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

from conftest import ROOT, free_port


def env_or_fail(name):
    value = os.environ.get(name)
    if not value:
        raise RuntimeError(f"{name} is not set: run the tests with scripts/test")
    return value


def postgres_bin(tool):
    return os.path.join(env_or_fail("E2E_POSTGRES_BIN"), tool)


def as_postgres(cmd):
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


def fresh_database():
    admin = env_or_fail("E2E_POSTGRES_URL")
    name = f"silt_cluster_{uuid.uuid4().hex[:12]}"
    subprocess.run([postgres_bin("psql"), admin, "-qc", f"CREATE DATABASE {name}"], check=True,
                   capture_output=True)
    return admin.rsplit("/", 1)[0] + "/" + name


def restart_postgres():
    """Restarts the shared PostgreSQL server (fast shutdown: open sessions are cut)."""
    # The restarted server inherits pg_ctl's output: /dev/null, not a pipe we would wait on.
    subprocess.run(as_postgres([postgres_bin("pg_ctl"), "-D", env_or_fail("E2E_POSTGRES_DATA"),
                                "-m", "fast", "-w", "restart"]),
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)


def http_json(url, body=None, method=None, timeout=30):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method or ("POST" if data else "GET"),
                                 headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read())


class Process:
    """One `silt serve` process that can be killed and started again with the same flags."""

    def __init__(self, name, args, work, env=None):
        self.name = name
        self.args = args
        self.env = env or {}
        self.log_path = os.path.join(work, f"{name}.log")
        self.proc = None

    def start(self):
        binary = os.environ.get("E2E_SILT_BIN", str(ROOT / "target/debug/silt"))
        env = {k: v for k, v in os.environ.items() if not k.startswith("SILT_")}
        env.update({"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                    "AWS_REGION": "us-east-1", **self.env})
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([binary, "serve", *self.args], stdout=log, stderr=log,
                                     stdin=subprocess.DEVNULL, env=env)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def kill(self):
        """kill -9: nothing is flushed, no goodbye."""
        if self.alive():
            self.proc.kill()
            self.proc.wait()

    def stop(self):
        if self.alive():
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def log(self):
        try:
            return Path(self.log_path).read_text(errors="replace")[-4000:]
        except OSError:
            return ""


class MetadataProcess(Process):
    def __init__(self, name, db, work):
        self.port = free_port()
        super().__init__(name, ["--roles", "metadata", "--metadata-store", db,
                                "--metadata-addr", f"127.0.0.1:{self.port}",
                                "--data-dir", os.path.join(work, name)], work)

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def active(self):
        try:
            with urllib.request.urlopen(f"{self.url}/health", timeout=1) as r:
                return json.loads(r.read()).get("active", False)
        except (OSError, ValueError):
            return False


class Node(Process):
    def __init__(self, name, node_id, metadata_urls, bucket, work, heartbeat_ttl="3s",
                 roles="ingest,reader", env=None):
        self.node_id = node_id
        self.kafka_port = free_port()
        self.http_port = free_port()
        super().__init__(name, [
            "--roles", roles, "--node-id", str(node_id),
            "--metadata-url", ",".join(metadata_urls),
            "--data-dir", os.path.join(work, name),
            "--kafka-addr", f"127.0.0.1:{self.kafka_port}",
            "--http-addr", f"127.0.0.1:{self.http_port}",
            "--s3-endpoint", env_or_fail("E2E_S3_ENDPOINT"), "--s3-bucket", bucket,
            "--s3-path-style", "--s3-allow-http", "--create-bucket",
        ], work, env={"SILT_NODE__HEARTBEAT_TTL": heartbeat_ttl,
                      "SILT_NODE__HEARTBEAT_INTERVAL": "500ms", **(env or {})})

    @property
    def bootstrap(self):
        return f"127.0.0.1:{self.kafka_port}"

    @property
    def http(self):
        return f"http://127.0.0.1:{self.http_port}"

    def wait_ready(self, timeout=60):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if not self.alive():
                raise RuntimeError(f"{self.name} exited:\n{self.log()}")
            try:
                with urllib.request.urlopen(f"{self.http}/healthz", timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"{self.name} did not start:\n{self.log()}")


class Cluster:
    """`metadata` metadata processes and `nodes` ingest+reader nodes."""

    def __init__(self, work, metadata=1, nodes=2, node_options=None):
        """`node_options(i)` may give node i's extra Node arguments (roles, env)."""
        self.work = work
        self.db = fresh_database()
        self.bucket = f"silt-{uuid.uuid4().hex[:12]}"
        self.metadata = [MetadataProcess(f"meta{i}", self.db, work) for i in range(metadata)]
        for m in self.metadata:
            m.start()
        self.wait_for_active()
        urls = [m.url for m in self.metadata]
        options = node_options or (lambda i: {})
        self.nodes = [Node(f"node{i + 1}", i + 1, urls, self.bucket, work, **options(i))
                      for i in range(nodes)]
        for n in self.nodes:
            n.start()
        for n in self.nodes:
            n.wait_ready()

    def active_metadata(self):
        return [m for m in self.metadata if m.alive() and m.active()]

    def wait_for_active(self, timeout=30):
        deadline = time.time() + timeout
        while time.time() < deadline:
            active = self.active_metadata()
            if len(active) == 1:
                return active[0]
            assert len(active) <= 1, "two metadata processes are active at once"
            time.sleep(0.1)
        logs = "\n".join(m.log() for m in self.metadata)
        raise RuntimeError(f"no metadata process became active:\n{logs}")

    def logs(self):
        return "\n".join(f"--- {p.name}\n{p.log()}" for p in [*self.metadata, *self.nodes])

    def stop(self):
        for p in [*self.nodes, *self.metadata]:
            p.stop()
