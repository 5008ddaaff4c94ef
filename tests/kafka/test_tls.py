"""TLS on the Kafka and HTTP listeners, with clients Silt did not write: kcat and
confluent-kafka (librdkafka) over SSL, with and without client certificates, and HTTPS.
Certificates come from the openssl command, made fresh for each test run."""

import http.client
import json
import ssl
import subprocess
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from conftest import Silt, free_port


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def issue(cwd, name, subject, extensions):
    """A P-256 key and a certificate for it, signed by the test CA."""
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", subject, cwd=cwd)
    Path(cwd, f"{name}.ext").write_text(extensions)
    openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "2", "-out", f"{name}.pem", "-extfile", f"{name}.ext",
            cwd=cwd)


@pytest.fixture(scope="module")
def certs():
    with tempfile.TemporaryDirectory() as d:
        openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
                "-subj", "/CN=silt test CA", cwd=d)
        issue(d, "server", "/CN=localhost",
              "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n")
        issue(d, "alice", "/CN=alice/O=silt tests", "extendedKeyUsage=clientAuth\n")
        # A node's certificate: served on its listeners and presented to the metadata
        # service, so it has both usages.
        issue(d, "node", "/CN=localhost",
              "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
              "extendedKeyUsage=serverAuth,clientAuth\n")
        # A client certificate from an authority the node does not trust.
        openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                "-nodes", "-keyout", "mallory.key", "-out", "mallory.pem", "-days", "2",
                "-subj", "/CN=mallory", cwd=d)
        yield Path(d)


def tls_node(tmp, certs, client_auth="none"):
    env = {
        "SILT_KAFKA__TLS": "true",
        "SILT_HTTP__TLS": "true",
        "SILT_TLS__CERT_FILE": str(certs / "server.pem"),
        "SILT_TLS__KEY_FILE": str(certs / "server.key"),
        "SILT_TLS__CLIENT_AUTH": client_auth,
    }
    client_cert = None
    if client_auth != "none":
        env["SILT_TLS__CLIENT_CA_FILE"] = str(certs / "ca.pem")
        client_cert = (str(certs / "alice.pem"), str(certs / "alice.key"))
    return Silt(tmp, env=env, ca_file=str(certs / "ca.pem"), client_cert=client_cert)


def ssl_config(node, certs, client=None):
    config = {
        "bootstrap.servers": node.bootstrap,
        "security.protocol": "ssl",
        "ssl.ca.location": str(certs / "ca.pem"),
    }
    if client:
        config["ssl.certificate.location"] = str(certs / f"{client}.pem")
        config["ssl.key.location"] = str(certs / f"{client}.key")
    return config


def kcat(node, certs, *args, client=None, data=None):
    cmd = ["kcat", "-b", node.bootstrap, "-X", "security.protocol=ssl",
           "-X", f"ssl.ca.location={certs / 'ca.pem'}"]
    if client:
        cmd += ["-X", f"ssl.certificate.location={certs / (client + '.pem')}",
                "-X", f"ssl.key.location={certs / (client + '.key')}"]
    return subprocess.run(cmd + list(args), input=data, capture_output=True, text=True,
                          timeout=60)


def test_kafka_and_http_over_tls(certs):
    with tempfile.TemporaryDirectory() as tmp:
        node = tls_node(tmp, certs)
        try:
            admin = AdminClient(ssl_config(node, certs))
            admin.create_topics([NewTopic("tls-topic", num_partitions=2)])["tls-topic"].result(30)

            # kcat: produce and consume over TLS.
            lines = "".join(f"k{i}:value {i}\n" for i in range(100))
            produced = kcat(node, certs, "-P", "-t", "tls-topic", "-K:", data=lines)
            assert produced.returncode == 0, produced.stderr
            consumed = kcat(node, certs, "-C", "-t", "tls-topic", "-e", "-f", "%k:%s\n")
            assert consumed.returncode == 0, consumed.stderr
            assert sorted(consumed.stdout.splitlines()) == sorted(lines.splitlines())

            # confluent-kafka: an idempotent producer and a consumer group.
            producer = Producer({**ssl_config(node, certs), "enable.idempotence": True})
            for i in range(1000):
                producer.produce("tls-topic", key=f"c{i}", value=f"confluent {i}")
            assert producer.flush(30) == 0
            consumer = Consumer({**ssl_config(node, certs), "group.id": "tls-group",
                                 "auto.offset.reset": "earliest"})
            consumer.subscribe(["tls-topic"])
            got = []
            while len(got) < 1100:
                msg = consumer.poll(10)
                assert msg is not None, f"only {len(got)} records consumed"
                assert msg.error() is None, msg.error()
                got.append(msg.value().decode())
            consumer.close()
            assert sorted(got) == sorted([f"value {i}" for i in range(100)]
                                         + [f"confluent {i}" for i in range(1000)])

            # HTTPS: the same records, through the HTTP API.
            with urllib.request.urlopen(f"{node.http}/v1/topics/tls-topic", timeout=10,
                                        context=node.ssl_context) as r:
                detail = json.loads(r.read())
            assert sum(p["latest_offset"] for p in detail["partitions"]) == 1100

            # A plaintext client gets nowhere, and the node keeps serving.
            plain = Producer({"bootstrap.servers": node.bootstrap, "message.timeout.ms": 3000})
            reports = []
            plain.produce("tls-topic", value=b"never",
                          on_delivery=lambda err, msg: reports.append(err))
            plain.flush(10)
            assert len(reports) == 1 and reports[0] is not None, \
                f"a plaintext produce must fail, got {reports}"
            with pytest.raises((urllib.error.URLError, http.client.HTTPException, OSError)):
                urllib.request.urlopen(f"http://127.0.0.1:{node.http_port}/healthz", timeout=5)
            # A client that does not trust the node's authority refuses it.
            untrusting = kcat(node, certs, "-L", "-X", "ssl.ca.location=/dev/null")
            assert untrusting.returncode != 0
            listing = kcat(node, certs, "-L")
            assert listing.returncode == 0, listing.stderr
            assert 'topic "tls-topic" with 2 partitions' in listing.stdout
        finally:
            node.stop()


def test_client_certificates_required(certs):
    with tempfile.TemporaryDirectory() as tmp:
        node = tls_node(tmp, certs, client_auth="required")
        try:
            # Without a certificate, or with one the node's authority did not sign: refused.
            anonymous = kcat(node, certs, "-L", "-m", "5")
            assert anonymous.returncode != 0
            mallory = kcat(node, certs, "-L", "-m", "5", client="mallory")
            assert mallory.returncode != 0
            anonymous_https = ssl.create_default_context(cafile=str(certs / "ca.pem"))
            with pytest.raises((urllib.error.URLError, ssl.SSLError, ConnectionError)):
                urllib.request.urlopen(f"{node.http}/healthz", timeout=5, context=anonymous_https)

            # With alice's certificate: produce and consume.
            producer = Producer(ssl_config(node, certs, client="alice"))
            for i in range(50):
                producer.produce("mtls-topic", value=f"alice {i}")
            assert producer.flush(30) == 0
            consumed = kcat(node, certs, "-C", "-t", "mtls-topic", "-e", "-f", "%s\n",
                            client="alice")
            assert consumed.returncode == 0, consumed.stderr
            assert sorted(consumed.stdout.splitlines()) == sorted(f"alice {i}" for i in range(50))
            with urllib.request.urlopen(f"{node.http}/healthz", timeout=5,
                                        context=node.ssl_context) as r:
                assert r.status == 200
        finally:
            node.stop()


def test_a_bad_certificate_stops_the_node_at_start(certs, tmp_path):
    with pytest.raises(RuntimeError, match="silt exited"):
        Silt(str(tmp_path), env={"SILT_KAFKA__TLS": "true",
                                 "SILT_TLS__CERT_FILE": str(certs / "ca.key"),
                                 "SILT_TLS__KEY_FILE": str(certs / "server.key")})
    log = (tmp_path / "silt.log").read_text(errors="replace")
    assert "TLS for the Kafka listener" in log and "holds no certificate" in log, log[:2000]


def test_a_cluster_node_with_every_listener_on_tls(certs, tmp_path):
    """`silt serve` with the metadata role: its own ingest and reader reach the metadata
    service over https, presenting the node's certificate (client certificates required
    everywhere)."""
    env = {
        "SILT_METADATA__ADDR": f"127.0.0.1:{free_port()}",
        "SILT_METADATA__TLS": "true",
        "SILT_KAFKA__TLS": "true",
        "SILT_HTTP__TLS": "true",
        "SILT_TLS__CERT_FILE": str(certs / "node.pem"),
        "SILT_TLS__KEY_FILE": str(certs / "node.key"),
        "SILT_TLS__CA_FILE": str(certs / "ca.pem"),
        "SILT_TLS__CLIENT_CA_FILE": str(certs / "ca.pem"),
        "SILT_TLS__CLIENT_AUTH": "required",
    }
    node = Silt(str(tmp_path), env=env, ca_file=str(certs / "ca.pem"),
                client_cert=(str(certs / "alice.pem"), str(certs / "alice.key")),
                mode=("serve", "--roles", "metadata,ingest,reader"))
    try:
        producer = Producer(ssl_config(node, certs, client="alice"))
        for i in range(20):
            producer.produce("cluster-tls", value=f"r{i}")
        assert producer.flush(30) == 0
        consumed = kcat(node, certs, "-C", "-t", "cluster-tls", "-e", "-f", "%s\n",
                        client="alice")
        assert consumed.returncode == 0, consumed.stderr
        assert sorted(consumed.stdout.splitlines()) == sorted(f"r{i}" for i in range(20))
        # The metadata listener refuses a client without a certificate.
        anonymous = ssl.create_default_context(cafile=str(certs / "ca.pem"))
        with pytest.raises((urllib.error.URLError, ssl.SSLError, ConnectionError)):
            urllib.request.urlopen(f"https://{env['SILT_METADATA__ADDR']}/v1/health", timeout=5,
                                   context=anonymous)
    finally:
        node.stop()
