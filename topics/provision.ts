/**
 * Creates the catalogue's missing topics, idempotently: safe to run at every start and from several
 * processes at once. The replication factor follows the cluster: 3 (with min.insync.replicas 2) on three or
 * more brokers, otherwise one copy per broker.
 */
import type { Admin, Kafka } from "kafkajs";
import type { TopicSpec } from "./catalogue.ts";

export interface ProvisionResult {
  created: string[];
  existing: string[];
  replicationFactor: number;
  /** Topics that exist with fewer partitions than the catalogue asks for (left alone: see below). */
  underPartitioned: { topic: string; partitions: number; wanted: number }[];
}

export function replicationFor(brokers: number): { replicationFactor: number; minInsyncReplicas: number } {
  const replicationFactor = Math.max(1, Math.min(3, brokers));
  return { replicationFactor, minInsyncReplicas: replicationFactor >= 3 ? 2 : 1 };
}

export async function provisionTopics(kafka: Kafka, topics: TopicSpec[]): Promise<ProvisionResult> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const { brokers } = await admin.describeCluster();
    const { replicationFactor, minInsyncReplicas } = replicationFor(brokers.length);
    const existingNames = new Set(await admin.listTopics());
    const missing = topics.filter((t) => !existingNames.has(t.name));
    if (missing.length > 0) {
      // createTopics answers false, not an error, for topics another process created meanwhile.
      // Its waitForLeaders is off: under KRaft the first metadata answer for a new topic can be
      // UNKNOWN_TOPIC_OR_PARTITION, on which kafkajs gives up (tulios/kafkajs#815, #1563); waitForTopics retries.
      await admin.createTopics({
        waitForLeaders: false,
        topics: missing.map((t) => ({
          topic: t.name,
          numPartitions: t.partitions,
          replicationFactor,
          configEntries: Object.entries({
            "min.insync.replicas": String(minInsyncReplicas),
            ...t.config,
          }).map(([name, value]) => ({ name, value })),
        })),
      });
      await waitForTopics(
        admin,
        missing.map((t) => t.name),
      );
    }
    const present = topics.filter((t) => existingNames.has(t.name));
    const underPartitioned: ProvisionResult["underPartitioned"] = [];
    if (present.length > 0) {
      const metadata = await admin.fetchTopicMetadata({ topics: present.map((t) => t.name) });
      for (const t of metadata.topics) {
        const wanted = topics.find((spec) => spec.name === t.name)?.partitions ?? 0;
        // Never add partitions automatically: it moves keys to other partitions and breaks per-key order.
        if (t.partitions.length < wanted) {
          underPartitioned.push({ topic: t.name, partitions: t.partitions.length, wanted });
        }
      }
    }
    return {
      created: missing.map((t) => t.name),
      existing: present.map((t) => t.name),
      replicationFactor,
      underPartitioned,
    };
  } finally {
    await admin.disconnect();
  }
}

/**
 * Waits until every partition of `topics` has a leader in the metadata the brokers serve. A broker answers
 * CreateTopics once the controller has the topic, but its own metadata cache catches up a moment later:
 * producing or fetching metadata in between fails with UNKNOWN_TOPIC_OR_PARTITION.
 */
export async function waitForTopics(admin: Admin, topics: string[], timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      const metadata = await admin.fetchTopicMetadata({ topics });
      const ready = metadata.topics.every(
        (t) => t.partitions.length > 0 && t.partitions.every((p) => p.leader >= 0),
      );
      if (ready && metadata.topics.length === topics.length) return;
    } catch (error) {
      lastError = error; // UNKNOWN_TOPIC_OR_PARTITION until the metadata arrives
    }
    await Bun.sleep(100); // poll interval
  }
  throw new Error(`topics ${topics.join(", ")} had no leaders after ${timeoutMs} ms: ${String(lastError)}`);
}
