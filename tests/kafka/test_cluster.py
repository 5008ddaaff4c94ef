"""Many nodes: `silt serve` processes (metadata on PostgreSQL, ingest/reader nodes on the
S3 server) driven by real Kafka clients, with processes killed and PostgreSQL restarted
under load."""

import json
import threading
import urllib.error
import urllib.request
import time

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from cluster import Cluster, http_json, restart_postgres


@pytest.fixture
def cluster(tmp_path):
    c = Cluster(str(tmp_path), metadata=1, nodes=2)
    try:
        yield c
    finally:
        c.stop()


@pytest.fixture
def ha_cluster(tmp_path):
    c = Cluster(str(tmp_path), metadata=2, nodes=2)
    try:
        yield c
    finally:
        c.stop()


def create_topic(bootstrap, name, partitions):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])[name].result(30)


def read_all(node, topic, partitions):
    """Every record of a topic through one node's HTTP API: [(partition, offset, value)]."""
    out = []
    for p in range(partitions):
        offset = 0
        while True:
            page = http_json(f"{node.http}/v1/topics/{topic}/partitions/{p}/records?offset={offset}&limit=10000")
            out.extend((p, r["offset"], r["value"]) for r in page["records"])
            offset = page["next_offset"]
            if offset >= page["high_watermark"]:
                break
    return out


def assert_dense(records, partitions):
    """Offsets of every partition run 0, 1, 2, ... with no gap and no repeat."""
    for p in range(partitions):
        offsets = [o for (q, o, _) in records if q == p]
        assert offsets == list(range(len(offsets))), f"partition {p} offsets are not dense"


class Load:
    """An idempotent producer writing numbered records in a thread until stopped."""

    def __init__(self, bootstrap, topic, prefix):
        self.producer = Producer({
            "bootstrap.servers": bootstrap,
            "enable.idempotence": True,
            "linger.ms": 5,
            "message.timeout.ms": 120000,
            "topic.metadata.refresh.interval.ms": 1000,
            "retry.backoff.ms": 100,
        })
        self.topic = topic
        self.prefix = prefix
        self.acked, self.failed, self.sent = set(), [], 0
        self.running = True
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def report(self, err, msg):
        if err is None:
            self.acked.add(msg.value().decode())
        else:
            self.failed.append(str(err))

    def run(self):
        while self.running:
            value = f"{self.prefix}-{self.sent}"
            try:
                self.producer.produce(self.topic, value=value.encode(), on_delivery=self.report)
                self.sent += 1
            except BufferError:
                pass
            self.producer.poll(0.002)

    def finish(self, timeout=120):
        self.running = False
        self.thread.join()
        left = self.producer.flush(timeout)
        assert left == 0, f"{left} records never answered"
        return self.acked


def test_a_client_of_one_node_sees_every_node_and_any_node_serves_everything(cluster):
    a, b = cluster.nodes
    create_topic(a.bootstrap, "shared", 4)
    metadata = AdminClient({"bootstrap.servers": a.bootstrap}).list_topics("shared", timeout=10)
    assert sorted(metadata.brokers) == [1, 2], "the producer bootstrapped on A sees both nodes"
    assert {p.leader for p in metadata.topics["shared"].partitions.values()} == {1, 2}

    # Through both nodes: a Kafka producer (it sends to the leaders, on A and B) and HTTP on B.
    producer = Producer({"bootstrap.servers": a.bootstrap, "linger.ms": 5})
    for i in range(400):
        producer.produce("shared", value=f"kafka-{i}".encode(), partition=i % 4)
    assert producer.flush(30) == 0
    http_json(f"{b.http}/v1/topics/shared/records",
              {"records": [{"value": f"http-{i}", "partition": i % 4} for i in range(100)]})

    expected = {f"kafka-{i}" for i in range(400)} | {f"http-{i}" for i in range(100)}
    records = read_all(b, "shared", 4)
    assert sorted(v for (_, _, v) in records) == sorted(expected)
    assert_dense(records, 4)

    # A Kafka consumer bootstrapped on B alone reads the same.
    consumer = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "shared-reader",
                         "auto.offset.reset": "earliest"})
    consumer.subscribe(["shared"])
    seen = []
    deadline = time.time() + 60
    while len(seen) < len(expected) and time.time() < deadline:
        msg = consumer.poll(0.5)
        if msg is not None and msg.error() is None:
            seen.append(msg.value().decode())
    consumer.close()
    assert sorted(seen) == sorted(expected)


def test_two_ingest_nodes_commit_to_the_same_partitions_for_30s(cluster):
    a, b = cluster.nodes
    http_json(f"{a.http}/v1/topics", {"name": "hot", "partitions": 4})
    acked = {a.name: [], b.name: []}
    errors = []

    def writer(node):
        i, end = 0, time.time() + 30
        while time.time() < end:
            batch = [{"value": f"{node.name}-{i + j}", "partition": (i + j) % 4} for j in range(25)]
            try:
                answer = http_json(f"{node.http}/v1/topics/hot/records", {"records": batch})
            except Exception as e:  # noqa: BLE001 - any failure fails the test below
                errors.append(repr(e))
                return
            for record, ack in zip(batch, answer["records"]):
                assert ack["partition"] == record["partition"]
                acked[node.name].append((ack["partition"], ack["offset"], record["value"]))
            i += len(batch)

    threads = [threading.Thread(target=writer, args=(n,)) for n in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert len(acked[a.name]) > 500 and len(acked[b.name]) > 500, "both nodes ingested"

    records = read_all(a, "hot", 4)
    assert_dense(records, 4)
    every_ack = sorted(acked[a.name] + acked[b.name])
    assert sorted(records) == every_ack, "exactly the acknowledged records, at their acknowledged offsets"


def test_killing_an_ingest_node_mid_produce_loses_and_duplicates_nothing(cluster):
    a, b = cluster.nodes
    create_topic(b.bootstrap, "idem", 4)
    load = Load(f"{a.bootstrap},{b.bootstrap}", "idem", "r")
    time.sleep(3)
    assert load.acked, "records were acknowledged before the kill"
    a.kill()
    time.sleep(6)
    acked = load.finish()
    assert not load.failed, load.failed[:5]
    assert len(acked) == load.sent

    records = read_all(b, "idem", 4)
    values = [v for (_, _, v) in records]
    assert len(values) == len(set(values)), "no record twice"
    assert acked <= set(values), "every acknowledged record is there"
    assert_dense(records, 4)


def test_killing_the_active_metadata_process_is_survived(ha_cluster):
    a, b = ha_cluster.nodes
    create_topic(a.bootstrap, "ha", 4)
    load = Load(f"{a.bootstrap},{b.bootstrap}", "ha", "m")
    consumed, stop = set(), threading.Event()

    def consume():
        consumer = Consumer({"bootstrap.servers": b.bootstrap, "group.id": "ha-group",
                             "auto.offset.reset": "earliest", "enable.auto.commit": True,
                             "auto.commit.interval.ms": 500, "session.timeout.ms": 6000})
        consumer.subscribe(["ha"])
        while not stop.is_set():
            msg = consumer.poll(0.2)
            if msg is not None and msg.error() is None:
                consumed.add(msg.value().decode())
        consumer.close()

    reader = threading.Thread(target=consume, daemon=True)
    reader.start()
    time.sleep(5)
    active = ha_cluster.wait_for_active()
    active.kill()
    started = time.time()
    successor = ha_cluster.wait_for_active(timeout=10)
    took_over = time.time() - started
    assert successor is not active
    assert took_over < 10
    time.sleep(5)
    acked = load.finish()
    assert not load.failed, load.failed[:5]

    deadline = time.time() + 60
    while not acked <= consumed and time.time() < deadline:
        time.sleep(0.2)
    stop.set()
    reader.join()
    assert acked <= consumed, f"{len(acked - consumed)} acknowledged records never consumed"
    records = read_all(b, "ha", 4)
    values = [v for (_, _, v) in records]
    assert len(values) == len(set(values)) and acked <= set(values)
    group = http_json(f"{a.http}/v1/groups/ha-group/offsets")
    assert group["offsets"], "the group's commits reached the new active process"
    for o in group["offsets"]:
        assert 0 <= o["offset"] <= o["high_watermark"]

    # The new active process says so, counts and times the calls it answers, and
    # publishes the groups' lag (it coordinates them), within one publishing interval.
    def metrics():
        with urllib.request.urlopen(f"{successor.url}/metrics", timeout=10) as r:
            return r.read().decode()

    deadline = time.time() + 25
    text = metrics()
    while 'silt_consumer_group_lag{group="ha-group",topic="ha"}' not in text and time.time() < deadline:
        time.sleep(1)
        text = metrics()
    assert 'silt_consumer_group_lag{group="ha-group",topic="ha"}' in text, text[-3000:]
    values = {line.split(" ")[0]: float(line.split(" ")[-1])
              for line in text.splitlines() if line and not line.startswith("#")}
    assert values["silt_metadata_active"] == 1
    assert values["silt_metadata_epoch"] >= 2, "the epoch rose at the failover"
    assert values['silt_metadata_requests_total{call="commit_segment",outcome="ok"}'] > 0
    assert any(k.startswith('silt_metadata_request_seconds_count{call="chunks_from"}')
               or k.startswith('silt_metadata_request_seconds{call="chunks_from"')
               for k in values), [k for k in values if "request_seconds" in k][:10]


def test_nodes_recover_when_postgresql_restarts_under_load(ha_cluster):
    a, b = ha_cluster.nodes
    create_topic(a.bootstrap, "pg", 4)
    load = Load(f"{a.bootstrap},{b.bootstrap}", "pg", "p")
    time.sleep(3)
    restart_postgres()
    ha_cluster.wait_for_active(timeout=30)
    time.sleep(5)
    acked = load.finish()
    assert not load.failed, load.failed[:5]
    for node in (a, b):
        assert node.alive(), f"{node.name} exited:\n{node.log()}"
        node.wait_ready(timeout=30)
    records = read_all(b, "pg", 4)
    values = [v for (_, _, v) in records]
    assert len(values) == len(set(values)), "no record twice"
    assert acked <= set(values)
    assert_dense(records, 4)
    # Writes work again through both nodes.
    for node in (a, b):
        http_json(f"{node.http}/v1/topics/pg/records", {"records": [{"value": f"after-{node.name}"}]})


def test_health_answers_within_a_second_while_the_metadata_service_is_down(cluster):
    """With every metadata process dead, /healthz and /readyz still answer at once, 503
    naming the metadata store (they waited ~30 s on the store's retries before); once it
    is back, 200 again."""
    node = cluster.nodes[0]

    def get(path):
        started = time.time()
        try:
            with urllib.request.urlopen(f"{node.http}{path}", timeout=30) as r:
                return r.status, json.loads(r.read()), time.time() - started
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read()), time.time() - started

    assert get("/healthz")[0] == 200
    for m in cluster.metadata:
        m.kill()
    time.sleep(1.5)  # past the reuse of the last probe's answer
    for path in ("/healthz", "/readyz", "/healthz"):
        status, body, took = get(path)
        assert status == 503 and body["code"] == "metadata_unavailable", (path, body)
        assert took < 2.5, f"{path} took {took:.1f} s"
    for m in cluster.metadata:
        m.start()
    cluster.wait_for_active()
    deadline = time.time() + 30
    while time.time() < deadline and get("/healthz")[0] != 200:
        time.sleep(0.5)
    assert get("/healthz")[0] == 200
