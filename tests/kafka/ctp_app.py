"""A consume-transform-produce application, as exactly-once services are written: a group
member reading `ctpk-in` read_committed, writing each record transformed to `ctpk-out` and
the input offsets in the same transaction. On any error it exits (its supervisor restarts
it; the new instance's InitProducerId fences and aborts what the old one left open).

Usage: ctp_app.py BOOTSTRAP"""

import sys
import time

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition


def main(bootstrap):
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "ctpk",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False,
                         "isolation.level": "read_committed", "session.timeout.ms": 6000,
                         "heartbeat.interval.ms": 500})
    producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": "ctpk-app",
                         "linger.ms": 5, "transaction.timeout.ms": 10000})
    producer.init_transactions(60)
    consumer.subscribe(["ctpk-in"])
    while True:
        msgs = consumer.consume(10, timeout=0.5)
        for m in msgs:
            if m.error() is not None:
                raise KafkaException(m.error())
        if not msgs:
            continue
        producer.begin_transaction()
        for m in msgs:
            producer.produce("ctpk-out", value=b"x" + m.value(), partition=m.partition())
        time.sleep(0.05)  # a kill often lands mid-transaction
        ends = {}
        for m in msgs:
            ends[(m.topic(), m.partition())] = m.offset() + 1
        producer.send_offsets_to_transaction(
            [TopicPartition(t, p, o) for (t, p), o in ends.items()],
            consumer.consumer_group_metadata(), 30)
        producer.commit_transaction(30)
        print("committed", len(msgs), flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
