// kafkajs transactions against Silt: a committed and an aborted transaction, offsets sent
// in a transaction, and a read-committed kafkajs consumer.
// Usage: node kafkajs_transactions.js HOST:PORT TOPIC
// Prints {"seen": [...values], "committedOffset": "N"}.
const { Kafka, logLevel } = require("kafkajs");

async function main() {
  const [bootstrap, topic] = process.argv.slice(2);
  const kafka = new Kafka({ clientId: "silt-txn", brokers: [bootstrap], logLevel: logLevel.WARN });
  const admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({ topics: [{ topic, numPartitions: 1 }] });

  const producer = kafka.producer({
    transactionalId: `${topic}-txn`,
    idempotent: true,
    maxInFlightRequests: 1,
  });
  await producer.connect();
  const committed = await producer.transaction();
  await committed.send({ topic, messages: [{ value: "kept-1" }, { value: "kept-2" }] });
  await committed.sendOffsets({
    consumerGroupId: `${topic}-group`,
    topics: [{ topic, partitions: [{ partition: 0, offset: "2" }] }],
  });
  await committed.commit();
  const aborted = await producer.transaction();
  await aborted.send({ topic, messages: [{ value: "dropped-1" }, { value: "dropped-2" }] });
  await aborted.sendOffsets({
    consumerGroupId: `${topic}-group`,
    topics: [{ topic, partitions: [{ partition: 0, offset: "4" }] }],
  });
  await aborted.abort();
  const last = await producer.transaction();
  await last.send({ topic, messages: [{ value: "kept-3" }] });
  await last.commit();
  await producer.disconnect();

  const consumer = kafka.consumer({ groupId: `${topic}-reader`, readUncommitted: false });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  const seen = [];
  await new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, 8000);
    consumer
      .run({
        eachMessage: async ({ message }) => {
          seen.push(message.value.toString());
          if (seen.length >= 3) {
            clearTimeout(timer);
            setTimeout(resolve, 1000); // anything more would show up meanwhile
          }
        },
      })
      .catch(reject);
  });
  await consumer.disconnect();
  const offsets = await admin.fetchOffsets({ groupId: `${topic}-group`, topics: [topic] });
  await admin.disconnect();
  console.log(JSON.stringify({ seen, committedOffset: offsets[0].partitions[0].offset }));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
