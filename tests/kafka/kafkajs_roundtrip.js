// kafkajs against Silt: admin (create, list) and an idempotent producer (gzip, headers,
// null values). The test reads the records back with another client (kafkajs consumers
// need consumer groups). Usage: node kafkajs_roundtrip.js HOST:PORT TOPIC COUNT
const { Kafka, CompressionTypes, logLevel } = require("kafkajs");

async function main() {
  const [bootstrap, topic, countText] = process.argv.slice(2);
  const count = Number(countText);
  const kafka = new Kafka({ clientId: "silt-test", brokers: [bootstrap], logLevel: logLevel.WARN });
  const admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({ topics: [{ topic, numPartitions: 2 }] });
  const listed = await admin.listTopics();
  await admin.disconnect();

  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  const messages = [];
  for (let i = 0; i < count; i++) {
    messages.push({
      key: `key-${i % 10}`,
      value: i % 5 === 0 ? null : `value-${i}`,
      headers: { n: String(i) },
      timestamp: String(1700000000000 + i),
    });
  }
  for (let i = 0; i < messages.length; i += 100) {
    await producer.send({ topic, compression: CompressionTypes.GZIP, messages: messages.slice(i, i + 100) });
  }
  await producer.disconnect();

  console.log(JSON.stringify({ listed: listed.includes(topic) }));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
