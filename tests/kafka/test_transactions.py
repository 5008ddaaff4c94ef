"""Kafka transactions with confluent-kafka (librdkafka) against a real `silt dev`: commits
and aborts across partitions and topics, read_committed and read_uncommitted consumers,
the last stable offset, zombie fencing, and consume-transform-produce with the group's
offsets committed in the transaction."""

import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic


def create_topics(bootstrap, names, partitions):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for name, future in admin.create_topics([NewTopic(n, partitions, 1) for n in names]).items():
        future.result(30)


def read_all(bootstrap, partitions, isolation, seconds=8):
    """Every record of the (topic, partition) pairs from offset 0, as (topic, partition,
    offset, value), read with `isolation` (read_committed or read_uncommitted)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"reader-{isolation}-{time.time()}",
                         "isolation.level": isolation, "enable.auto.commit": False})
    consumer.assign([TopicPartition(t, p, 0) for t, p in partitions])
    got, deadline = [], time.time() + seconds
    while time.time() < deadline:
        msg = consumer.poll(0.3)
        if msg is not None and msg.error() is None:
            got.append((msg.topic(), msg.partition(), msg.offset(), msg.value()))
    consumer.close()
    return got


def transactional_producer(bootstrap, transactional_id, **config):
    producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": transactional_id,
                         "linger.ms": 5, **config})
    producer.init_transactions(30)
    return producer


def test_committed_and_aborted_transactions_across_partitions_and_topics(silt):
    create_topics(silt.bootstrap, ["tx-a", "tx-b"], 2)
    partitions = [(t, p) for t in ["tx-a", "tx-b"] for p in range(2)]
    producer = transactional_producer(silt.bootstrap, "tx-app")
    committed = []
    for n in range(6):
        producer.begin_transaction()
        for i in range(12):
            topic, partition = partitions[i % 4]
            value = f"txn{n}-{i}".encode()
            producer.produce(topic, value=value, partition=partition)
            if n % 2 == 0:
                committed.append((topic, partition, value))
        if n % 2 == 0:
            producer.commit_transaction(30)
        else:
            producer.flush(30)  # sent and written, then aborted
            producer.abort_transaction(30)

    seen = read_all(silt.bootstrap, partitions, "read_committed")
    assert sorted((t, p, v) for t, p, _, v in seen) == sorted(committed), "each committed record once"
    for topic, partition in partitions:
        mine = [(o, v) for t, p, o, v in seen if (t, p) == (topic, partition)]
        assert [v for _, v in mine] == [v for t, p, v in committed if (t, p) == (topic, partition)]
        offsets = [o for o, _ in mine]
        assert offsets == sorted(offsets)
    everything = read_all(silt.bootstrap, partitions, "read_uncommitted")
    assert len(everything) == 6 * 12, "read_uncommitted sees every data record, aborted ones too"
    # Markers occupy offsets: each of the 6 transactions left one in each partition.
    last = max(o for t, p, o, _ in everything if (t, p) == ("tx-a", 0))
    assert last == 6 * 3 + 5 - 1, last

    # The HTTP door serves committed records only: no marker, no aborted record.
    def http_values(topic, partition):
        url = f"{silt.http}/v1/topics/{topic}/partitions/{partition}/records?offset=0&limit=1000"
        with urllib.request.urlopen(url, timeout=30) as r:
            return [rec["value"].encode() for rec in json.load(r)["records"]]

    for topic, partition in partitions:
        assert http_values(topic, partition) == [v for t, p, v in committed if (t, p) == (topic, partition)]
    # ...and everything on request, the markers flagged.
    url = f"{silt.http}/v1/topics/tx-a/partitions/0/records?offset=0&limit=1000&isolation=read_uncommitted"
    with urllib.request.urlopen(url, timeout=30) as r:
        records = json.load(r)["records"]
    markers = [rec["marker"] for rec in records if "marker" in rec]
    assert markers == ["commit", "abort"] * 3, markers
    assert len(records) == 6 * 3 + 6

    # Compaction merges the committed records into the lake and drops the aborted ones
    # (as a compacted Kafka log would): read_committed sees exactly the same, at the same
    # offsets; read_uncommitted no longer sees aborted records; markers keep their offsets.
    req = urllib.request.Request(f"{silt.http}/v1/admin/compact?min_age=0s", method="POST")
    with urllib.request.urlopen(req, timeout=60) as r:
        assert json.load(r)["errors"] == []
    assert sorted(read_all(silt.bootstrap, partitions, "read_committed")) == sorted(seen)
    assert sorted(read_all(silt.bootstrap, partitions, "read_uncommitted")) == sorted(seen)
    with urllib.request.urlopen(url, timeout=30) as r:
        records = json.load(r)["records"]
    assert [rec["marker"] for rec in records if "marker" in rec] == ["commit", "abort"] * 3
    assert len(records) == 3 * 3 + 6  # the committed transactions' records and every marker


def test_an_open_transaction_holds_read_committed_consumers_at_its_first_offset(silt):
    create_topics(silt.bootstrap, ["tx-open"], 1)
    plain = Producer({"bootstrap.servers": silt.bootstrap})
    for i in range(3):
        plain.produce("tx-open", value=f"before-{i}".encode(), partition=0)
    plain.flush(30)
    producer = transactional_producer(silt.bootstrap, "tx-open-app")
    time.sleep(0.01)
    opened_ms = int(time.time() * 1000)
    producer.begin_transaction()
    for i in range(5):
        producer.produce("tx-open", value=f"open-{i}".encode(), partition=0)
    producer.flush(30)
    for i in range(2):
        plain.produce("tx-open", value=f"after-{i}".encode(), partition=0)
    plain.flush(30)

    consumer = Consumer({"bootstrap.servers": silt.bootstrap, "group.id": "lso-probe",
                         "isolation.level": "read_committed"})
    low, high = consumer.get_watermark_offsets(TopicPartition("tx-open", 0), timeout=10)
    assert high == 3, "read_committed's end is the last stable offset"
    # A lookup by time finds nothing read_committed may read yet; read_uncommitted finds
    # the open transaction's first record.
    by_time = consumer.offsets_for_times([TopicPartition("tx-open", 0, opened_ms)], timeout=10)
    assert by_time[0].offset == -1, by_time
    consumer.close()
    uncommitted = Consumer({"bootstrap.servers": silt.bootstrap, "group.id": "lso-probe-u",
                            "isolation.level": "read_uncommitted"})
    by_time = uncommitted.offsets_for_times([TopicPartition("tx-open", 0, opened_ms)], timeout=10)
    assert by_time[0].offset == 3, by_time
    uncommitted.close()
    values = [v for *_, v in read_all(silt.bootstrap, [("tx-open", 0)], "read_committed", 4)]
    assert values == [f"before-{i}".encode() for i in range(3)]

    producer.commit_transaction(30)
    values = [v for *_, v in read_all(silt.bootstrap, [("tx-open", 0)], "read_committed", 6)]
    assert values == ([f"before-{i}".encode() for i in range(3)]
                      + [f"open-{i}".encode() for i in range(5)]
                      + [f"after-{i}".encode() for i in range(2)])


def test_a_second_producer_with_the_same_id_fences_the_first_and_aborts_its_transaction(silt):
    create_topics(silt.bootstrap, ["tx-zombie"], 1)
    zombie = transactional_producer(silt.bootstrap, "tx-fenced")
    zombie.begin_transaction()
    zombie.produce("tx-zombie", value=b"from the zombie", partition=0)
    zombie.flush(30)
    successor = transactional_producer(silt.bootstrap, "tx-fenced")
    successor.begin_transaction()
    successor.produce("tx-zombie", value=b"from the successor", partition=0)
    successor.commit_transaction(30)
    with pytest.raises(KafkaException) as raised:
        zombie.commit_transaction(30)
    error = raised.value.args[0]
    assert error.fatal() or "fenced" in error.str().lower(), error
    values = [v for *_, v in read_all(silt.bootstrap, [("tx-zombie", 0)], "read_committed")]
    assert values == [b"from the successor"], "the zombie's transaction was aborted"


def test_consume_transform_produce_commits_the_input_offsets_with_the_output(silt):
    create_topics(silt.bootstrap, ["ctp-in", "ctp-out"], 1)
    source = Producer({"bootstrap.servers": silt.bootstrap})
    for i in range(20):
        source.produce("ctp-in", value=str(i).encode(), partition=0)
    source.flush(30)

    def run(abort_after=None):
        consumer = Consumer({"bootstrap.servers": silt.bootstrap, "group.id": "ctp",
                             "auto.offset.reset": "earliest", "enable.auto.commit": False,
                             "isolation.level": "read_committed"})
        consumer.assign([TopicPartition("ctp-in", 0)])
        producer = transactional_producer(silt.bootstrap, "ctp-app")
        done = 0
        deadline = time.time() + 30
        while time.time() < deadline:
            msgs = [m for m in consumer.consume(5, timeout=1) if m.error() is None]
            if not msgs:
                if done:
                    break
                continue
            producer.begin_transaction()
            for m in msgs:
                producer.produce("ctp-out", value=b"x" + m.value(), partition=0)
            producer.send_offsets_to_transaction(
                [TopicPartition("ctp-in", 0, msgs[-1].offset() + 1)],
                consumer.consumer_group_metadata(), 30)
            if abort_after is not None and done + len(msgs) > abort_after:
                producer.abort_transaction(30)
                consumer.close()
                return
            producer.commit_transaction(30)
            done += len(msgs)
        consumer.close()

    run(abort_after=8)  # the application gives up mid-way: that batch is aborted
    run()               # restarted, it goes on from the committed offsets
    out = [v for *_, v in read_all(silt.bootstrap, [("ctp-out", 0)], "read_committed")]
    assert out == [b"x" + str(i).encode() for i in range(20)], "each input exactly once"
    checker = Consumer({"bootstrap.servers": silt.bootstrap, "group.id": "ctp"})
    committed = checker.committed([TopicPartition("ctp-in", 0)], timeout=10)
    checker.close()
    assert committed[0].offset == 20


def test_consume_transform_produce_is_exactly_once_across_kills_of_the_app_and_of_silt(silt):
    """The application (a group member, ctp_app.py) is killed -9 twice and Silt once, at
    whatever point they are; each time it is restarted. At the end the output holds each
    input exactly once and the group's offsets are at the end of the input. An app that
    makes no progress for 20 s is killed and restarted too, as a liveness probe would: a
    librdkafka producer whose broker dies between EndTxn's answer and the commit's
    acknowledgement can hang in commit_transaction past its timeout."""
    create_topics(silt.bootstrap, ["ctpk-in", "ctpk-out"], 2)
    source = Producer({"bootstrap.servers": silt.bootstrap})
    inputs = [f"{i}".encode() for i in range(300)]
    for i, v in enumerate(inputs):
        source.produce("ctpk-in", value=v, partition=i % 2)
    assert source.flush(30) == 0
    checker = Consumer({"bootstrap.servers": silt.bootstrap, "group.id": "ctpk"})

    def committed():
        try:
            offsets = checker.committed([TopicPartition("ctpk-in", p) for p in range(2)], timeout=5)
        except KafkaException:
            return 0
        return sum(max(tp.offset, 0) for tp in offsets)

    app_log = open(Path(silt.data_dir) / "ctp_app.log", "ab")

    def launch():
        return subprocess.Popen([sys.executable, str(Path(__file__).parent / "ctp_app.py"),
                                 silt.bootstrap], stdout=app_log, stderr=app_log)

    app, restarts, kills = launch(), 0, []
    plan = [(60, "app"), (130, "silt"), (200, "app")]
    deadline = time.time() + 240
    progress, moved = 0, time.time()
    while progress < len(inputs) and time.time() < deadline:
        now = committed()
        if now != progress:
            progress, moved = now, time.time()
        elif time.time() - moved > 20:
            app.kill()  # the liveness probe
            moved = time.time()
        if plan and progress >= plan[0][0]:
            _, what = plan.pop(0)
            kills.append(what)
            if what == "app":
                app.kill()
                app.wait()
            else:
                silt.kill()
                silt.start()
        if app.poll() is not None:
            app, restarts = launch(), restarts + 1
        time.sleep(0.2)
    app.kill()
    app.wait()
    progress = committed()
    checker.close()
    tail = (Path(silt.data_dir) / "ctp_app.log").read_text(errors="replace")[-3000:]
    assert kills == ["app", "silt", "app"] and progress == len(inputs), (kills, progress, restarts, tail)
    out = read_all(silt.bootstrap, [("ctpk-out", 0), ("ctpk-out", 1)], "read_committed", 10)
    values = sorted(v for *_, v in out)
    assert values == sorted(b"x" + v for v in inputs), (len(values), len(set(values)))
    final = Consumer({"bootstrap.servers": silt.bootstrap, "group.id": "ctpk"})
    offsets = final.committed([TopicPartition("ctpk-in", p) for p in range(2)], timeout=10)
    final.close()
    assert [tp.offset for tp in offsets] == [150, 150], offsets
    # Each partition's output in input order.
    for p in range(2):
        mine = [v for t, q, _, v in sorted(out, key=lambda r: (r[1], r[2])) if q == p]
        assert mine == [b"x" + v for i, v in enumerate(inputs) if i % 2 == p]


def test_offsets_sent_for_a_member_of_an_old_generation_are_refused(silt):
    """KIP-447: after a rebalance, a zombie's offsets (sent with the group metadata of the
    generation it was in) must not commit; the transaction is abortable."""
    from confluent_kafka import KafkaError
    create_topics(silt.bootstrap, ["zg-in", "zg-out"], 2)
    conf = {"bootstrap.servers": silt.bootstrap, "group.id": "zombie-gen", "session.timeout.ms": 6000,
            "heartbeat.interval.ms": 300, "auto.offset.reset": "earliest", "enable.auto.commit": False}

    def settle(consumers, seconds=30):
        deadline = time.time() + seconds
        while time.time() < deadline:
            for c in consumers:
                c.poll(0.2)
            if all(c.assignment() for c in consumers):
                return
        raise AssertionError("the group did not settle")

    first = Consumer(conf)
    first.subscribe(["zg-in"])
    settle([first])
    stale = first.consumer_group_metadata()
    second = Consumer(conf)
    second.subscribe(["zg-in"])
    settle([first, second])
    time.sleep(1)
    settle([first, second])

    producer = transactional_producer(silt.bootstrap, "zombie-gen-app")
    producer.begin_transaction()
    producer.produce("zg-out", value=b"zombie", partition=0)
    with pytest.raises(KafkaException) as refused:
        producer.send_offsets_to_transaction([TopicPartition("zg-in", 0, 1)], stale, 30)
    error = refused.value.args[0]
    assert error.code() in (KafkaError.ILLEGAL_GENERATION, KafkaError.UNKNOWN_MEMBER_ID), error
    assert error.txn_requires_abort(), error
    producer.abort_transaction(30)

    # The member's current generation commits.
    owner = first if any(tp.partition == 0 for tp in first.assignment()) else second
    producer.begin_transaction()
    producer.produce("zg-out", value=b"current", partition=0)
    producer.send_offsets_to_transaction([TopicPartition("zg-in", 0, 1)],
                                         owner.consumer_group_metadata(), 30)
    producer.commit_transaction(30)
    committed = owner.committed([TopicPartition("zg-in", 0)], timeout=10)
    assert committed[0].offset == 1, committed
    first.close()
    second.close()
    out = [v for *_, v in read_all(silt.bootstrap, [("zg-out", 0)], "read_committed", 4)]
    assert out == [b"current"]


def test_a_producer_killed_mid_transaction_is_aborted_after_its_timeout(silt):
    create_topics(silt.bootstrap, ["tx-killed"], 1)
    script = (
        "import os, sys\n"
        "from confluent_kafka import Producer\n"
        "p = Producer({'bootstrap.servers': sys.argv[1], 'transactional.id': 'tx-killed-app',"
        " 'transaction.timeout.ms': 3000})\n"
        "p.init_transactions(30)\n"
        "p.begin_transaction()\n"
        "for i in range(5):\n"
        "    p.produce('tx-killed', value=b'never committed', partition=0)\n"
        "p.flush(30)\n"
        "os._exit(9)\n"
    )
    run = subprocess.run([sys.executable, "-c", script, silt.bootstrap], timeout=60)
    assert run.returncode == 9
    plain = Producer({"bootstrap.servers": silt.bootstrap})
    plain.produce("tx-killed", value=b"after", partition=0)
    plain.flush(30)
    # Held at the dead transaction's first offset until the coordinator aborts it (its
    # 3 s timeout, found within a scan interval); then the later record is readable.
    deadline = time.time() + 30
    values = []
    while time.time() < deadline:
        values = [v for *_, v in read_all(silt.bootstrap, [("tx-killed", 0)], "read_committed", 2)]
        if values:
            break
    assert values == [b"after"], values


def test_kafkajs_transactions_commit_abort_and_send_offsets(silt):
    script = Path(__file__).with_name("kafkajs_transactions.js")
    run = subprocess.run(["node", str(script), silt.bootstrap, "tx-kafkajs"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr + run.stdout
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["seen"] == ["kept-1", "kept-2", "kept-3"], result
    assert result["committedOffset"] == "2", "the aborted transaction's offsets were dropped"


def test_kafka_python_transactional_producer(silt):
    from kafka import KafkaConsumer, KafkaProducer
    from kafka import TopicPartition as KTopicPartition
    create_topics(silt.bootstrap, ["tx-kafka-python"], 1)
    producer = KafkaProducer(bootstrap_servers=silt.bootstrap, transactional_id="tx-kp")
    producer.init_transactions()
    producer.begin_transaction()
    producer.send("tx-kafka-python", b"kept", partition=0)
    producer.commit_transaction()
    producer.begin_transaction()
    producer.send("tx-kafka-python", b"dropped", partition=0)
    producer.flush()
    producer.abort_transaction()
    producer.close()
    consumer = KafkaConsumer(bootstrap_servers=silt.bootstrap, isolation_level="read_committed",
                             auto_offset_reset="earliest", consumer_timeout_ms=5000)
    tp = KTopicPartition("tx-kafka-python", 0)
    consumer.assign([tp])
    consumer.seek_to_beginning(tp)
    values = [m.value for m in consumer]
    consumer.close()
    assert values == [b"kept"], values


def test_admin_tools_describe_and_list_transactions(silt):
    from kafka.admin import KafkaAdminClient
    from kafka import TopicPartition as KTopicPartition
    create_topics(silt.bootstrap, ["tx-admin"], 2)
    producer = transactional_producer(silt.bootstrap, "tx-admin-open",
                                      **{"transaction.timeout.ms": 60000})
    producer.begin_transaction()
    producer.produce("tx-admin", value=b"open", partition=1)
    producer.flush(30)
    idle = transactional_producer(silt.bootstrap, "tx-admin-idle")
    admin = KafkaAdminClient(bootstrap_servers=silt.bootstrap)
    try:
        def listing(**filters):
            # One listing per broker; every node coordinates every id, so each answers all.
            per_broker = admin.list_transactions(**filters)
            return [t for listings in per_broker.values() for t in listings]

        listed = {t.transactional_id: t.state.name for t in listing()}
        assert listed["tx-admin-open"] == "ONGOING" and listed["tx-admin-idle"] == "EMPTY", listed
        ongoing = listing(state_filters=["Ongoing"])
        assert [t.transactional_id for t in ongoing] == ["tx-admin-open"]
        described = admin.describe_transactions(["tx-admin-open"])["tx-admin-open"]
        assert described.topic_partitions == {KTopicPartition("tx-admin", 1)}
        assert described.transaction_timeout_ms == 60000
        assert described.transaction_start_time_ms > 0
    finally:
        admin.close()
    producer.abort_transaction(30)
    del idle
