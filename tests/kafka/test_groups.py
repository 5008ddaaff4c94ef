"""Consumer groups with real consumers: confluent-kafka (librdkafka), kafka-python, kcat -G."""

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from kafka import KafkaConsumer


def make_topic(bootstrap, name, partitions, records):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(name, partitions, 1)])[name].result(30)
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    for i in range(records):
        producer.produce(name, key=str(i).encode(), value=f"r{i}".encode(), partition=i % partitions)
    assert producer.flush(30) == 0


def consumer(bootstrap, group, **extra):
    config = {
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "auto.offset.reset": "earliest",
        **extra,
    }
    if extra.get("group.protocol") != "consumer":
        # With KIP-848 the coordinator sets these; clients may not.
        config.setdefault("session.timeout.ms", 6000)
        config.setdefault("heartbeat.interval.ms", 500)
    return Consumer(config)


def wait_for(predicate, timeout=30, step=0.1):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return False


class Member(threading.Thread):
    """A confluent-kafka group member polling in a thread, recording what it reads."""

    def __init__(self, bootstrap, group, topic, **extra):
        super().__init__(daemon=True)
        self.c = consumer(bootstrap, group, **extra)
        self.c.subscribe([topic])
        self.records = []
        self.assignment = []
        self.stop = threading.Event()
        self.closed = threading.Event()
        self.lock = threading.Lock()

    def run(self):
        while not self.stop.is_set():
            m = self.c.poll(0.1)
            with self.lock:
                self.assignment = sorted(tp.partition for tp in self.c.assignment())
                if m is not None and not m.error():
                    self.records.append((m.partition(), m.offset(), m.value()))
        self.c.close()
        self.closed.set()

    def owned(self):
        with self.lock:
            return list(self.assignment)

    def close(self):
        self.stop.set()
        self.closed.wait(30)


def test_three_members_share_six_partitions_and_read_everything_once(silt):
    make_topic(silt.bootstrap, "g6", 6, 3000)
    members = [Member(silt.bootstrap, "readers", "g6") for _ in range(3)]
    for m in members:
        m.start()
    assert wait_for(lambda: sum(len(m.records) for m in members) >= 3000), [len(m.records) for m in members]
    owned = [m.owned() for m in members]
    assert sorted(p for o in owned for p in o) == list(range(6)), owned
    assert all(len(o) == 2 for o in owned), owned
    everything = [r for m in members for r in m.records]
    assert len(everything) == 3000 and len(set(everything)) == 3000
    for m in members:
        m.close()


def test_a_closing_member_hands_over_and_a_killed_one_after_its_session_timeout(silt):
    make_topic(silt.bootstrap, "handover", 6, 60)
    here = [Member(silt.bootstrap, "handover-g", "handover") for _ in range(2)]
    for m in here:
        m.start()
    script = Path(__file__).with_name("group_member.py")
    killed = subprocess.Popen([sys.executable, str(script), silt.bootstrap, "handover-g", "handover"], stdout=subprocess.PIPE, text=True)
    try:
        # Three members, two partitions each.
        assert wait_for(lambda: sorted(len(m.owned()) for m in here) == [2, 2]), [m.owned() for m in here]
        line = killed.stdout.readline()
        while json.loads(line) == []:
            line = killed.stdout.readline()
        assert len(json.loads(line)) == 2
        # SIGKILL: no LeaveGroup. Its partitions move only after its session timeout (6 s).
        killed.kill()
        killed.wait()
        started = time.time()
        assert wait_for(lambda: sorted(p for m in here for p in m.owned()) == list(range(6)), timeout=30)
        waited = time.time() - started
        assert waited >= 4, f"partitions moved after {waited:.1f}s, before the session timeout"
        # A clean close (LeaveGroup): the other takes over at once, in one rebalance.
        here[1].close()
        started = time.time()
        assert wait_for(lambda: here[0].owned() == list(range(6)), timeout=20), here[0].owned()
        assert time.time() - started < 5
    finally:
        if killed.poll() is None:
            killed.kill()
        for m in here:
            m.close()


def test_committed_offsets_survive_and_consumption_resumes_without_gaps(silt):
    make_topic(silt.bootstrap, "resume", 3, 300)
    first = consumer(silt.bootstrap, "resumers", **{"enable.auto.commit": False})
    first.subscribe(["resume"])
    seen = []
    while len(seen) < 150:
        m = first.poll(1)
        if m is not None and not m.error():
            seen.append((m.partition(), m.offset()))
    first.commit(asynchronous=False)
    # A partition the first member never read from has no committed offset (negative).
    committed = {tp.partition: max(tp.offset, 0) for tp in first.committed([TopicPartition("resume", p) for p in range(3)], timeout=30)}
    assert sum(committed.values()) >= 150
    first.close()
    # Committed offsets are durable: restart the node in between.
    silt.stop()
    silt.start()
    # A new process resumes from the committed offsets: nothing skipped, nothing before them.
    second = consumer(silt.bootstrap, "resumers")
    second.subscribe(["resume"])
    rest = []
    deadline = time.time() + 30
    while time.time() < deadline and len(rest) < 300 - sum(committed.values()):
        m = second.poll(0.5)
        if m is not None and not m.error():
            rest.append((m.partition(), m.offset()))
    second.close()
    for p in range(3):
        offsets = sorted(o for q, o in rest if q == p)
        assert offsets == list(range(committed[p], 100)), (p, committed[p], offsets[:5])
    # The group's progress through the HTTP API: the second member auto-committed on close.
    import urllib.request
    with urllib.request.urlopen(f"{silt.http}/v1/groups/resumers/offsets", timeout=10) as r:
        body = json.load(r)
    assert {o["partition"] for o in body["offsets"]} == {0, 1, 2}
    assert body["total_lag"] == 0


def test_cooperative_sticky_members_keep_their_partitions(silt):
    make_topic(silt.bootstrap, "sticky", 6, 60)
    opts = {"partition.assignment.strategy": "cooperative-sticky"}
    a = Member(silt.bootstrap, "sticky-g", "sticky", **opts)
    b = Member(silt.bootstrap, "sticky-g", "sticky", **opts)
    a.start()
    b.start()
    assert wait_for(lambda: sorted(len(m.owned()) for m in (a, b)) == [3, 3])
    before = {id(m): set(m.owned()) for m in (a, b)}
    c = Member(silt.bootstrap, "sticky-g", "sticky", **opts)
    c.start()
    assert wait_for(lambda: sorted(len(m.owned()) for m in (a, b, c)) == [2, 2, 2], timeout=40), [m.owned() for m in (a, b, c)]
    # Incremental: the old members kept what they still own (only gave partitions away).
    for m in (a, b):
        assert set(m.owned()) <= before[id(m)]
    for m in (a, b, c):
        m.close()


def test_kafka_python_and_kcat_group_consumers(silt):
    make_topic(silt.bootstrap, "others", 2, 200)
    kp = KafkaConsumer("others", bootstrap_servers=silt.bootstrap, group_id="kp-group", auto_offset_reset="earliest", consumer_timeout_ms=20000)
    values = []
    for msg in kp:
        values.append(msg.value)
        if len(values) >= 200:
            break
    kp.commit()
    kp.close()
    assert sorted(values) == sorted(f"r{i}".encode() for i in range(200))

    out = subprocess.run(
        ["kcat", "-b", silt.bootstrap, "-G", "kcat-group", "-o", "beginning", "-e", "-f", "%s\\n", "others"],
        capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert sorted(out.stdout.split()) == sorted(f"r{i}" for i in range(200))

    admin = AdminClient({"bootstrap.servers": silt.bootstrap})
    listed = {g.group_id for g in admin.list_consumer_groups().result(30).valid}
    assert {"kp-group", "kcat-group"} <= listed
    described = admin.describe_consumer_groups(["kp-group"])["kp-group"].result(30)
    assert described.state.name == "EMPTY"


def test_silt_groups_cli_shows_members_and_live_lag(silt):
    make_topic(silt.bootstrap, "cli-topic", 2, 100)
    c = consumer(silt.bootstrap, "cli-group", **{"enable.auto.commit": False, "client.id": "cli-reader"})
    c.subscribe(["cli-topic"])
    read = 0
    deadline = time.time() + 30
    while read < 100 and time.time() < deadline:
        m = c.poll(0.5)
        if m is not None and not m.error():
            read += 1
    c.commit(asynchronous=False)
    producer = Producer({"bootstrap.servers": silt.bootstrap})
    for i in range(25):
        producer.produce("cli-topic", value=b"more", partition=i % 2)
    producer.flush(30)
    binary = __import__("conftest").ROOT / "target/debug/silt"
    binary = __import__("os").environ.get("E2E_SILT_BIN", str(binary))
    listed = subprocess.run([binary, "groups", "list", "--url", silt.http], capture_output=True, text=True, timeout=30)
    assert listed.returncode == 0, listed.stderr
    assert any(line.split()[:2] == ["cli-group", "Stable"] for line in listed.stdout.splitlines()), listed.stdout
    described = subprocess.run([binary, "groups", "describe", "cli-group", "--url", silt.http], capture_output=True, text=True, timeout=30)
    assert described.returncode == 0, described.stderr
    out = described.stdout
    assert "state Stable" in out and "total lag 25" in out, out
    assert "cli-reader" in out and "cli-topic[0,1]" in out, out
    c.close()


def test_kip848_members_share_partitions_and_resume_from_commits(silt):
    make_topic(silt.bootstrap, "g848", 6, 3000)
    opts = {"group.protocol": "consumer"}
    members = [Member(silt.bootstrap, "new-protocol", "g848", **opts) for _ in range(3)]
    for m in members:
        m.start()
    assert wait_for(lambda: sum(len(m.records) for m in members) >= 3000), [len(m.records) for m in members]
    # Members may join after the first one has read everything: the assignment converges
    # through heartbeats (revoke, then hand over).
    assert wait_for(lambda: sorted(len(m.owned()) for m in members) == [2, 2, 2], timeout=30), [m.owned() for m in members]
    owned = [m.owned() for m in members]
    assert sorted(p for o in owned for p in o) == list(range(6)), owned
    everything = [r for m in members for r in m.records]
    assert len(everything) == 3000 and len(set(everything)) == 3000

    # The coordinator's view, through the HTTP API: a KIP-848 group with three members.
    import urllib.request
    with urllib.request.urlopen(f"{silt.http}/v1/groups/new-protocol", timeout=10) as r:
        body = json.load(r)
    assert body["protocol_type"] == "consumer" and body["protocol"] == "uniform"
    assert sorted(p for m in body["members"] for a in m["assignment"] for p in a["partitions"]) == list(range(6))

    # One member leaves: the other two take its partitions over, incrementally.
    members[2].close()
    assert wait_for(lambda: sorted(p for m in members[:2] for p in m.owned()) == list(range(6)), timeout=30)
    for m in members[:2]:
        m.close()
    # Commits were made (auto commit on close): a new member resumes without re-reading.
    late = Member(silt.bootstrap, "new-protocol", "g848", **opts)
    late.start()
    time.sleep(5)
    late.close()
    assert late.records == [], f"re-read {len(late.records)} committed records"
