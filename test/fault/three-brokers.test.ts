/**
 * The 3-broker KRaft cluster: starts, takes a topic with replication factor 3 (min.insync.replicas 2), and
 * keeps serving it — idempotent acks=all writes and group reads — with one broker killed (SIGKILL).
 *
 * Part of `npm test`; alone: `npm run test:cluster`. It stops the cluster afterwards if it started it.
 * Its output is recorded in docs/kafka.md.
 */
import { afterAll, describe, expect, test } from "bun:test";
import {
  brokerRss,
  clusterLayout,
  killNode,
  restartNode,
  startKafka,
  stopKafka,
} from "../../infra/kafka-cluster.ts";
import { createKafka, waitForTopics } from "../../topics/index.ts";
import { uniqueName, waitFor } from "../support.ts";

const layout = clusterLayout(3);
const kafka = createKafka({ brokers: layout.brokers, clientId: uniqueName("cluster-test") });
const admin = kafka.admin();
let startedHere: number[] = [];

afterAll(async () => {
  await admin.disconnect().catch(() => {});
  // Stop the cluster only if this test started it.
  if (startedHere.length > 0) await stopKafka(3);
});

const log = (line: string) => console.log(`[cluster] ${line}`);

describe("3-broker KRaft cluster", () => {
  test("serves a replication-factor-3 topic with one broker killed", async () => {
    let t0 = performance.now();
    const start = await startKafka(3, { timeoutMs: 180_000 });
    startedHere = start.started;
    log(
      `started nodes [${start.started}] reused [${start.reused}] in ${Math.round(performance.now() - t0)} ms`,
    );
    log(`rss KiB per node: ${JSON.stringify(brokerRss(3))}`);

    await admin.connect();
    const topic = uniqueName("rf3");
    await admin.createTopics({
      waitForLeaders: false,
      topics: [
        {
          topic,
          numPartitions: 6,
          replicationFactor: 3,
          configEntries: [{ name: "min.insync.replicas", value: "2" }],
        },
      ],
    });
    await waitForTopics(admin, [topic]);
    const metadata = await admin.fetchTopicMetadata({ topics: [topic] });
    const partitions = metadata.topics[0]?.partitions ?? [];
    expect(partitions).toHaveLength(6);
    for (const p of partitions) expect(p.replicas.sort()).toEqual([1, 2, 3]);
    log(
      `topic ${topic}: 6 partitions, replicas [1,2,3] each, leaders ${partitions.map((p) => p.leader).join(",")}`,
    );

    const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
    await producer.connect();
    const send = async (from: number, to: number) => {
      for (let i = from; i < to; i++) {
        await producer.send({ topic, acks: -1, messages: [{ key: `k${i % 20}`, value: String(i) }] });
      }
    };
    // Each broker learns of a new topic on its own time; kafkajs gives up on a broker that does not know it yet
    // (UNKNOWN_TOPIC_OR_PARTITION from metadata), so the first write is retried until every broker answers.
    await waitFor(
      async () => {
        try {
          await producer.send({ topic, acks: -1, messages: [{ key: "probe", value: "-1" }] });
          return true;
        } catch {
          return false;
        }
      },
      { timeoutMs: 30_000, intervalMs: 200, what: "the new topic known to the brokers" },
    );
    await send(0, 100);
    log("wrote 100 messages with acks=all on 3 brokers");

    // Kill the leader of partition 0: the worst one to lose.
    const victim = partitions.find((p) => p.partitionId === 0)?.leader ?? 2;
    t0 = performance.now();
    expect(await killNode(3, victim)).toBe(true);
    log(`SIGKILLed node ${victim}`);

    await send(100, 200);
    log(
      `wrote 100 more with acks=all on 2 brokers in ${Math.round(performance.now() - t0)} ms after the kill`,
    );
    const after = await admin.fetchTopicMetadata({ topics: [topic] });
    const leaders = (after.topics[0]?.partitions ?? []).map((p) => p.leader);
    expect(leaders).not.toContain(victim);
    log(
      `leaders now ${leaders.join(",")}; in-sync replicas ${(after.topics[0]?.partitions ?? []).map((p) => `[${p.isr}]`).join(" ")}`,
    );

    const seen = new Set<number>();
    const consumer = kafka.consumer({ groupId: uniqueName("rf3-group") });
    await consumer.connect();
    await consumer.subscribe({ topic, fromBeginning: true });
    await consumer.run({
      eachMessage: async ({ message }) => {
        // The probe writes (value -1) only checked that the topic was known.
        if (message.key?.toString() !== "probe") seen.add(Number(message.value?.toString()));
      },
    });
    await waitFor(() => seen.size >= 200, {
      timeoutMs: 60_000,
      what: "200 messages read with one broker down",
    });
    expect([...seen].sort((a, b) => a - b)).toEqual([...Array(200).keys()]);
    log("a new consumer group read all 200 messages with one broker down");
    await consumer.disconnect();
    await producer.disconnect();

    restartNode(3, victim);
    t0 = performance.now();
    await waitFor(
      async () => {
        const m = await admin.fetchTopicMetadata({ topics: [topic] });
        return (m.topics[0]?.partitions ?? []).every((p) => p.isr.length === 3);
      },
      { timeoutMs: 120_000, intervalMs: 500, what: "the restarted broker back in sync" },
    );
    log(`node ${victim} restarted and back in every ISR in ${Math.round(performance.now() - t0)} ms`);
  }, 400_000);
});
