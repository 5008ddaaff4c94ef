"""Kafka clients Silt did not write (librdkafka via confluent-kafka and kcat, kafka-python)
against a real `silt dev` process."""

import json
import random
import socket
import struct
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ConfigSource,
    NewPartitions,
    NewTopic,
)
from kafka import KafkaConsumer
from kafka import TopicPartition as KTopicPartition
from kafka.admin import KafkaAdminClient
from kafka.admin import NewTopic as KNewTopic


def create_topic(bootstrap, name, partitions, config=None):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1, config=config or {})])
    futures[name].result(30)


def produce_all(bootstrap, topic, records, **config):
    """Produces (key, value, headers, timestamp, partition) tuples; returns {value: (partition, offset)}."""
    acked, errors = {}, []

    def report(err, msg):
        if err is not None:
            errors.append(err)
        else:
            acked[msg.value()] = (msg.partition(), msg.offset())

    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, **config})
    for key, value, headers, ts, partition in records:
        kwargs = dict(key=key, value=value, headers=headers, on_delivery=report)
        if ts is not None:
            kwargs["timestamp"] = ts
        if partition is not None:
            kwargs["partition"] = partition
        while True:
            try:
                producer.produce(topic, **kwargs)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    assert producer.flush(60) == 0, "messages left unsent"
    assert not errors, errors[:3]
    return acked


def consume_kafka_python(bootstrap, topic, partitions, expected):
    """Reads every partition from offset 0 with kafka-python (no group)."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        consumer_timeout_ms=15000,
    )
    tps = [KTopicPartition(topic, p) for p in range(partitions)]
    consumer.assign(tps)
    consumer.seek_to_beginning(*tps)
    got = {p: [] for p in range(partitions)}
    total = 0
    for msg in consumer:
        got[msg.partition].append(msg)
        total += 1
        if total >= expected:
            break
    consumer.close()
    return got


@pytest.mark.parametrize("codec", ["none", "gzip", "snappy", "lz4", "zstd"])
def test_each_codec_round_trips_exactly(silt, codec):
    topic = f"codec-{codec}"
    create_topic(silt.bootstrap, topic, 4)
    base_ts = 1_700_000_000_000
    records = []
    for i in range(10_000):
        value = None if i % 7 == 3 else f"value-{i}-{'x' * (i % 50)}".encode()
        headers = [("seq", str(i).encode()), ("empty", b"")] if i % 3 else []
        records.append((f"key-{i % 101}".encode(), value, headers, base_ts + i, None))
    producer_order = {}
    acked_by_key = {}
    acks = []

    def report(err, msg):
        assert err is None, err
        acks.append((msg.key(), msg.partition(), msg.offset()))

    producer = Producer({"bootstrap.servers": silt.bootstrap, "compression.type": codec, "linger.ms": 10, "enable.idempotence": True})
    for i, (key, value, headers, ts, _) in enumerate(records):
        while True:
            try:
                producer.produce(topic, key=key, value=value, headers=headers, timestamp=ts, on_delivery=report)
                break
            except BufferError:
                producer.poll(0.05)
        producer_order.setdefault(key, []).append(i)
    assert producer.flush(60) == 0
    assert len(acks) == 10_000

    got = consume_kafka_python(silt.bootstrap, topic, 4, 10_000)
    assert sum(len(v) for v in got.values()) == 10_000
    seen_per_key = {}
    for p, msgs in got.items():
        assert [m.offset for m in msgs] == list(range(len(msgs))), f"partition {p} offsets not dense"
        for m in msgs:
            seen_per_key.setdefault(m.key, []).append(m)
    # Every key's records arrive in the order they were produced, with exact content.
    for key, indexes in producer_order.items():
        msgs = seen_per_key[key]
        assert len(msgs) == len(indexes)
        assert len({m.partition for m in msgs}) == 1, "a key spread over partitions"
        for i, m in zip(indexes, msgs):
            _, value, headers, ts, _ = records[i]
            assert m.value == value
            assert m.timestamp == ts
            assert [(k, v) for k, v in m.headers] == headers


def test_kcat_lists_produces_and_consumes(silt, tmp_path):
    create_topic(silt.bootstrap, "kcat-topic", 2)
    listing = subprocess.run(["kcat", "-b", silt.bootstrap, "-L"], capture_output=True, text=True, timeout=30)
    assert listing.returncode == 0, listing.stderr
    assert f"broker 0 at {silt.bootstrap}" in listing.stdout
    assert 'topic "kcat-topic" with 2 partitions' in listing.stdout

    lines = [f"line {i} {'y' * (i % 17)}" for i in range(500)]
    source = tmp_path / "in.txt"
    source.write_text("\n".join(lines) + "\n")
    put = subprocess.run(["kcat", "-b", silt.bootstrap, "-P", "-t", "kcat-topic", "-p", "1", "-l", str(source)], capture_output=True, text=True, timeout=60)
    assert put.returncode == 0, put.stderr
    out = subprocess.run(["kcat", "-b", silt.bootstrap, "-C", "-t", "kcat-topic", "-p", "1", "-o", "beginning", "-e", "-f", "%o %s\\n"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [f"{i} {line}" for i, line in enumerate(lines)]


def test_admin_through_both_clients(silt):
    admin = AdminClient({"bootstrap.servers": silt.bootstrap})
    create_topic(silt.bootstrap, "admin-a", 2, {"retention.ms": "3600000"})
    with pytest.raises(KafkaException) as dup:
        create_topic(silt.bootstrap, "admin-a", 2)
    assert "TOPIC_ALREADY_EXISTS" in str(dup.value)
    with pytest.raises(KafkaException):
        create_topic(silt.bootstrap, "admin-a", 1, {"no.such.config": "1"})

    resource = ConfigResource(ConfigResource.Type.TOPIC, "admin-a")
    configs = admin.describe_configs([resource])[resource].result(30)
    assert configs["retention.ms"].value == "3600000"
    assert configs["max.message.bytes"].is_default

    change = ConfigResource(ConfigResource.Type.TOPIC, "admin-a", incremental_configs=[
        ConfigEntry("retention.ms", "7200000", incremental_operation=AlterConfigOpType.SET),
        ConfigEntry("max.message.bytes", "2048", incremental_operation=AlterConfigOpType.SET),
    ])
    admin.incremental_alter_configs([change])[change].result(30)
    configs = admin.describe_configs([resource])[resource].result(30)
    assert configs["retention.ms"].value == "7200000"
    assert configs["max.message.bytes"].value == "2048"

    # The new limit is enforced on produce.
    producer = Producer({"bootstrap.servers": silt.bootstrap})
    errors = []
    producer.produce("admin-a", value=b"z" * 4000, partition=0, on_delivery=lambda e, m: errors.append(e))
    producer.flush(30)
    assert errors and errors[0] is not None and "MSG_SIZE_TOO_LARGE" in str(errors[0])

    admin.create_partitions([NewPartitions("admin-a", 5)])["admin-a"].result(30)
    md = admin.list_topics("admin-a", timeout=30)
    assert len(md.topics["admin-a"].partitions) == 5
    admin.delete_topics(["admin-a"])["admin-a"].result(30)
    assert "admin-a" not in admin.list_topics(timeout=30).topics

    # kafka-python's admin client speaks the older versions.
    kadmin = KafkaAdminClient(bootstrap_servers=silt.bootstrap)
    kadmin.create_topics([KNewTopic("admin-b", 3, 1, topic_configs={"retention.bytes": "1000000"})])
    assert "admin-b" in kadmin.list_topics()
    kadmin.delete_topics(["admin-b"])
    kadmin.close()


def test_topic_configs_follow_kafkas_table(silt):
    # Every known topic config is accepted with Kafka's validation, described with its
    # true value and source; an unknown name or a bad value gets Kafka's INVALID_CONFIG.
    admin = AdminClient({"bootstrap.servers": silt.bootstrap})
    create_topic(silt.bootstrap, "configured", 1, {
        "cleanup.policy": "delete", "compression.type": "zstd", "min.insync.replicas": "2",
        "message.timestamp.type": "LogAppendTime", "segment.bytes": "104857600",
    })
    resource = ConfigResource(ConfigResource.Type.TOPIC, "configured")
    configs = admin.describe_configs([resource])[resource].result(30)
    assert {"cleanup.policy", "compression.type", "retention.ms", "segment.ms",
            "min.compaction.lag.ms", "unclean.leader.election.enable"} <= set(configs)
    dynamic = ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    for name, value in [("cleanup.policy", "delete"), ("compression.type", "zstd"),
                        ("min.insync.replicas", "2"), ("message.timestamp.type", "LogAppendTime"),
                        ("segment.bytes", "104857600")]:
        assert (configs[name].value, configs[name].source) == (value, dynamic), name
    # The compactor deletes after 7 days unless told otherwise, and says so.
    assert configs["retention.ms"].value == "604800000"
    assert configs["retention.ms"].source == ConfigSource.DEFAULT_CONFIG.value
    assert configs["retention.bytes"].value == "-1"

    def refusal(config):
        with pytest.raises(KafkaException) as raised:
            create_topic(silt.bootstrap, "refused", 1, config)
        error = raised.value.args[0]
        assert error.name() == "INVALID_CONFIG", error
        return error.str()

    assert "Unknown topic config name: retention.mss" in refusal({"retention.mss": "1"})
    assert "Invalid value soon for configuration retention.ms" in refusal({"retention.ms": "soon"})
    assert "compression.type" in refusal({"compression.type": "brotli"})
    assert "cleanup.policy" in refusal({"cleanup.policy": "compact"})
    assert "refused" not in admin.list_topics(timeout=30).topics

    # Lists take APPEND and SUBTRACT; a set config is deleted back to its default.
    change = ConfigResource(ConfigResource.Type.TOPIC, "configured", incremental_configs=[
        ConfigEntry("min.insync.replicas", None, incremental_operation=AlterConfigOpType.DELETE),
        ConfigEntry("message.timestamp.before.max.ms", "60000",
                    incremental_operation=AlterConfigOpType.SET),
        ConfigEntry("message.timestamp.type", "CreateTime", incremental_operation=AlterConfigOpType.SET),
    ])
    admin.incremental_alter_configs([change])[change].result(30)
    configs = admin.describe_configs([resource])[resource].result(30)
    assert configs["min.insync.replicas"].value == "1"
    assert configs["min.insync.replicas"].source == ConfigSource.DEFAULT_CONFIG.value

    # message.timestamp.before.max.ms is enforced: an hour-old CreateTime record is refused.
    producer = Producer({"bootstrap.servers": silt.bootstrap})
    errors = []
    producer.produce("configured", value=b"old", partition=0,
                     timestamp=int(time.time() * 1000) - 3_600_000,
                     on_delivery=lambda e, m: errors.append(e))
    producer.flush(30)
    assert errors and errors[0] is not None and "INVALID_TIMESTAMP" in str(errors[0]), errors

    # Broker configs are described too, read only.
    broker = str(next(iter(admin.list_topics(timeout=30).brokers)))
    node = ConfigResource(ConfigResource.Type.BROKER, broker)
    configs = admin.describe_configs([node])[node].result(30)
    assert configs["log.retention.ms"].value == "604800000"
    assert configs["num.partitions"].value == "1"
    assert configs["auto.create.topics.enable"].value == "true"
    assert configs["broker.id"].value == broker and configs["broker.id"].is_read_only


def test_repeated_header_keys_are_kept_in_order(silt):
    # Kafka headers are an ordered list: a key may repeat, and every value is kept.
    create_topic(silt.bootstrap, "headers", 1)
    sent = [("trace", b"a"), ("hop", b"1"), ("trace", b"b"), ("hop", None), ("trace", b"c")]
    for codec in ["none", "lz4", "zstd"]:
        produce_all(silt.bootstrap, "headers", [(b"k", codec.encode(), sent, None, 0)],
                    **{"compression.type": codec})
    # Through the HTTP door too.
    body = json.dumps({"records": [{"value": "http", "partition": 0, "headers": [
        {"key": "trace", "value": "a"}, {"key": "trace", "value": "b"}]}]}).encode()
    request = urllib.request.Request(f"{silt.http}/v1/topics/headers/records", data=body,
                                     headers={"Content-Type": "application/json"})
    urllib.request.urlopen(request, timeout=30).read()

    got = consume_kafka_python(silt.bootstrap, "headers", 1, 4)[0]
    assert [m.value for m in got] == [b"none", b"lz4", b"zstd", b"http"]
    for m in got[:3]:
        assert m.headers == sent, m.value
    assert got[3].headers == [("trace", b"a"), ("trace", b"b")]
    # librdkafka sees the same list.
    consumer = Consumer({"bootstrap.servers": silt.bootstrap, "group.id": "headers-check",
                         "auto.offset.reset": "earliest"})
    consumer.assign([TopicPartition("headers", 0, 0)])
    msg = consumer.poll(30)
    consumer.close()
    assert msg is not None and msg.error() is None and msg.headers() == sent


def test_offsets_for_times(silt):
    create_topic(silt.bootstrap, "times", 1)
    base = 1_700_000_000_000
    produce_all(silt.bootstrap, "times", [(None, f"v{i}".encode(), [], base + i * 1000, 0) for i in range(100)])
    consumer = Consumer({"bootstrap.servers": silt.bootstrap, "group.id": "unused"})
    wanted = [TopicPartition("times", 0, base + 41_500), TopicPartition("times", 0, base), TopicPartition("times", 0, base + 10_000_000)]
    got = [consumer.offsets_for_times([tp], timeout=30)[0].offset for tp in wanted]
    assert got == [42, 0, -1]
    low, high = consumer.get_watermark_offsets(TopicPartition("times", 0), timeout=30)
    assert (low, high) == (0, 100)
    consumer.close()


def test_http_and_kafka_see_each_other(silt):
    create_topic(silt.bootstrap, "bridge", 1)
    body = json.dumps({"records": [{"key": "from-http", "value": "hello"}]}).encode()
    req = urllib.request.Request(f"{silt.http}/v1/topics/bridge/records", data=body, headers={"content-type": "application/json"})
    urllib.request.urlopen(req, timeout=30).read()
    produce_all(silt.bootstrap, "bridge", [(b"from-kafka", b"world", [("h", b"1")], None, 0)])
    got = consume_kafka_python(silt.bootstrap, "bridge", 1, 2)[0]
    assert [(m.key, m.value) for m in got] == [(b"from-http", b"hello"), (b"from-kafka", b"world")]
    with urllib.request.urlopen(f"{silt.http}/v1/topics/bridge/partitions/0/records?offset=0", timeout=30) as r:
        records = json.load(r)["records"]
    assert [(r["key"], r["value"]) for r in records] == [("from-http", "hello"), ("from-kafka", "world")]
    assert records[1]["headers"] == [{"key": "h", "value": "1"}]


def test_idempotent_producer_survives_kill_9_without_duplicates(silt):
    create_topic(silt.bootstrap, "idem", 3)
    acked, errors = {}, []

    def report(err, msg):
        if err is None:
            acked[msg.value()] = (msg.partition(), msg.offset())
        else:
            errors.append(str(err))

    producer = Producer({
        "bootstrap.servers": silt.bootstrap,
        "enable.idempotence": True,
        "linger.ms": 5,
        "message.timeout.ms": 120000,
        "reconnect.backoff.max.ms": 500,
    })
    stop = threading.Event()

    def pump():
        i = 0
        while not stop.is_set():
            try:
                producer.produce("idem", key=str(i % 10).encode(), value=f"m{i}".encode(), on_delivery=report)
                i += 1
            except BufferError:
                pass
            producer.poll(0.001)

    t = threading.Thread(target=pump)
    t.start()
    deadline = time.time() + 30
    while len(acked) < 3000 and time.time() < deadline:
        time.sleep(0.05)
    silt.kill()
    time.sleep(1)
    silt.start()
    time.sleep(2)
    stop.set()
    t.join()
    assert producer.flush(120) == 0
    assert not errors, errors[:3]
    assert len(acked) >= 3000

    got = consume_kafka_python(silt.bootstrap, "idem", 3, len(acked))
    values = [m.value for msgs in got.values() for m in msgs]
    assert len(values) == len(set(values)), "a record was written twice"
    for value, (p, offset) in acked.items():
        msg = got[p][offset]
        assert msg.value == value, f"acked {value} at {p}@{offset} but found {msg.value}"
    assert sum(len(v) for v in got.values()) == len(acked)


def frame(api_key, version, correlation, body=b"", client=b"fuzz", tagged=False):
    header = struct.pack(">hhih", api_key, version, correlation, len(client)) + client
    if tagged:
        header += b"\x00"  # flexible header: no tagged fields
    payload = header + body
    return struct.pack(">i", len(payload)) + payload


def recv_exact(s, n):
    data = b""
    while len(data) < n:
        chunk = s.recv(n - len(data))
        assert chunk, "connection closed"
        data += chunk
    return data


def test_bad_frames_do_not_disturb_other_clients(silt):
    host, port = silt.bootstrap.split(":")
    create_topic(silt.bootstrap, "steady", 1)
    rng = random.Random(7)
    good = Producer({"bootstrap.servers": silt.bootstrap, "linger.ms": 0})
    sent = 0
    attacks = [
        struct.pack(">i", 2_000_000_000),                     # oversized frame
        struct.pack(">i", -5),                                # negative size
        struct.pack(">i", 100) + b"short",                    # truncated frame
        frame(9999, 0, 1),                                    # unknown API
        frame(0, 99, 1),                                      # unsupported Produce version
        frame(0, 9, 1, b"\xff" * 40),                         # malformed Produce body
        frame(3, 12, 1, bytes(rng.getrandbits(8) for _ in range(64))),  # random Metadata body
        frame(3, 1, 1, struct.pack(">i", 0x7FFFFFFF)),          # Metadata claiming 2^31-1 topics
        frame(19, 2, 1, struct.pack(">i", 0x7FFFFFF0) + b"\x00" * 16),  # CreateTopics, forged count
        frame(0, 8, 1, struct.pack(">hii", -1, 1, 30000) + struct.pack(">i", 0x7FFFFFFF)),  # Produce, forged topic count
    ] + [bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 300))) for _ in range(30)]
    for attack in attacks:
        with socket.create_connection((host, int(port)), timeout=5) as s:
            try:
                s.sendall(attack)
                s.shutdown(socket.SHUT_WR)
                s.settimeout(5)
                while s.recv(4096):
                    pass
            except OSError:
                pass
        good.produce("steady", value=f"ok-{sent}".encode(), partition=0)
        sent += 1
        good.poll(0)
    assert good.flush(30) == 0
    # An unsupported ApiVersions version gets an answer in the v0 layout, not a hang-up.
    with socket.create_connection((host, int(port)), timeout=5) as s:
        for tagged in (True, False):
            s.sendall(frame(18, 99, 42, tagged=tagged))
            size = struct.unpack(">i", recv_exact(s, 4))[0]
            body = recv_exact(s, size)
            correlation, error = struct.unpack(">ih", body[:6])
            assert (correlation, error) == (42, 35)
    got = consume_kafka_python(silt.bootstrap, "steady", 1, sent)[0]
    assert [m.value for m in got] == [f"ok-{i}".encode() for i in range(sent)]
    assert "panicked" not in silt.log()


def test_many_concurrent_connections_are_served(silt):
    host, port = silt.bootstrap.split(":")
    results = []

    def client(n):
        with socket.create_connection((host, int(port)), timeout=30) as s:
            for round_ in range(3):
                correlation = n * 10 + round_
                s.sendall(frame(18, 0, correlation))  # ApiVersions v0
                size = struct.unpack(">i", recv_exact(s, 4))[0]
                body = recv_exact(s, size)
                results.append(struct.unpack(">ih", body[:6]) == (correlation, 0))

    threads = [threading.Thread(target=client, args=(n,)) for n in range(200)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(results) == 600 and all(results)


def test_log_append_time_topics_are_stamped_by_the_broker(silt):
    create_topic(silt.bootstrap, "stamped", 1, {"message.timestamp.type": "LogAppendTime"})
    before = int(time.time() * 1000)
    produce_all(silt.bootstrap, "stamped", [(b"k", b"v", [], 1_000, 0)])
    after = int(time.time() * 1000)
    msg = consume_kafka_python(silt.bootstrap, "stamped", 1, 1)[0][0]
    assert msg.timestamp_type == 1, "LogAppendTime"
    assert before - 5 <= msg.timestamp <= after + 5, (before, msg.timestamp, after)


def test_kafkajs_admin_and_idempotent_producer(silt):
    script = Path(__file__).with_name("kafkajs_roundtrip.js")
    run = subprocess.run(["node", str(script), silt.bootstrap, "from-kafkajs", "1000"], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr + run.stdout
    assert json.loads(run.stdout.strip().splitlines()[-1]) == {"listed": True}
    got = consume_kafka_python(silt.bootstrap, "from-kafkajs", 2, 1000)
    msgs = [m for p in got.values() for m in p]
    assert len(msgs) == 1000
    for m in msgs:
        i = int(dict(m.headers)["n"])
        assert m.key == f"key-{i % 10}".encode()
        assert m.value == (None if i % 5 == 0 else f"value-{i}".encode())
        assert m.timestamp == 1_700_000_000_000 + i
    for p, records in got.items():
        assert [m.offset for m in records] == list(range(len(records)))


def test_kafkajs_reset_offsets_to_earliest_rereads_the_topic(silt):
    # kafkajs commits offset -2 for "earliest"; clients read a negative committed offset as
    # none, so the group starts again from its reset policy (here: the beginning).
    script = Path(__file__).with_name("kafkajs_reset_offsets.js")
    run = subprocess.run(["node", str(script), silt.bootstrap, "reset-me", "20"],
                         capture_output=True, text=True, timeout=180)
    assert run.returncode == 0, run.stderr + run.stdout
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["first"] == 20
    assert result["committed"] == ["20"]
    assert result["afterReset"] == ["-1"], result
    assert result["second"] == 20, result


def test_topics_with_a_manual_replica_assignment_are_created(silt):
    # Tools and test suites send replica assignments; on shared storage only the
    # partition count matters, the replicas are routing hints.
    admin = AdminClient({"bootstrap.servers": silt.bootstrap})
    futures = admin.create_topics([NewTopic("assigned", num_partitions=3, replication_factor=-1,
                                            replica_assignment=[[0], [0], [0]])])
    futures["assigned"].result(30)
    metadata = admin.list_topics("assigned", timeout=30)
    assert len(metadata.topics["assigned"].partitions) == 3
    admin.create_partitions([NewPartitions("assigned", 5, replica_assignment=[[0], [0]])])["assigned"].result(30)
    assert len(admin.list_topics("assigned", timeout=30).topics["assigned"].partitions) == 5
    # kafka-python sends the assignment too.
    client = KafkaAdminClient(bootstrap_servers=silt.bootstrap)
    try:
        client.create_topics([KNewTopic("assigned-kp", num_partitions=-1, replication_factor=-1,
                                        replica_assignments={0: [0], 1: [0]})])
        described = client.describe_topics(["assigned-kp"])
        assert len(described[0]["partitions"]) == 2
        # A gap in the numbering is refused, as Kafka refuses it, and nothing is created.
        with pytest.raises(Exception) as refused:
            client.create_topics([KNewTopic("gappy", num_partitions=-1, replication_factor=-1,
                                            replica_assignments={0: [0], 2: [0]})])
        assert "InvalidRequest" in repr(refused.value) or "42" in str(refused.value), refused.value
    finally:
        client.close()
    assert "gappy" not in admin.list_topics(timeout=30).topics


def test_describe_log_dirs_sizes_every_partition(silt):
    # Admin tools and consoles size topics with DescribeLogDirs.
    create_topic(silt.bootstrap, "sized", 2)
    produce_all(silt.bootstrap, "sized",
                [(b"k", b"v" * 1000 + bytes([i]), None, None, 0) for i in range(20)])
    client = KafkaAdminClient(bootstrap_servers=silt.bootstrap)
    try:
        response = client.describe_log_dirs()
    finally:
        client.close()
    # One answer per broker, one log directory: the object store.
    [broker] = response
    [log_dir] = broker["log_dirs"]
    assert log_dir["error_code"] == 0 and log_dir["log_dir"].endswith("objects"), log_dir
    [topic] = [t for t in log_dir["topics"] if t["name"] == "sized"]
    sizes = {p["partition_index"]: p["partition_size"] for p in topic["partitions"]}
    assert set(sizes) == {0, 1}
    # 20 records of 1 KB went to partition 0 (stored compressed: a few hundred bytes).
    assert sizes[0] > 100 and sizes[1] == 0, sizes
