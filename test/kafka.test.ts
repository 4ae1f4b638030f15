import { afterAll, describe, expect, test } from "bun:test";
import type { Consumer, KafkaMessage } from "kafkajs";
import { waitForTopics } from "../topics/index.ts";
import { testKafka, uniqueName, waitFor } from "./support.ts";

const kafka = testKafka();
const admin = kafka.admin();
const consumers: Consumer[] = [];

afterAll(async () => {
  await Promise.allSettled(consumers.map((c) => c.disconnect()));
  await admin.disconnect();
});

type Seen = { partition: number; offset: string; key: string; value: string };

/** Runs a consumer in `groupId` that commits each message's offset explicitly once handled. */
async function consume(topic: string, groupId: string, seen: Seen[]): Promise<Consumer> {
  const consumer = kafka.consumer({ groupId, sessionTimeout: 10_000, heartbeatInterval: 1000 });
  consumers.push(consumer);
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  await consumer.run({
    autoCommit: false,
    eachMessage: async ({ partition, message }: { partition: number; message: KafkaMessage }) => {
      seen.push({
        partition,
        offset: message.offset,
        key: message.key?.toString() ?? "",
        value: message.value?.toString() ?? "",
      });
      await consumer.commitOffsets([{ topic, partition, offset: String(BigInt(message.offset) + 1n) }]);
    },
  });
  return consumer;
}

describe("kafkajs 2.2.4 against the project's Kafka 4.4.0 broker", () => {
  test("admin creates a topic, an idempotent producer writes with acks=all, a group consumes, commits, and a restarted member resumes from the committed offsets", async () => {
    const topic = uniqueName("kafka-smoke");
    const groupId = uniqueName("group");
    await admin.connect();
    expect(await admin.createTopics({ topics: [{ topic, numPartitions: 3 }], waitForLeaders: false })).toBe(
      true,
    );
    // Creating it again is not an error: createTopics answers false.
    expect(await admin.createTopics({ topics: [{ topic, numPartitions: 3 }], waitForLeaders: false })).toBe(
      false,
    );
    await waitForTopics(admin, [topic]);
    const metadata = await admin.fetchTopicMetadata({ topics: [topic] });
    expect(metadata.topics[0]?.partitions).toHaveLength(3);

    const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
    await producer.connect();
    const send = async (from: number, to: number) => {
      for (let i = from; i < to; i++) {
        // acks=-1 (all) is what an idempotent producer requires; the broker assigns it a producer id.
        await producer.send({ topic, acks: -1, messages: [{ key: `k${i % 10}`, value: String(i) }] });
      }
    };
    await send(0, 30);

    const first: Seen[] = [];
    const firstConsumer = await consume(topic, groupId, first);
    await waitFor(() => first.length >= 30, { what: "30 messages in the first run", timeoutMs: 30_000 });
    await firstConsumer.disconnect();
    expect(first.map((m) => Number(m.value)).sort((a, b) => a - b)).toEqual([...Array(30).keys()]);

    // One key lives on one partition, in the order it was sent.
    for (let k = 0; k < 10; k++) {
      const ofKey = first.filter((m) => m.key === `k${k}`);
      expect(new Set(ofKey.map((m) => m.partition)).size).toBe(1);
      expect(ofKey.map((m) => Number(m.value))).toEqual([k, k + 10, k + 20]);
    }

    // The group's committed offsets are the partitions' ends.
    const committed = await admin.fetchOffsets({ groupId, topics: [topic] });
    const ends = await admin.fetchTopicOffsets(topic);
    const byPartition = (rows: { partition: number; offset: string }[]) =>
      Object.fromEntries(rows.map((r) => [r.partition, r.offset]));
    expect(byPartition(committed[0]?.partitions ?? [])).toEqual(byPartition(ends));

    // A restarted member of the same group sees only what was produced after the commit.
    await send(30, 40);
    const second: Seen[] = [];
    await consume(topic, groupId, second);
    await waitFor(() => second.length >= 10, { what: "10 new messages after restart", timeoutMs: 30_000 });
    expect(second.map((m) => Number(m.value)).sort((a, b) => a - b)).toEqual([
      30, 31, 32, 33, 34, 35, 36, 37, 38, 39,
    ]);
    await producer.disconnect();
  }, 90_000);
});
