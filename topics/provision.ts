/**
 * Creates the catalogue's missing topics, idempotently: safe to run at every start and from several
 * processes at once. The replication factor follows the cluster: 3 (with min.insync.replicas 2) on three or
 * more brokers, otherwise one copy per broker.
 */
import type { Kafka } from "kafkajs";
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
      await admin.createTopics({
        waitForLeaders: true,
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
