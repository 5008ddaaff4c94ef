// kafkajs's admin.resetOffsets({ earliest: true }) against Silt: a group reads a topic,
// its offsets are reset to the earliest, and the group reads everything again.
// Usage: node kafkajs_reset_offsets.js HOST:PORT TOPIC COUNT
// Prints {"first": N, "committed": [...], "afterReset": [...], "second": N}.
const { Kafka, logLevel } = require("kafkajs");

async function consumeAll(kafka, groupId, topic, count) {
  const consumer = kafka.consumer({ groupId, sessionTimeout: 10000, heartbeatInterval: 500 });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  let seen = 0;
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`only ${seen} of ${count} records`)), 60000);
    consumer
      .run({
        eachMessage: async () => {
          seen += 1;
          if (seen >= count) {
            clearTimeout(timer);
            resolve();
          }
        },
      })
      .catch(reject);
  });
  // Let the last commit go out before leaving the group.
  await consumer.commitOffsets([]).catch(() => {});
  await consumer.disconnect();
  return seen;
}

async function main() {
  const [bootstrap, topic, countText] = process.argv.slice(2);
  const count = Number(countText);
  const kafka = new Kafka({ clientId: "silt-reset", brokers: [bootstrap], logLevel: logLevel.WARN });
  const admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({ topics: [{ topic, numPartitions: 1 }] });
  const producer = kafka.producer();
  await producer.connect();
  const messages = Array.from({ length: count }, (_, i) => ({ value: `v${i}` }));
  await producer.send({ topic, messages });
  await producer.disconnect();

  const groupId = `${topic}-group`;
  const first = await consumeAll(kafka, groupId, topic, count);
  const offsets = async () =>
    (await admin.fetchOffsets({ groupId, topics: [topic] }))[0].partitions.map((p) => p.offset);
  const committed = await offsets();
  await admin.resetOffsets({ groupId, topic, earliest: true });
  const afterReset = await offsets();
  const second = await consumeAll(kafka, groupId, topic, count);
  await admin.disconnect();
  console.log(JSON.stringify({ first, committed, afterReset, second }));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
