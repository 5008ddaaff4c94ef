"""A consumer-group member in its own process, so a test can SIGKILL it.

    python group_member.py BOOTSTRAP GROUP TOPIC
Prints its assignment as JSON lines whenever it changes.
"""

import json
import sys

from confluent_kafka import Consumer

bootstrap, group, topic = sys.argv[1:4]
consumer = Consumer({
    "bootstrap.servers": bootstrap,
    "group.id": group,
    "session.timeout.ms": 6000,
    "heartbeat.interval.ms": 500,
    "auto.offset.reset": "earliest",
})
consumer.subscribe([topic])
last = None
while True:
    consumer.poll(0.2)
    now = sorted(tp.partition for tp in consumer.assignment())
    if now != last:
        print(json.dumps(now), flush=True)
        last = now
