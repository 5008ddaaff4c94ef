"""Produce throughput through librdkafka (confluent-kafka) against a running Silt node.

    .venv/bin/python tests/kafka/produce_bench.py --bootstrap 127.0.0.1:9092

Prints records/s, MiB/s and the delivery-report latency percentiles (time from produce()
to the acknowledgement, which for Silt means: written to the object store and committed).
"""

import argparse
import os
import time

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", default="127.0.0.1:9092")
    ap.add_argument("--topic", default="produce-bench")
    ap.add_argument("--partitions", type=int, default=16)
    ap.add_argument("--records", type=int, default=500_000)
    ap.add_argument("--record-size", type=int, default=1024)
    ap.add_argument("--compression", default="none")
    ap.add_argument("--acks", default="all")
    ap.add_argument("--linger-ms", type=int, default=5)
    ap.add_argument("--idempotence", action="store_true")
    args = ap.parse_args()

    admin = AdminClient({"bootstrap.servers": args.bootstrap})
    futures = admin.create_topics([NewTopic(args.topic, num_partitions=args.partitions, replication_factor=1)])
    try:
        futures[args.topic].result(30)
    except Exception as e:  # already exists is fine
        if "TOPIC_ALREADY_EXISTS" not in str(e):
            raise

    # Random, incompressible-ish payloads: a pool of distinct values.
    pool = [os.urandom(args.record_size // 2).hex().encode()[: args.record_size] for _ in range(1024)]
    latencies = []
    errors = []

    def report(err, msg, sent=None):
        if err is not None:
            errors.append(err)

    producer = Producer({
        "bootstrap.servers": args.bootstrap,
        "acks": args.acks,
        "linger.ms": args.linger_ms,
        "compression.type": args.compression,
        "enable.idempotence": args.idempotence,
        "queue.buffering.max.kbytes": 262144,
        "batch.size": 1_000_000,
    })
    started = time.perf_counter()
    for i in range(args.records):
        sent = time.perf_counter()
        cb = (lambda err, msg, sent=sent: (latencies.append(time.perf_counter() - sent), report(err, msg))) if i % 100 == 0 else report
        while True:
            try:
                producer.produce(args.topic, key=str(i % 1000).encode(), value=pool[i % len(pool)], on_delivery=cb)
                break
            except BufferError:
                producer.poll(0.01)
        if i % 1000 == 0:
            producer.poll(0)
    producer.flush(300)
    elapsed = time.perf_counter() - started
    assert not errors, errors[:3]
    latencies.sort()

    def pct(p):
        return latencies[min(len(latencies) - 1, int(len(latencies) * p))] * 1000

    print(f"records {args.records} x {args.record_size} B, {args.partitions} partitions, acks={args.acks}, "
          f"compression={args.compression}, linger.ms={args.linger_ms}, idempotence={args.idempotence}")
    print(f"records/s {args.records / elapsed:,.0f}   MiB/s {args.records * args.record_size / elapsed / 2**20:.1f}   {elapsed:.1f}s")
    print(f"ack latency ms (sampled 1%): p50 {pct(0.5):.1f}  p95 {pct(0.95):.1f}  p99 {pct(0.99):.1f}  max {latencies[-1] * 1000:.1f}")


if __name__ == "__main__":
    main()
