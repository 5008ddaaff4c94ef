"""SASL, client-certificate principals and ACLs, with clients Silt did not write: kcat and
confluent-kafka (librdkafka) over SASL_SSL with PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512 and
over SSL with client certificates; users and ACLs managed through confluent-kafka's
AdminClient and `silt users` / `silt acls`; the HTTP API with basic auth and bearer
tokens. Certificates come from openssl (test_tls.py's fixture)."""

import base64
import json
import os
import re
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import (AclBinding, AclBindingFilter, AclOperation,
                                   AclPermissionType, AdminClient, NewTopic,
                                   ResourcePatternType, ResourceType, ScramCredentialInfo,
                                   ScramMechanism, UserScramCredentialUpsertion)

from conftest import ROOT, Silt
from test_tls import certs  # noqa: F401 (the fixture)

PASSWORDS = {"admin": "admin-secret", "alice": "alice-secret", "bob": "bob-secret",
             "carol": "carol-secret"}


def silt_cli(*args, data_dir, stdin=None):
    binary = os.environ.get("E2E_SILT_BIN", str(ROOT / "target/debug/silt"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("SILT_")}
    done = subprocess.run([binary, *args, "--data-dir", data_dir], input=stdin,
                          capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 0, done.stderr
    return done.stdout


def sasl_config(node, certs, user, mechanism="SCRAM-SHA-512", password=None):
    return {
        "bootstrap.servers": node.bootstrap,
        "security.protocol": "sasl_ssl",
        "ssl.ca.location": str(certs / "ca.pem"),
        "sasl.mechanism": mechanism,
        "sasl.username": user,
        "sasl.password": password if password is not None else PASSWORDS[user],
    }


def kcat(node, certs, user, *args, mechanism="SCRAM-SHA-512", password=None, data=None):
    cmd = ["kcat", "-b", node.bootstrap, "-X", "security.protocol=sasl_ssl",
           "-X", f"ssl.ca.location={certs / 'ca.pem'}", "-X", f"sasl.mechanisms={mechanism}",
           "-X", f"sasl.username={user}",
           "-X", f"sasl.password={password if password is not None else PASSWORDS[user]}"]
    return subprocess.run(cmd + list(args), input=data, capture_output=True, text=True,
                          timeout=60)


def high_watermark(node, certs, topic, partition=0):
    consumer = Consumer({**sasl_config(node, certs, "admin"), "group.id": "hwm-probe"})
    try:
        return consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)[1]
    finally:
        consumer.close()


def reauthentications(node):
    """SASL re-authentications the node has counted (KIP-368)."""
    status, text = http(node, "/metrics", auth=("basic", "admin", PASSWORDS["admin"]))
    assert status == 200, text
    lines = [line for line in text.splitlines()
             if line.startswith("silt_kafka_authentications_total")
             and 'outcome="reauthenticated"' in line]
    return float(lines[0].split()[-1]) if lines else 0.0


def http(node, path, method="GET", body=None, auth=None):
    """(status, JSON body) of an HTTP API call; `auth` is ("basic", user, password) or
    ("bearer", token)."""
    request = urllib.request.Request(f"{node.http}{path}", method=method,
                                     data=json.dumps(body).encode() if body else None)
    request.add_header("Content-Type", "application/json")
    if auth and auth[0] == "basic":
        pair = base64.b64encode(f"{auth[1]}:{auth[2]}".encode()).decode()
        request.add_header("Authorization", f"Basic {pair}")
    elif auth:
        request.add_header("Authorization", f"Bearer {auth[1]}")
    try:
        with urllib.request.urlopen(request, timeout=15, context=node.ssl_context) as r:
            raw = r.read()
            return r.status, json.loads(raw) if raw.startswith(b"{") else raw.decode()
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


@pytest.fixture(scope="module")
def secured(certs):  # noqa: F811
    """A node with SASL_SSL on Kafka, HTTPS with authentication required, and ACLs, set
    up from scratch as docs/security.md shows: users and ACLs first, then the node."""
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "data")
        for user, password in PASSWORDS.items():
            silt_cli("users", "add", user, "--password-stdin", data_dir=data, stdin=password)
        silt_cli("acls", "add", "--principal", "User:alice", "--operation", "write,read",
                 "--topic", "orders", data_dir=data)
        silt_cli("acls", "add", "--principal", "User:alice", "--operation", "read",
                 "--group", "orders-", "--prefixed", data_dir=data)
        silt_cli("acls", "add", "--principal", "User:bob", "--operation", "read",
                 "--topic", "orders", data_dir=data)
        token = silt_cli("users", "token", "User:ci", data_dir=data)
        ci_token = token.splitlines()[0].split(": ", 1)[1]
        token_entry = token[token.index("[[http.tokens]]"):]
        config = Path(tmp, "silt.toml")
        config.write_text(f"""
[kafka]
tls = true
sasl_mechanisms = ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]
max_reauth = "3s"

[http]
tls = true
require_auth = true

{token_entry}

[tls]
cert_file = "{certs / 'server.pem'}"
key_file = "{certs / 'server.key'}"

[auth]
acls = true
super_users = ["User:admin"]
""")
        node = Silt(tmp, extra=["--config", str(config)], ca_file=str(certs / "ca.pem"))
        node.ci_token = ci_token
        try:
            admin = AdminClient(sasl_config(node, certs, "admin"))
            for t in admin.create_topics([NewTopic("orders", num_partitions=1),
                                          NewTopic("secret", num_partitions=1)]).values():
                t.result(30)
            yield node
        finally:
            node.stop()


def test_allowed_principals_produce_and_consume_with_every_mechanism(secured, certs):  # noqa: F811
    node = secured
    lines = "".join(f"scram-{i}\n" for i in range(50))
    produced = kcat(node, certs, "alice", "-P", "-t", "orders", data=lines)
    assert produced.returncode == 0, produced.stderr
    producer = Producer({**sasl_config(node, certs, "alice", mechanism="PLAIN"),
                         "enable.idempotence": True})
    for i in range(50):
        producer.produce("orders", value=f"plain-{i}")
    assert producer.flush(30) == 0
    consumer = Consumer({**sasl_config(node, certs, "alice", mechanism="SCRAM-SHA-256"),
                         "group.id": "orders-app", "auto.offset.reset": "earliest"})
    consumer.subscribe(["orders"])
    got = []
    deadline = time.time() + 60
    while len(got) < 100 and time.time() < deadline:
        msg = consumer.poll(5)
        if msg is None:
            continue
        assert msg.error() is None, msg.error()
        got.append(msg.value().decode())
    consumer.commit(asynchronous=False)
    consumer.close()
    assert sorted(got) == sorted([f"scram-{i}" for i in range(50)]
                                 + [f"plain-{i}" for i in range(50)])
    # bob may read the topic (no group needed for a plain read).
    read = kcat(node, certs, "bob", "-C", "-t", "orders", "-e", "-c", "100")
    assert read.returncode == 0, read.stderr
    assert len(read.stdout.splitlines()) == 100


def test_a_principal_without_write_is_refused_and_nothing_is_written(secured, certs):  # noqa: F811
    node = secured
    before = high_watermark(node, certs, "orders")
    producer = Producer({**sasl_config(node, certs, "bob"), "message.timeout.ms": 10000})
    reports = []
    for i in range(5):
        producer.produce("orders", value=f"bob-{i}", on_delivery=lambda err, m: reports.append(err))
    producer.flush(30)
    assert len(reports) == 5
    assert all(e is not None and e.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
               for e in reports), reports
    out = kcat(node, certs, "bob", "-P", "-t", "orders", data="bob via kcat\n")
    assert "Topic authorization failed" in out.stderr, out.stderr
    assert high_watermark(node, certs, "orders") == before


def test_a_wrong_password_fails_to_authenticate(secured, certs):  # noqa: F811
    node = secured
    # An unknown user fails the same way (nothing tells it apart from a wrong password).
    ghost = kcat(node, certs, "ghost", "-L", "-m", "5", password="guess")
    assert "invalid credentials" in ghost.stderr, ghost.stderr
    errors = []
    producer = Producer({**sasl_config(node, certs, "alice", password="guess"),
                         "error_cb": errors.append, "message.timeout.ms": 5000})
    producer.produce("orders", value=b"never")
    producer.flush(10)
    assert any(e.code() == KafkaError._AUTHENTICATION for e in errors), errors
    assert any("invalid credentials" in e.str() for e in errors), errors
    for mechanism in ("PLAIN", "SCRAM-SHA-256"):
        listing = kcat(node, certs, "alice", "-L", "-m", "5", mechanism=mechanism,
                       password="guess")
        assert listing.returncode != 0
        assert "Authentication failed" in listing.stderr, listing.stderr
    # Secrets never reach the log; failures do, with who and from where (the first ones
    # of a burst: the rest are counted, not written).
    log = re.sub(r"\x1b\[[0-9;]*m", "", Path(node.log_path).read_text(errors="replace"))
    assert "authentication failed" in log and 'principal="ghost"' in log, log[-3000:]
    for password in [*PASSWORDS.values(), "guess"]:
        assert password not in log
    # A client retrying with a wrong password does not flood the log: failures are all
    # counted, but at most 20 per 10 s are written.
    status, metrics = http(node, "/metrics", auth=("basic", "admin", PASSWORDS["admin"]))
    failures = sum(float(line.split()[-1]) for line in metrics.splitlines()
                   if line.startswith('silt_auth_failures_total{door="kafka"'))
    warned = [line for line in log.splitlines()
              if "WARN" in line and "authentication failed" in line.lower()]
    assert failures > 25, failures
    assert len(warned) < failures, (len(warned), failures)
    assert not any("connection closed" in line for line in warned), warned[:3]


def test_a_consumer_without_group_read_cannot_join(secured, certs):  # noqa: F811
    node = secured
    consumer = Consumer({**sasl_config(node, certs, "bob"), "group.id": "bobs-group",
                         "auto.offset.reset": "earliest"})
    consumer.subscribe(["orders"])
    seen = None
    deadline = time.time() + 30
    while seen is None and time.time() < deadline:
        msg = consumer.poll(2)
        if msg is not None and msg.error():
            seen = msg.error()
        elif msg is not None:
            pytest.fail("bob consumed through a group he may not read")
    consumer.close()
    assert seen is not None and seen.code() == KafkaError.GROUP_AUTHORIZATION_FAILED, seen


def test_metadata_lists_only_topics_the_principal_may_describe(secured, certs):  # noqa: F811
    node = secured
    alice = kcat(node, certs, "alice", "-L")
    assert alice.returncode == 0, alice.stderr
    assert 'topic "orders"' in alice.stdout and "secret" not in alice.stdout
    admin = kcat(node, certs, "admin", "-L")
    assert 'topic "orders"' in admin.stdout and 'topic "secret"' in admin.stdout
    # Asking for it by name: TOPIC_AUTHORIZATION_FAILED, not its partitions.
    named = kcat(node, certs, "alice", "-L", "-t", "secret")
    assert "Topic authorization failed" in named.stdout + named.stderr, named.stdout


def test_acls_and_users_made_through_the_admin_client_take_effect_at_once(secured, certs):  # noqa: F811
    node = secured
    admin = AdminClient(sasl_config(node, certs, "admin"))
    # A user made through AlterUserScramCredentials authenticates at once.
    upsert = UserScramCredentialUpsertion(
        "dave", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 8192), b"dave-secret")
    for f in admin.alter_user_scram_credentials([upsert]).values():
        f.result(30)
    described = admin.describe_user_scram_credentials(["dave"])["dave"].result(30)
    assert [(i.mechanism, i.iterations) for i in described.scram_credential_infos] == \
        [(ScramMechanism.SCRAM_SHA_256, 8192)]
    dave_write = kcat(node, certs, "dave", "-P", "-t", "dave-topic", mechanism="SCRAM-SHA-256",
                      password="dave-secret", data="by dave\n")
    assert "Topic authorization failed" in dave_write.stderr + dave_write.stdout, dave_write

    # ACLs created through CreateAcls apply without a restart.
    bindings = [
        AclBinding(ResourceType.TOPIC, "dave-", ResourcePatternType.PREFIXED, "User:dave", "*",
                   AclOperation.WRITE, AclPermissionType.ALLOW),
        AclBinding(ResourceType.TOPIC, "dave-", ResourcePatternType.PREFIXED, "User:dave", "*",
                   AclOperation.CREATE, AclPermissionType.ALLOW),
    ]
    for f in admin.create_acls(bindings).values():
        f.result(30)
    listed = admin.describe_acls(AclBindingFilter(
        ResourceType.ANY, None, ResourcePatternType.ANY, "User:dave", None, AclOperation.ANY,
        AclPermissionType.ANY)).result(30)
    assert sorted(b.operation for b in listed) == sorted([AclOperation.WRITE,
                                                          AclOperation.CREATE])
    producer = Producer(sasl_config(node, certs, "dave", mechanism="SCRAM-SHA-256",
                                    password="dave-secret"))
    for i in range(10):
        producer.produce("dave-topic", value=f"dave-{i}")
    assert producer.flush(30) == 0
    assert high_watermark(node, certs, "dave-topic") == 10

    # Deleting them closes the topic again.
    deleted = admin.delete_acls([AclBindingFilter(
        ResourceType.TOPIC, "dave-", ResourcePatternType.PREFIXED, "User:dave", None,
        AclOperation.ANY, AclPermissionType.ANY)])
    removed = list(deleted.values())[0].result(30)
    assert len(removed) == 2
    again = kcat(node, certs, "dave", "-P", "-t", "dave-topic", mechanism="SCRAM-SHA-256",
                 password="dave-secret", data="late\n")
    assert "Topic authorization failed" in again.stderr + again.stdout
    assert high_watermark(node, certs, "dave-topic") == 10

    # A principal without Alter on the cluster may not change ACLs or users.
    alice_admin = AdminClient(sasl_config(node, certs, "alice"))
    refused = list(alice_admin.create_acls(bindings[:1]).values())[0]
    with pytest.raises(Exception, match="CLUSTER_AUTHORIZATION_FAILED|[Cc]luster authorization"):
        refused.result(30)


def test_sessions_are_reauthenticated(secured, certs):  # noqa: F811
    """kafka.max_reauth = 3s: librdkafka re-authenticates its connections (KIP-368) and a
    producer running across several sessions loses nothing."""
    node = secured
    before = reauthentications(node)
    producer = Producer(sasl_config(node, certs, "alice"))
    delivered = []
    started = time.time()
    i = 0
    while time.time() - started < 8:  # across two and more 3 s sessions
        producer.produce("orders", value=f"reauth-{i}",
                         on_delivery=lambda err, m: delivered.append(err))
        producer.poll(0)
        time.sleep(0.2)
        i += 1
    assert producer.flush(30) == 0
    assert len(delivered) == i and all(e is None for e in delivered)
    assert reauthentications(node) > before


def test_http_needs_credentials_and_rights(secured, certs):  # noqa: F811
    node = secured
    before = high_watermark(node, certs, "orders")
    record = {"records": [{"value": "over http"}]}
    status, body = http(node, "/v1/topics/orders/records", "POST", record)
    assert status == 401 and body["code"] == "unauthenticated", body
    status, body = http(node, "/v1/topics/orders/records", "POST", record,
                        auth=("basic", "alice", "guess"))
    assert status == 401, body
    # The ci token is valid but has no rights: 403, nothing written.
    status, body = http(node, "/v1/topics/orders/records", "POST", record,
                        auth=("bearer", node.ci_token))
    assert status == 403 and body["code"] == "forbidden", body
    status, body = http(node, "/v1/topics/orders/records", "POST", record,
                        auth=("basic", "bob", PASSWORDS["bob"]))
    assert status == 403, body
    assert high_watermark(node, certs, "orders") == before
    # alice may write, and sees only the topics she may describe.
    status, body = http(node, "/v1/topics/orders/records", "POST", record,
                        auth=("basic", "alice", PASSWORDS["alice"]))
    assert status == 200, body
    assert high_watermark(node, certs, "orders") == before + 1
    status, body = http(node, "/v1/topics", auth=("basic", "alice", PASSWORDS["alice"]))
    assert status == 200 and [t["name"] for t in body["topics"]] == ["orders"], body
    status, body = http(node, "/v1/topics/secret", auth=("basic", "alice", PASSWORDS["alice"]))
    assert status == 403, body
    # Granting the token a right through `silt acls` takes effect within acl_refresh.
    silt_cli("acls", "add", "--principal", "User:ci", "--operation", "describe",
             "--topic", "secret", data_dir=os.path.join(node.data_dir, "data"))
    deadline = time.time() + 10
    while time.time() < deadline:
        status, body = http(node, "/v1/topics/secret", auth=("bearer", node.ci_token))
        if status == 200:
            break
        time.sleep(0.5)
    assert status == 200 and body["name"] == "secret", body
    # Health checks stay open.
    status, _ = http(node, "/healthz")
    assert status == 200
    # The command line reaches the API with a token and the authority's certificate.
    binary = os.environ.get("E2E_SILT_BIN", str(ROOT / "target/debug/silt"))
    cli = [binary, "groups", "list", "--url", node.http, "--ca-file", str(certs / "ca.pem")]
    listed = subprocess.run(cli + ["--token", node.ci_token], capture_output=True, text=True,
                            timeout=30)
    assert listed.returncode == 0 and "GROUP" in listed.stdout, listed.stderr
    refused = subprocess.run(cli, capture_output=True, text=True, timeout=30)
    assert refused.returncode != 0 and "401" in refused.stderr, refused.stderr


def test_client_certificate_subjects_are_principals(certs, tmp_path):  # noqa: F811
    """SSL with client certificates required: the certificate's subject is the principal
    ACLs name (RFC 2253, as Kafka writes it)."""
    subject = subprocess.run(
        ["openssl", "x509", "-in", str(certs / "alice.pem"), "-noout", "-subject",
         "-nameopt", "RFC2253"], capture_output=True, text=True, check=True
    ).stdout.strip().removeprefix("subject=").strip()
    data = str(tmp_path / "data")
    silt_cli("acls", "add", "--principal", f"User:{subject}", "--operation", "all",
             "--topic", "mtls-", "--prefixed", data_dir=data)
    env = {
        "SILT_KAFKA__TLS": "true",
        "SILT_HTTP__TLS": "true",
        "SILT_TLS__CERT_FILE": str(certs / "server.pem"),
        "SILT_TLS__KEY_FILE": str(certs / "server.key"),
        "SILT_TLS__CLIENT_AUTH": "required",
        "SILT_TLS__CLIENT_CA_FILE": str(certs / "ca.pem"),
        "SILT_AUTH__ACLS": "true",
    }
    node = Silt(str(tmp_path), env=env, ca_file=str(certs / "ca.pem"),
                client_cert=(str(certs / "alice.pem"), str(certs / "alice.key")))
    try:
        config = {"bootstrap.servers": node.bootstrap, "security.protocol": "ssl",
                  "ssl.ca.location": str(certs / "ca.pem"),
                  "ssl.certificate.location": str(certs / "alice.pem"),
                  "ssl.key.location": str(certs / "alice.key")}
        producer = Producer(config)
        for i in range(20):
            producer.produce("mtls-orders", value=f"cert-{i}")
        assert producer.flush(30) == 0
        reports = []
        producer = Producer({**config, "message.timeout.ms": 10000})
        producer.produce("other", value=b"no", on_delivery=lambda e, m: reports.append(e))
        producer.flush(30)
        assert reports and reports[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, reports
        log = Path(node.log_path).read_text(errors="replace")
        assert "silt is ready" in log
    finally:
        node.stop()


def test_kafka_python_authenticates_with_scram_and_reauthenticates(secured, certs):  # noqa: F811
    """kafka-python (its own SASL code, KIP-368 included) over SASL_SSL."""
    from kafka import KafkaConsumer, KafkaProducer
    node = secured
    common = dict(bootstrap_servers=node.bootstrap, security_protocol="SASL_SSL",
                  ssl_cafile=str(certs / "ca.pem"), ssl_check_hostname=False,
                  sasl_mechanism="SCRAM-SHA-512", sasl_plain_username="alice",
                  sasl_plain_password=PASSWORDS["alice"])
    before = reauthentications(node)
    producer = KafkaProducer(**common)
    futures = []
    for i in range(20):
        futures.append(producer.send("orders", f"kafka-python-{i}".encode()))
        time.sleep(0.25)  # across the 3 s session lifetime: re-authentication happens
    offsets = [f.get(timeout=30).offset for f in futures]
    producer.close()
    assert reauthentications(node) > before
    assert offsets == sorted(offsets) and len(set(offsets)) == 20
    consumer = KafkaConsumer("orders", group_id="orders-python", auto_offset_reset="earliest",
                             consumer_timeout_ms=10000, **common)
    values = {m.value.decode() for m in consumer}
    consumer.close()
    assert {f"kafka-python-{i}" for i in range(20)} <= values


def test_the_v0_handshake_exchanges_bare_tokens(secured, certs):  # noqa: F811
    """SaslHandshake v0 (clients from before KIP-152): the SASL tokens that follow are
    bare, size-prefixed, not SaslAuthenticate requests. A raw client speaks it here, as
    no installed client still does."""
    import socket
    import ssl
    import struct
    node = secured

    def connect():
        context = ssl.create_default_context(cafile=str(certs / "ca.pem"))
        raw = socket.create_connection(("127.0.0.1", node.kafka_port), timeout=10)
        return context.wrap_socket(raw, server_hostname="localhost")

    def frame(conn, payload):
        conn.sendall(struct.pack(">i", len(payload)) + payload)

    def read(conn):
        size = struct.unpack(">i", recv(conn, 4))[0]
        return recv(conn, size)

    def recv(conn, n):
        out = b""
        while len(out) < n:
            chunk = conn.recv(n - len(out))
            if not chunk:
                raise ConnectionError("closed")
            out += chunk
        return out

    def request(api_key, version, correlation, body):
        client = b"raw"
        return (struct.pack(">hhih", api_key, version, correlation, len(client)) + client
                + body)

    def handshake(conn, mechanism):
        frame(conn, request(17, 0, 1, struct.pack(">h", len(mechanism)) + mechanism))
        answer = read(conn)
        correlation, error = struct.unpack(">ih", answer[:6])
        assert correlation == 1
        return error

    good = connect()
    assert handshake(good, b"PLAIN") == 0
    frame(good, b"\0alice\0" + PASSWORDS["alice"].encode())
    assert read(good) == b""  # PLAIN's (empty) server token: authenticated
    frame(good, request(3, 1, 2, struct.pack(">i", -1)))  # Metadata v1, all topics
    answer = read(good)
    assert struct.unpack(">i", answer[:4])[0] == 2 and b"orders" in answer
    good.close()

    bad = connect()
    assert handshake(bad, b"PLAIN") == 0
    frame(bad, b"\0alice\0guess")
    with pytest.raises((ConnectionError, ssl.SSLError, OSError)):
        read(bad)  # v0 has no error answer: the connection is closed
    bad.close()

    # An unknown mechanism is refused with UNSUPPORTED_SASL_MECHANISM (33).
    other = connect()
    assert handshake(other, b"GSSAPI") == 33
    other.close()


def test_an_unauthenticated_client_cannot_hold_the_listener(secured, certs):  # noqa: F811
    """A client that announces a huge frame before authenticating is cut off at once
    (frames before SASL are small, as Kafka's sasl.server.max.receive.size), and holds
    no memory others need meanwhile."""
    import socket
    import ssl
    import struct
    node = secured
    context = ssl.create_default_context(cafile=str(certs / "ca.pem"))
    hogs = []
    for _ in range(4):
        raw = socket.create_connection(("127.0.0.1", node.kafka_port), timeout=10)
        hog = context.wrap_socket(raw, server_hostname="localhost")
        hog.sendall(struct.pack(">i", 16 << 20))  # 16 MiB announced, nothing sent
        hogs.append(hog)
    # Authenticated clients are served while the hogs' sockets are still open.
    producer = Producer(sasl_config(node, certs, "alice"))
    producer.produce("orders", value=b"beside the hogs")
    assert producer.flush(15) == 0
    # And the node has closed every hog (not merely left it waiting).
    for hog in hogs:
        hog.settimeout(5)
        try:
            assert hog.recv(1) == b"", "the node answered a frame it must refuse"
        except socket.timeout:
            pytest.fail("a connection announcing a 16 MiB frame before SASL is still open")
        except (ConnectionError, ssl.SSLError):
            pass
        hog.close()


def test_head_requests_are_checked_like_get(secured, certs):  # noqa: F811
    node = secured
    alice = base64.b64encode(f"alice:{PASSWORDS['alice']}".encode()).decode()
    for path in ("/v1/topics/secret/partitions/0/records", "/v1/topics/secret", "/metrics"):
        request = urllib.request.Request(f"{node.http}{path}", method="HEAD",
                                         headers={"Authorization": f"Basic {alice}"})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10, context=node.ssl_context)
        assert refused.value.code == 403, path


def scram_server_first(node, certs, user):  # noqa: F811
    """The server-first message the node sends `user` (SaslHandshake v1, then the
    client-first in SaslAuthenticate v0), over a raw TLS socket."""
    import socket
    import ssl
    import struct
    context = ssl.create_default_context(cafile=str(certs / "ca.pem"))
    conn = context.wrap_socket(socket.create_connection(("127.0.0.1", node.kafka_port),
                                                        timeout=10),
                               server_hostname="localhost")

    def call(api_key, version, correlation, body):
        client = b"raw"
        payload = struct.pack(">hhih", api_key, version, correlation, len(client)) + client + body
        conn.sendall(struct.pack(">i", len(payload)) + payload)
        def exactly(n):
            data = b""
            while len(data) < n:
                chunk = conn.recv(n - len(data))
                assert chunk, "connection closed"
                data += chunk
            return data
        size = struct.unpack(">i", exactly(4))[0]
        return exactly(size)[4:]  # past the correlation id

    mechanism = b"SCRAM-SHA-512"
    assert call(17, 1, 1, struct.pack(">h", len(mechanism)) + mechanism)[:2] == b"\0\0"
    first = f"n,,n={user},r=abcdefghijklmnop".encode()
    answer = call(36, 0, 2, struct.pack(">i", len(first)) + first)
    error, message_len = struct.unpack(">hh", answer[:4])
    assert error == 0, answer
    rest = answer[4 + max(message_len, 0):]
    size = struct.unpack(">i", rest[:4])[0]
    conn.close()
    return dict(part.split("=", 1) for part in rest[4:4 + size].decode().split(","))


def test_unknown_users_look_like_known_ones(secured, certs):  # noqa: F811
    """SCRAM answers an unknown user as it answers a known one — same iteration count, a
    salt that stays the same on asking again and across a restart (it derives from a
    cluster secret the metadata service keeps) — so user names cannot be probed."""
    node = secured
    alice, ghost = scram_server_first(node, certs, "alice"), scram_server_first(node, certs, "ghost")
    assert alice["i"] == ghost["i"] == "8192"
    assert len(alice["s"]) == len(ghost["s"])
    node.stop()
    node.start()
    again_alice = scram_server_first(node, certs, "alice")
    again_ghost = scram_server_first(node, certs, "ghost")
    assert again_alice["s"] == alice["s"]
    assert again_ghost["s"] == ghost["s"], "an unknown user's salt changed with a restart"


class SseReader:
    """Reads a Server-Sent Events stream in a thread: `events` holds (event, data) pairs
    as they come; `ended` is set when the server closes the stream."""

    def __init__(self, node, path, user, password):
        import threading
        pair = base64.b64encode(f"{user}:{password}".encode()).decode()
        request = urllib.request.Request(f"{node.http}{path}",
                                         headers={"Authorization": f"Basic {pair}"})
        self.response = urllib.request.urlopen(request, timeout=60, context=node.ssl_context)
        self.events, self.ended = [], threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        event, data = "message", []
        try:
            for raw in self.response:
                line = raw.decode().rstrip("\r\n")
                if line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:"):
                    data.append(line[5:].strip())
                elif not line and data:
                    self.events.append((event, "\n".join(data)))
                    event, data = "message", []
        except OSError:
            pass
        self.ended.set()

    def values(self):
        return [json.loads(d)["value"] for e, d in self.events if e == "record"]

    def wait_for(self, predicate, seconds=20):
        deadline = time.time() + seconds
        while time.time() < deadline and not predicate():
            time.sleep(0.1)
        return predicate()


def test_an_open_stream_ends_when_its_access_is_revoked(secured, certs):  # noqa: F811
    """A live tail (SSE) checks its caller again before it sends anything: a removed Read
    ACL ends it at once, a deleted user at the next records, and neither sees a record
    written after."""
    from confluent_kafka.admin import UserScramCredentialDeletion
    node = secured
    admin = AdminClient(sasl_config(node, certs, "admin"))
    for t in admin.create_topics([NewTopic("feed", num_partitions=1)]).values():
        t.result(30)
    for f in admin.alter_user_scram_credentials([UserScramCredentialUpsertion(
            "erin", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 8192),
            b"erin-secret")]).values():
        f.result(30)
    read = AclBinding(ResourceType.TOPIC, "feed", ResourcePatternType.LITERAL, "User:erin", "*",
                      AclOperation.READ, AclPermissionType.ALLOW)
    for f in admin.create_acls([read]).values():
        f.result(30)
    producer = Producer(sasl_config(node, certs, "admin"))

    def produce(value):
        producer.produce("feed", value=value, partition=0)
        assert producer.flush(30) == 0

    # A removed ACL ends the stream at once, before the next record.
    stream = SseReader(node, "/v1/topics/feed/partitions/0/stream?offset=0", "erin", "erin-secret")
    produce("one")
    assert stream.wait_for(lambda: stream.values() == ["one"]), stream.events
    for f in admin.delete_acls([AclBindingFilter(
            ResourceType.TOPIC, "feed", ResourcePatternType.LITERAL, "User:erin", None,
            AclOperation.ANY, AclPermissionType.ANY)]).values():
        f.result(30)
    assert stream.ended.wait(10), "the stream outlived its ACL"
    produce("two")
    assert stream.values() == ["one"]
    assert [json.loads(d)["code"] for e, d in stream.events if e == "error"] == ["forbidden"]

    # A deleted user's stream ends at its next records, without them.
    for f in admin.create_acls([read]).values():
        f.result(30)
    stream = SseReader(node, "/v1/topics/feed/partitions/0/stream?offset=0", "erin", "erin-secret")
    assert stream.wait_for(lambda: stream.values() == ["one", "two"]), stream.events
    for f in admin.alter_user_scram_credentials([UserScramCredentialDeletion(
            "erin", ScramMechanism.SCRAM_SHA_512)]).values():
        f.result(30)
    produce("three")
    assert stream.ended.wait(15), "the stream outlived its user"
    assert stream.values() == ["one", "two"]
    assert [json.loads(d)["code"] for e, d in stream.events if e == "error"] == ["unauthenticated"]
    status, _ = http(node, "/v1/topics/feed/partitions/0/records?offset=0",
                     auth=("basic", "erin", "erin-secret"))
    assert status == 401
