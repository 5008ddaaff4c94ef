"""The nemesis: a cluster under load while a seeded adversary breaks it, then a checker.

A cluster of real processes (PostgreSQL, the S3 server, two metadata processes, three
ingest/reader nodes, one of them also the compactor, every node's object store wrapped in
fault injection) takes idempotent producers writing numbered records to several topics and
a consumer group committing as it reads. Meanwhile the nemesis, from a seed, kill -9s and
restarts random nodes and the active metadata process, restarts PostgreSQL, switches
object-store faults on and off, and runs compaction passes. Then it heals everything and
checks: every acknowledged record present exactly once, offsets dense per partition,
nothing visible that was never sent, committed group offsets within the high watermark,
every record readable (so every object the index references exists). Transactional
producers write to their own topic meanwhile, committing most transactions and aborting
some; a read_committed consumer must then see no aborted record, every committed
transaction whole and once, and a transaction whose end failed whole or not at all.

Run it alone (after scripts/test has set up PostgreSQL and the S3 server, or with the
E2E_* variables pointing at your own):

    .venv/bin/python tests/kafka/nemesis.py --duration 300 --seed 7

CI runs a short seeded version (tests/kafka/test_nemesis.py).
"""

import argparse
from collections import Counter
import json
import os
import random
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from cluster import Cluster, http_json, restart_postgres

TOPICS = {"orders": 4, "clicks": 3}
# Written by transactional producers only, read with read_committed (markers leave
# offset gaps, so the dense-offset check of TOPICS does not apply).
TXN_TOPIC, TXN_PARTITIONS, TXN_RECORDS = "payments", 3, 6
# Retention runs on "clicks" in every compaction pass: its log start moves while the
# nemesis breaks things, and only records below it may be missing.
TOPIC_CONFIGS = {"clicks": {"retention.bytes": "16384"}}


class Writer:
    """An idempotent producer writing `<name>-<n>` values to every topic, round robin."""

    def __init__(self, bootstrap, name):
        self.producer = Producer({
            "bootstrap.servers": bootstrap,
            "enable.idempotence": True,
            "linger.ms": 5,
            "message.timeout.ms": 300000,
            "topic.metadata.refresh.interval.ms": 1000,
            "retry.backoff.ms": 100,
            "reconnect.backoff.max.ms": 1000,
            # NEMESIS_CLIENT_DEBUG=eos shows the producers' view (epoch bumps, retries).
            **({"debug": os.environ["NEMESIS_CLIENT_DEBUG"]}
               if os.environ.get("NEMESIS_CLIENT_DEBUG") else {}),
        })
        self.name = name
        self.sent, self.acked, self.failed = set(), {}, []
        self.running = True
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def report(self, err, msg):
        if err is None:
            self.acked[(msg.topic(), msg.value().decode())] = (msg.partition(), msg.offset())
        else:
            self.failed.append((msg.topic(), msg.value().decode(), str(err)))

    def run(self):
        n = 0
        topics = sorted(TOPICS)
        while self.running:
            topic = topics[n % len(topics)]
            value = f"{self.name}-{n}"
            try:
                self.producer.produce(topic, value=value.encode(), on_delivery=self.report)
                self.sent.add((topic, value))
                n += 1
            except BufferError:
                pass
            self.producer.poll(0.005)

    def finish(self, timeout):
        self.running = False
        self.thread.join()
        return self.producer.flush(timeout)


class TxnWriter:
    """A transactional producer writing transactions of TXN_RECORDS records `<name>-<t>-<i>`
    over TXN_TOPIC's partitions, committing most and aborting some (seeded). A transaction
    whose end raised is of unknown outcome: all of it or none may be visible."""

    def __init__(self, bootstrap, name, seed):
        self.bootstrap, self.name = bootstrap, name
        self.rng = random.Random(seed)
        self.committed, self.aborted, self.unknown = set(), set(), set()
        self.restarts = 0
        self.running = True
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def make(self):
        while self.running:
            try:
                producer = Producer({
                    "bootstrap.servers": self.bootstrap, "transactional.id": f"nemesis-{self.name}",
                    "linger.ms": 5, "transaction.timeout.ms": 20000,
                    "message.timeout.ms": 19000, "retry.backoff.ms": 100,
                    "reconnect.backoff.max.ms": 1000,
                })
                producer.init_transactions(60)
                return producer
            except KafkaException:
                time.sleep(1)
        return None

    def run(self):
        producer = self.make()
        n = 0
        while self.running and producer is not None:
            txn = f"{self.name}-{n}"
            n += 1
            commit = self.rng.random() < 0.75
            try:
                producer.begin_transaction()
                for i in range(TXN_RECORDS):
                    producer.produce(TXN_TOPIC, value=f"{txn}-{i}".encode(),
                                     partition=i % TXN_PARTITIONS)
                if commit:
                    producer.commit_transaction(60)
                    self.committed.add(txn)
                else:
                    producer.flush(60)
                    producer.abort_transaction(60)
                    self.aborted.add(txn)
            except KafkaException as e:
                self.unknown.add(txn)
                error = e.args[0]
                try:
                    if error.fatal():
                        raise KafkaException(error)
                    producer.abort_transaction(60)
                except KafkaException:
                    # Start over: InitProducerId aborts whatever this producer left open.
                    self.restarts += 1
                    producer = self.make()

    def finish(self):
        self.running = False
        self.thread.join(300)


def read_committed(bootstrap, topic, partitions):
    """Every value of `topic` a read_committed consumer sees from the start, read until its
    position in every partition reaches the last stable offset (a node just restarted by
    the heal may take a while to answer: a quiet period alone could end before the first
    record)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"nemesis-check-{time.time()}",
                         "isolation.level": "read_committed", "enable.auto.commit": False})
    wanted = [TopicPartition(topic, p, 0) for p in range(partitions)]
    consumer.assign(wanted)
    values, errors, ends = [], Counter(), None
    deadline = time.time() + 180
    while time.time() < deadline:
        msg = consumer.poll(0.5)
        if msg is not None and msg.error() is None:
            values.append(msg.value().decode())
            continue
        if msg is not None:
            errors[str(msg.error())] += 1
        try:
            if ends is None:
                ends = [consumer.get_watermark_offsets(tp, timeout=5)[1] for tp in wanted]
            positions = [tp.offset for tp in consumer.position(wanted)]
        except KafkaException as e:
            errors[str(e)] += 1
            continue
        if all(p >= end for p, end in zip(positions, ends)):
            break
    else:
        print(f"read_committed of {topic}: did not reach {ends} by the deadline", flush=True)
    consumer.close()
    if errors:
        print(f"read_committed of {topic}: errors {dict(errors)}", flush=True)
    return values


class Reader:
    """A consumer group member reading every topic and committing automatically."""

    def __init__(self, bootstrap, group):
        self.consumer = Consumer({
            "bootstrap.servers": bootstrap, "group.id": group,
            "auto.offset.reset": "earliest", "enable.auto.commit": True,
            "auto.commit.interval.ms": 500, "session.timeout.ms": 6000,
        })
        self.consumed = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        self.consumer.subscribe(sorted(TOPICS))
        while not self.stop.is_set():
            msg = self.consumer.poll(0.2)
            if msg is not None and msg.error() is None:
                self.consumed += 1
        self.consumer.close()

    def finish(self):
        self.stop.set()
        self.thread.join(60)


def post(url, timeout=120):
    req = urllib.request.Request(url, data=b"", method="POST")
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read())


def read_partition(node, topic, partition):
    """[(offset, value)] of one partition from its log start to its high watermark, and the
    log start and high watermark."""
    detail = http_json(f"{node.http}/v1/topics/{topic}", timeout=60)
    log_start = detail["partitions"][partition]["earliest_offset"]
    out, offset = [], log_start
    while True:
        page = http_json(f"{node.http}/v1/topics/{topic}/partitions/{partition}/records"
                         f"?offset={offset}&limit=10000", timeout=120)
        out.extend((r["offset"], r["value"]) for r in page["records"])
        offset = page["next_offset"]
        if offset >= page["high_watermark"]:
            return out, log_start, page["high_watermark"]


class Nemesis:
    def __init__(self, cluster, seed, log):
        self.cluster = cluster
        self.rng = random.Random(seed)
        self.log = log
        self.counts = {"node kills": 0, "metadata kills": 0, "postgres restarts": 0,
                       "fault switches": 0, "compaction passes": 0, "failed passes": 0,
                       "lake files written": 0}
        self.faulty = set()
        self.pass_thread = None

    def step(self):
        action = self.rng.choice(["kill node", "kill node", "kill metadata", "restart postgres",
                                  "faults", "faults", "compact"])
        if action == "kill node":
            node = self.rng.choice(self.cluster.nodes)
            self.log(f"nemesis: kill -9 {node.name}")
            node.kill()
            self.counts["node kills"] += 1
            time.sleep(self.rng.uniform(0.5, 3))
            node.start()
            node.wait_ready(timeout=60)
            self.faulty.add(node.name)  # a node starts with its store faults on
        elif action == "kill metadata":
            active = self.cluster.wait_for_active(timeout=60)
            self.log(f"nemesis: kill -9 the active metadata process {active.name}")
            active.kill()
            self.counts["metadata kills"] += 1
            self.cluster.wait_for_active(timeout=60)
            time.sleep(self.rng.uniform(0.5, 2))
            active.start()
        elif action == "restart postgres":
            self.log("nemesis: restart PostgreSQL")
            restart_postgres()
            self.counts["postgres restarts"] += 1
        elif action == "faults":
            node = self.rng.choice(self.cluster.nodes)
            on = node.name not in self.faulty
            self.switch(node, on)
        elif action == "compact":
            if self.pass_thread is not None and self.pass_thread.is_alive():
                return
            # In the background: the pass runs while the nemesis keeps breaking things.
            self.pass_thread = threading.Thread(target=self.compact, daemon=True)
            self.pass_thread.start()

    def compact(self):
        node = self.cluster.nodes[-1]  # the compactor
        self.log("nemesis: compaction pass")
        try:
            report = post(f"{node.http}/v1/admin/compact?min_age=0s", timeout=180)
            self.counts["compaction passes"] += 1
            self.counts["lake files written"] += report.get("lake_files_written", 0)
            self.log(f"nemesis: pass done in {report.get('duration_ms')} ms, "
                     f"{report.get('lake_files_written')} lake files, errors: {report.get('errors')}")
        except (OSError, urllib.error.HTTPError) as e:
            # A pass may fail while the store or the metadata is broken (or its node is
            # killed); it changes nothing then, and the next one retries.
            self.log(f"nemesis: pass failed: {e}")
            self.counts["failed passes"] += 1

    def switch(self, node, on):
        try:
            post(f"{node.http}/v1/admin/faults?active={'true' if on else 'false'}", timeout=10)
        except OSError as e:
            self.log(f"nemesis: switching faults on {node.name} failed: {e}")
            return
        self.log(f"nemesis: store faults {'on' if on else 'off'} on {node.name}")
        self.counts["fault switches"] += 1
        (self.faulty.add if on else self.faulty.discard)(node.name)

    def heal(self):
        if self.pass_thread is not None:
            self.pass_thread.join()
        for m in self.cluster.metadata:
            if not m.alive():
                m.start()
        self.cluster.wait_for_active(timeout=60)
        for node in self.cluster.nodes:
            if not node.alive():
                node.start()
            node.wait_ready(timeout=60)
            post(f"{node.http}/v1/admin/faults?active=false", timeout=30)
        self.faulty.clear()


def node_options(seed):
    def options(i):
        env = {
            "SILT_STORAGE__FAULT_INJECTION__ENABLED": "true",
            "SILT_STORAGE__FAULT_INJECTION__SEED": str(seed * 10 + i),
            "SILT_STORAGE__FAULT_INJECTION__ERROR_RATE": "0.05",
            "SILT_STORAGE__FAULT_INJECTION__PUT_LOST_ACK_RATE": "0.05",
            "SILT_STORAGE__FAULT_INJECTION__SLOW_RATE": "0.05",
            "SILT_STORAGE__FAULT_INJECTION__SLOW_DELAY": "300ms",
        }
        if i == 2:
            # The third node also compacts: passes on demand (the nemesis asks), orphans
            # collected only after the default grace, so a segment whose commit is slow
            # is never taken for garbage.
            env.update({"SILT_COMPACTOR__INTERVAL": "1h"})
            return {"roles": "ingest,reader,compactor", "env": env}
        return {"env": env}
    return options


def run(duration, seed, work, log=print):
    """Runs the whole scenario; returns the summary (a dict) and the problems found."""
    cluster = Cluster(work, metadata=2, nodes=3, node_options=node_options(seed))
    try:
        bootstrap = ",".join(n.bootstrap for n in cluster.nodes)
        admin = AdminClient({"bootstrap.servers": bootstrap})
        for topic, partitions in {**TOPICS, TXN_TOPIC: TXN_PARTITIONS}.items():
            admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1,
                                          config=TOPIC_CONFIGS.get(topic, {}))])[topic].result(60)
        # Faults start off; the nemesis switches them.
        for node in cluster.nodes:
            post(f"{node.http}/v1/admin/faults?active=false", timeout=30)
        writers = [Writer(bootstrap, f"w{i}") for i in range(2)]
        txn_writers = [TxnWriter(bootstrap, f"t{i}", seed * 100 + i) for i in range(2)]
        reader = Reader(bootstrap, "nemesis-group")
        nemesis = Nemesis(cluster, seed, log)
        started = time.time()
        while time.time() - started < duration:
            time.sleep(nemesis.rng.uniform(1, 4))
            nemesis.step()
        log("nemesis: healing")
        nemesis.heal()
        unanswered = sum(w.finish(300) for w in writers)
        for w in txn_writers:
            w.finish()
        time.sleep(3)
        reader.finish()
        summary, problems = check(cluster, writers, reader, nemesis, unanswered,
                                  time.time() - started)
        more_summary, more_problems = check_transactions(bootstrap, txn_writers)
        return {**summary, **more_summary}, problems + more_problems
    except Exception:
        log(cluster.logs())
        raise
    finally:
        cluster.stop()


def check(cluster, writers, reader, nemesis, unanswered, elapsed):
    node = cluster.nodes[0]
    acked = {k: v for w in writers for k, v in w.acked.items()}
    sent = set().union(*(w.sent for w in writers))
    failed = [f for w in writers for f in w.failed]
    problems = []
    seen = {}
    out_of_order = 0
    high_watermarks, log_starts, position = {}, {}, {}
    for topic, partitions in TOPICS.items():
        for p in range(partitions):
            records, log_start, hwm = read_partition(node, topic, p)
            high_watermarks[(topic, p)] = hwm
            log_starts[(topic, p)] = log_start
            offsets = [o for (o, _) in records]
            if offsets != list(range(log_start, hwm)):
                problems.append(f"{topic}/{p}: offsets not dense from the log start {log_start}")
            # Per writer, numbers must grow with offsets (one producer, one partition).
            last = {}
            for offset, value in records:
                seen[(topic, value)] = seen.get((topic, value), 0) + 1
                position[(topic, value)] = (p, offset)
                writer, n = value.rsplit("-", 1)
                if int(n) <= last.get(writer, -1):
                    out_of_order += 1
                last[writer] = int(n)
    # An acknowledged record below its partition's log start was removed by retention.
    # librdkafka acknowledges some records without an offset (None here): ones whose own
    # answer was lost but whose delivery a later batch of the same idempotent producer
    # proved. Those are checked for presence only, and count as removed by retention
    # only if their partition's log start has moved at all.
    def below_log_start(k):
        partition, offset = acked[k]
        start = log_starts[(k[0], partition)]
        return start > 0 if offset is None else offset < start
    missing = set(acked) - set(seen)
    expired = {k for k in missing if below_log_start(k)}
    lost = missing - expired
    duplicated = [k for k, c in seen.items() if c > 1]
    phantom = set(seen) - sent
    # Every acknowledged record sits where its acknowledgement said.
    moved = [k for k in set(acked) & set(seen) if position[k] != acked[k]
             and not (acked[k][1] is None and position[k][0] == acked[k][0])]
    no_offset = sum(1 for v in acked.values() if v[1] is None)
    if moved:
        problems.append(f"{len(moved)} records not at their acknowledged offset, "
                        f"e.g. {[(k, acked[k], position[k]) for k in moved[:3]]}")
    if lost:
        problems.append(f"{len(lost)} acknowledged records lost, e.g. {sorted(lost)[:5]}")
    if duplicated:
        problems.append(f"{len(duplicated)} records duplicated, e.g. {duplicated[:5]}")
    if phantom:
        problems.append(f"{len(phantom)} records visible that were never sent")
    if out_of_order:
        problems.append(f"{out_of_order} records out of order")
    if unanswered:
        problems.append(f"{unanswered} records never answered")
    group = http_json(f"{node.http}/v1/groups/nemesis-group/offsets")
    for o in group.get("offsets", []):
        hwm = high_watermarks.get((o["topic"], o["partition"]))
        if hwm is not None and o["offset"] > hwm:
            problems.append(f"group offset {o} beyond the high watermark {hwm}")
    faults = 0
    for n in cluster.nodes:
        try:
            text = urllib.request.urlopen(f"{n.http}/metrics", timeout=10).read().decode()
            faults += sum(float(l.rsplit(" ", 1)[1]) for l in text.splitlines()
                          if l.startswith("silt_faults_injected_total"))
        except OSError:
            pass
    summary = {
        "seconds": round(elapsed),
        "records sent": len(sent),
        "acknowledged": len(acked),
        "acknowledged without an offset": no_offset,
        "removed by retention": len(expired),
        "log starts moved": sum(1 for v in log_starts.values() if v > 0),
        "failed (client gave up)": len(failed),
        "failure reasons": dict(Counter(reason for (_, _, reason) in failed).most_common(3)),
        "consumed by the group": reader.consumed,
        **nemesis.counts,
        "store faults injected (since the nodes' last start)": int(faults),
        "lost": len(lost),
        "duplicated": len(duplicated),
        "out of order": out_of_order,
        "visible but never sent": len(phantom),
    }
    return summary, problems


def check_transactions(bootstrap, txn_writers):
    """No aborted record visible to read_committed; every committed transaction visible
    whole, once; a transaction of unknown outcome visible whole or not at all; nothing
    visible that was never sent."""
    values = read_committed(bootstrap, TXN_TOPIC, TXN_PARTITIONS)
    counts = Counter(values)
    by_txn = Counter(v.rsplit("-", 1)[0] for v in counts)
    committed = set().union(*(w.committed for w in txn_writers))
    aborted = set().union(*(w.aborted for w in txn_writers))
    unknown = set().union(*(w.unknown for w in txn_writers))
    problems = []
    duplicated = [v for v, c in counts.items() if c > 1]
    if duplicated:
        problems.append(f"{len(duplicated)} transactional records seen twice, e.g. {duplicated[:3]}")
    visible_aborted = sorted(t for t in aborted if by_txn[t])
    if visible_aborted:
        problems.append(f"records of {len(visible_aborted)} aborted transactions visible, e.g. {visible_aborted[:3]}")
    partial = sorted(t for t, n in by_txn.items() if n != TXN_RECORDS)
    if partial:
        problems.append(f"{len(partial)} transactions visible in part, e.g. {partial[:3]}")
    lost = sorted(t for t in committed if not by_txn[t])
    if lost:
        problems.append(f"{len(lost)} committed transactions not visible, e.g. {lost[:3]}")
    never_sent = sorted(t for t in by_txn if t not in committed | aborted | unknown)
    if never_sent:
        problems.append(f"{len(never_sent)} transactions visible that were never sent")
    summary = {
        "transactions committed": len(committed),
        "transactions aborted": len(aborted),
        "transactions of unknown outcome": len(unknown),
        "of which visible (whole)": sum(1 for t in unknown if by_txn[t]),
        "transactional producer restarts": sum(w.restarts for w in txn_writers),
        "aborted transactions visible": len(visible_aborted),
        "committed transactions lost": len(lost),
    }
    return summary, problems


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=60, help="seconds of nemesis")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--work", help="keep the processes' logs and data in this folder")
    args = parser.parse_args()
    if args.work:
        os.makedirs(args.work, exist_ok=True)
        summary, problems = run(args.duration, args.seed, args.work)
    else:
        with tempfile.TemporaryDirectory() as work:
            summary, problems = run(args.duration, args.seed, work)
    width = max(len(k) for k in summary)
    for k, v in summary.items():
        print(f"{k:<{width}}  {v}")
    for p in problems:
        print(f"PROBLEM: {p}")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
