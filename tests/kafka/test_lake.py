"""The compactor against the S3 server: lake files that pyarrow and polars read in place,
consumers that never notice compaction, retention, DeleteRecords, and a crash mid-pass."""

import json
import os
import tempfile
import threading
import time
import urllib.request
import uuid
from pathlib import Path

import polars as pl
import pyarrow.dataset as ds
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from pyarrow import fs

from conftest import Silt


def s3_endpoint():
    value = os.environ.get("E2E_S3_ENDPOINT")
    if not value:
        raise RuntimeError("E2E_S3_ENDPOINT is not set: run the tests with scripts/test")
    return value


@pytest.fixture
def s3_silt(monkeypatch):
    for k, v in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                 "AWS_REGION": "us-east-1"}.items():
        monkeypatch.setenv(k, v)
    bucket = f"lake-{uuid.uuid4().hex[:12]}"
    with tempfile.TemporaryDirectory() as d:
        # Orphans (objects the index never knew) are deleted once older than gc_grace:
        # a short one lets the crash test see them go.
        config = os.path.join(d, "silt.toml")
        with open(config, "w") as f:
            f.write('[compactor]\ngc_grace = "2s"\n')
        node = Silt(d, extra=["--config", config, "--s3-endpoint", s3_endpoint(),
                              "--s3-bucket", bucket, "--s3-path-style", "--s3-allow-http",
                              "--create-bucket"])
        node.bucket = bucket
        try:
            yield node
        finally:
            node.stop()


def post(url, body=None):
    data = json.dumps(body).encode() if body is not None else b""
    req = urllib.request.Request(url, data=data, method="POST",
                                 headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=300) as r:
        return json.loads(r.read())


def compact(node, min_age="0s"):
    report = post(f"{node.http}/v1/admin/compact?min_age={min_age}")
    assert report["errors"] == [], report
    return report


def create_topic(bootstrap, name, partitions, config=None):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1,
                                  config=config or {})])[name].result(30)


def produce(bootstrap, topic, n, partitions, prefix="v"):
    """n records, key k<i % 100>, value <prefix><i>, round robin over partitions."""
    acked = {}

    def report(err, msg):
        assert err is None, err
        acked[msg.value().decode()] = (msg.partition(), msg.offset(), msg.key().decode())

    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "batch.num.messages": 10000})
    for i in range(n):
        while True:
            try:
                producer.produce(topic, key=f"k{i % 100}".encode(), value=f"{prefix}{i}".encode(),
                                 partition=i % partitions, on_delivery=report)
                break
            except BufferError:
                producer.poll(0.05)
        if i % 1000 == 0:
            producer.poll(0)
    assert producer.flush(120) == 0
    return acked


def consume_all(bootstrap, topic, partitions, expected):
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"all-{uuid.uuid4().hex}",
                         "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    seen = {}
    deadline = time.time() + 120
    while len(seen) < expected and time.time() < deadline:
        for msg in consumer.consume(5000, timeout=1):
            if msg.error() is None:
                key = msg.value().decode()
                assert key not in seen, f"{key} twice"
                seen[key] = (msg.partition(), msg.offset(), msg.key().decode())
    consumer.close()
    return seen


def s3_filesystem():
    endpoint = s3_endpoint().removeprefix("http://")
    return fs.S3FileSystem(endpoint_override=endpoint, scheme="http", access_key="testing",
                           secret_key="testing", region="us-east-1")


def test_lake_files_are_read_in_place_by_pyarrow_and_polars(s3_silt):
    node = s3_silt
    create_topic(node.bootstrap, "events", 4, {"retention.ms": "-1"})
    acked = produce(node.bootstrap, "events", 100_000, 4)
    report = compact(node)
    assert report["records_rewritten"] == 100_000
    assert report["lag_bytes"] == 0

    # pyarrow, straight from the bucket.
    table = ds.dataset(f"{node.bucket}/lake/events", filesystem=s3_filesystem(), format="parquet",
                       partitioning="hive").to_table()
    assert table.num_rows == 100_000
    rows = {v.decode(): (p, o, k.decode()) for v, p, o, k in zip(
        table.column("value").to_pylist(), table.column("partition").to_pylist(),
        table.column("offset").to_pylist(), table.column("key").to_pylist())}
    assert rows == acked

    # polars, lazily, with the same answer.
    frame = pl.scan_parquet(
        f"s3://{node.bucket}/lake/events/**/*.parquet",
        storage_options={"aws_endpoint_url": s3_endpoint(), "aws_allow_http": "true",
                         "aws_access_key_id": "testing", "aws_secret_access_key": "testing",
                         "aws_region": "us-east-1"},
        hive_partitioning=True,
    ).collect()
    assert frame.height == 100_000
    by_partition = frame.group_by("partition").agg(pl.col("offset").min().alias("lo"),
                                                   pl.col("offset").max().alias("hi"),
                                                   pl.len().alias("n")).sort("partition")
    assert by_partition.rows() == [(p, 0, 24_999, 25_000) for p in range(4)]

    # Kafka consumers from offset 0 still get every record, at the same offsets.
    assert consume_all(node.bootstrap, "events", 4, 100_000) == acked


def test_compaction_under_produce_and_a_tailing_consumer(s3_silt):
    node = s3_silt
    create_topic(node.bootstrap, "live", 2, {"retention.ms": "-1"})
    seen, stop = {}, threading.Event()
    errors = []

    def tail():
        consumer = Consumer({"bootstrap.servers": node.bootstrap, "group.id": "tail",
                             "auto.offset.reset": "earliest", "enable.auto.commit": False})
        consumer.subscribe(["live"])
        while not stop.is_set():
            for msg in consumer.consume(1000, timeout=0.2):
                if msg.error() is None:
                    value = msg.value().decode()
                    if value in seen:
                        errors.append(f"{value} twice")
                    seen[value] = (msg.partition(), msg.offset())
        consumer.close()

    reader = threading.Thread(target=tail, daemon=True)
    reader.start()
    acked = {}
    produced = threading.Event()

    def write():
        for round_ in range(8):
            acked.update(produce(node.bootstrap, "live", 1500, 2, prefix=f"r{round_}-"))
        produced.set()

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    passes = 0
    while not produced.is_set() and writer.is_alive():
        # Passes run while records are being produced and tailed.
        compact(node)
        passes += 1
        time.sleep(0.2)
    writer.join()
    assert produced.is_set(), "the producer failed"
    compact(node)
    assert passes >= 2, "compaction ran during produce"
    deadline = time.time() + 60
    while len(seen) < len(acked) and time.time() < deadline:
        time.sleep(0.2)
    stop.set()
    reader.join()
    assert not errors, errors[:5]
    assert seen == {v: (p, o) for v, (p, o, _) in acked.items()}, "every record once, at its offset"
    for p in range(2):
        offsets = sorted(o for (q, o) in seen.values() if q == p)
        assert offsets == list(range(len(offsets))), f"partition {p}: gap or duplicate"


def test_retention_delete_records_and_reset_of_a_group_below_the_log_start(s3_silt):
    node = s3_silt
    create_topic(node.bootstrap, "old", 1, {"retention.ms": "-1", "retention.bytes": "-1"})
    produce(node.bootstrap, "old", 3000, 1)
    # A group commits offset 10, then DeleteRecords moves the log start past it.
    consumer = Consumer({"bootstrap.servers": node.bootstrap, "group.id": "late",
                         "enable.auto.commit": False})
    consumer.commit(offsets=[TopicPartition("old", 0, 10)], asynchronous=False)
    consumer.close()
    admin = AdminClient({"bootstrap.servers": node.bootstrap})
    result = admin.delete_records([TopicPartition("old", 0, 2000)])
    for tp, future in result.items():
        assert future.result(30).low_watermark == 2000
    low, high = Consumer({"bootstrap.servers": node.bootstrap, "group.id": "w"}) \
        .get_watermark_offsets(TopicPartition("old", 0), timeout=10)
    assert (low, high) == (2000, 3000)
    # The group resumes at 10, below the log start: auto.offset.reset=earliest takes it to 2000.
    consumer = Consumer({"bootstrap.servers": node.bootstrap, "group.id": "late",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.subscribe(["old"])
    first = None
    deadline = time.time() + 30
    while first is None and time.time() < deadline:
        msg = consumer.poll(0.5)
        if msg is not None and msg.error() is None:
            first = msg.offset()
    consumer.close()
    assert first == 2000

    # Everything below the high watermark, over HTTP; a pass then deletes the objects.
    moved = post(f"{node.http}/v1/topics/old/partitions/0/delete-records", {"offset": -1})
    assert moved["log_start_offset"] == 3000
    report = compact(node)
    assert report["unreferenced_deleted"] >= 1
    listing = s3_filesystem().get_file_info(
        fs.FileSelector(f"{node.bucket}/segments", recursive=True, allow_not_found=True))
    assert not [f for f in listing if f.type == fs.FileType.File], "every raw object was deleted"


def test_kill_during_compaction_leaves_a_consistent_state(s3_silt):
    node = s3_silt
    create_topic(node.bootstrap, "crash", 4, {"retention.ms": "-1"})
    acked = produce(node.bootstrap, "crash", 40_000, 4)
    # An object nobody committed, as a node that died between upload and commit leaves.
    s3 = s3_filesystem()
    orphan = f"{node.bucket}/segments/2020/01/01/00/never-committed.parquet"
    with s3.open_output_stream(orphan) as out:
        out.write(b"PAR1")

    def start_pass():
        try:
            post(f"{node.http}/v1/admin/compact?min_age=0s")
        except Exception:  # noqa: BLE001 - the process dies under it
            pass

    t = threading.Thread(target=start_pass, daemon=True)
    t.start()
    time.sleep(0.3)
    node.kill()
    t.join(10)
    node.start()
    # Everything is still there, exactly once, whatever the pass had done.
    assert consume_all(node.bootstrap, "crash", 4, 40_000) == acked
    # A pass after the restart finishes the work and leaves no orphan behind.
    time.sleep(2.5)  # gc_grace
    report = compact(node)
    assert report["orphans_deleted"] >= 1
    assert s3.get_file_info(orphan).type == fs.FileType.NotFound
    table = ds.dataset(f"{node.bucket}/lake/crash", filesystem=s3_filesystem(), format="parquet",
                       partitioning="hive").to_table()
    assert table.num_rows == 40_000, "lake files hold each record once (orphans deleted)"
    assert report["errors"] == []
    assert consume_all(node.bootstrap, "crash", 4, 40_000) == acked


def duckdb_snippet():
    """The DuckDB block of docs/lake.md, statement by statement."""
    text = (Path(__file__).resolve().parents[2] / "docs" / "lake.md").read_text()
    block = text.split("## DuckDB", 1)[1].split("```sql", 1)[1].split("```", 1)[0]
    lines = [l.split("--", 1)[0] for l in block.splitlines()]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


def test_the_documented_duckdb_queries_run_as_written(s3_silt):
    import duckdb
    import duckdb_extension_httpfs

    node = s3_silt
    create_topic(node.bootstrap, "orders", 2, {"retention.ms": "-1"})
    producer = Producer({"bootstrap.servers": node.bootstrap})
    for i in range(40):
        producer.produce("orders", value=json.dumps({"customer": f"c{i % 3}", "n": i}).encode(),
                         partition=i % 2)
    assert producer.flush(30) == 0
    compact(node)

    extension = next(Path(duckdb_extension_httpfs.__file__).parent.glob("extensions/*/httpfs.duckdb_extension"))
    endpoint = s3_endpoint().removeprefix("http://")
    db = duckdb.connect()
    results = []
    for statement in duckdb_snippet():
        if statement.startswith("INSTALL httpfs"):
            continue  # downloads; the shipped extension is loaded instead
        if statement == "LOAD httpfs":
            statement = f"LOAD '{extension}'"
        statement = (statement.replace("KEY_ID '...'", "KEY_ID 'testing'")
                     .replace("SECRET '...'", "SECRET 'testing'")
                     .replace("'127.0.0.1:9000'", f"'{endpoint}'")
                     .replace("s3://silt/", f"s3://{node.bucket}/"))
        results.append(db.execute(statement).fetchall())
    by_partition, by_customer = results[-2], results[-1]
    assert [(p, n, last) for p, n, last, _ in by_partition] == [(0, 20, 19), (1, 20, 19)]
    assert by_customer == [("c0", 14), ("c1", 13), ("c2", 13)]


def test_committed_transactions_reach_the_lake_and_aborted_ones_never_do(s3_silt):
    node = s3_silt
    create_topic(node.bootstrap, "tx-lake", 1)
    plain = Producer({"bootstrap.servers": node.bootstrap})
    txn = Producer({"bootstrap.servers": node.bootstrap, "transactional.id": "tx-lake-app",
                    "linger.ms": 5})
    txn.init_transactions(30)

    def plain_records(values):
        for v in values:
            plain.produce("tx-lake", value=v.encode(), partition=0)
        assert plain.flush(30) == 0

    def transaction(values, commit):
        txn.begin_transaction()
        for v in values:
            txn.produce("tx-lake", value=v.encode(), partition=0)
        txn.flush(30)
        (txn.commit_transaction if commit else txn.abort_transaction)(30)

    plain_records(["p0", "p1"])
    transaction(["c0", "c1", "c2"], commit=True)
    transaction(["a0", "a1"], commit=False)
    plain_records(["p2"])
    transaction(["c3"], commit=True)
    transaction(["a2", "a3"], commit=False)  # the log ends with its abort marker
    committed = ["p0", "p1", "c0", "c1", "c2", "p2", "c3"]

    report = compact(node)
    assert report["lake_files_written"] >= 1, report

    # A lake reader sees the committed records only, at their Kafka offsets: gaps where
    # markers and aborted records were.
    table = ds.dataset(f"{node.bucket}/lake/tx-lake", filesystem=s3_filesystem(), format="parquet",
                       partitioning="hive").to_table().sort_by("offset")
    values = [v.decode() for v in table.column("value").to_pylist()]
    offsets = table.column("offset").to_pylist()
    assert values == committed, values
    assert offsets == [0, 1, 2, 3, 4, 9, 10], offsets  # markers at 5, 8, 11, 14; aborted 6-7, 12-13

    # Kafka consumers, either isolation, read the same records across the gaps, and their
    # position reaches the end of the log (past the last marker).
    for isolation in ("read_committed", "read_uncommitted"):
        consumer = Consumer({"bootstrap.servers": node.bootstrap, "group.id": f"tx-lake-{isolation}",
                             "isolation.level": isolation, "enable.auto.commit": False})
        consumer.assign([TopicPartition("tx-lake", 0, 0)])
        got, deadline = [], time.time() + 20
        while time.time() < deadline:
            msg = consumer.poll(0.3)
            if msg is not None and msg.error() is None:
                got.append((msg.offset(), msg.value().decode()))
            position = consumer.position([TopicPartition("tx-lake", 0)])[0].offset
            if len(got) >= len(committed) and position == 15:
                break
        consumer.close()
        assert [v for _, v in got] == committed, (isolation, got)
        assert [o for o, _ in got] == offsets, (isolation, got)
        assert position == 15, (isolation, position)

    # The HTTP door reads across the gaps too.
    with urllib.request.urlopen(f"{node.http}/v1/topics/tx-lake/partitions/0/records?offset=0",
                                timeout=30) as r:
        body = json.loads(r.read())
    assert [(r["offset"], r["value"]) for r in body["records"]] == list(zip(offsets, committed)), body

    # An open transaction's records stay out of the lake until it commits.
    txn.begin_transaction()
    txn.produce("tx-lake", value=b"late", partition=0)
    txn.flush(30)
    compact(node)

    def lake_values():
        table = ds.dataset(f"{node.bucket}/lake/tx-lake", filesystem=s3_filesystem(),
                           format="parquet", partitioning="hive").to_table().sort_by("offset")
        return [v.decode() for v in table.column("value").to_pylist()]

    assert lake_values() == committed
    txn.commit_transaction(30)
    compact(node)
    assert lake_values() == committed + ["late"]
