"""Fixtures for the Kafka client tests: a real `silt dev` process per test on free ports.

The binary comes from E2E_SILT_BIN (set by scripts/test) or target/debug/silt.
"""

import os
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Silt:
    """A `silt dev` process that can be killed and restarted on the same data and ports."""

    def __init__(self, data_dir: str, extra=(), env=None, ca_file=None, client_cert=None,
                 mode=("dev",)):
        """`env`: SILT_* settings; `ca_file`: the HTTP listener serves TLS with a
        certificate from this authority; `client_cert`: (certificate, key) files this
        helper presents to it."""
        self.data_dir = data_dir
        self.http_port = free_port()
        self.kafka_port = free_port()
        self.extra = list(extra)
        self.mode = list(mode)
        self.settings = dict(env or {})
        self.ssl_context = ssl.create_default_context(cafile=ca_file) if ca_file else None
        if client_cert:
            self.ssl_context.load_cert_chain(*client_cert)
        self.proc = None
        self.log_path = os.path.join(data_dir, "silt.log")
        self.start()

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.kafka_port}"

    @property
    def http(self) -> str:
        scheme = "https" if self.ssl_context else "http"
        return f"{scheme}://127.0.0.1:{self.http_port}"

    def start(self):
        binary = os.environ.get("E2E_SILT_BIN", str(ROOT / "target/debug/silt"))
        cmd = [
            binary, *self.mode,
            "--data-dir", os.path.join(self.data_dir, "data"),
            "--http-addr", f"127.0.0.1:{self.http_port}",
            "--kafka-addr", f"127.0.0.1:{self.kafka_port}",
            *self.extra,
        ]
        log = open(self.log_path, "ab")
        env = {k: v for k, v in os.environ.items() if not k.startswith("SILT_")}
        env.update(self.settings)
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=log, stdin=subprocess.DEVNULL, env=env)
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"silt exited: {self.log()}")
            try:
                with urllib.request.urlopen(f"{self.http}/healthz", timeout=1,
                                            context=self.ssl_context) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"silt did not start: {self.log()}")

    def kill(self):
        """kill -9: nothing is flushed."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=30)

    def log(self) -> str:
        try:
            return Path(self.log_path).read_text(errors="replace")[-5000:]
        except OSError:
            return ""


@pytest.fixture
def silt():
    with tempfile.TemporaryDirectory() as d:
        node = Silt(d)
        try:
            yield node
        finally:
            node.stop()
