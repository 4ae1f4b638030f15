import { afterAll, describe, expect, test } from "bun:test";
import { testKafka, uniqueName } from "../test/support.ts";
import { topicCatalogue } from "./catalogue.ts";
import { provisionTopics, replicationFor, waitForTopics } from "./provision.ts";

const kafka = testKafka();
const admin = kafka.admin();
afterAll(() => admin.disconnect());

describe("topic provisioning", () => {
  test("the catalogue has the seed's five event topics, the mailboxes and a dead-letter topic for each, 10 partitions each", () => {
    const names = topicCatalogue().map((t) => t.name);
    expect(names).toEqual(
      expect.arrayContaining([
        "booking-events",
        "repair-events",
        "payment-events",
        "notification-events",
        "compensation-events",
        "booking-events.dlt",
        "booking-mailbox",
        "booking-mailbox.dlt",
      ]),
    );
    expect(new Set(topicCatalogue().map((t) => t.partitions))).toEqual(new Set([10]));
  });

  test("the replication factor follows the cluster size", () => {
    expect(replicationFor(1)).toEqual({ replicationFactor: 1, minInsyncReplicas: 1 });
    expect(replicationFor(3)).toEqual({ replicationFactor: 3, minInsyncReplicas: 2 });
    expect(replicationFor(5)).toEqual({ replicationFactor: 3, minInsyncReplicas: 2 });
  });

  test("creates missing topics once; provisioning again, even concurrently, creates nothing", async () => {
    const specs = [uniqueName("prov-a"), uniqueName("prov-b")].map((name) => ({
      name,
      role: "events" as const,
      partitions: 4,
    }));
    const [first, racer] = await Promise.all([provisionTopics(kafka, specs), provisionTopics(kafka, specs)]);
    expect(first.replicationFactor).toBe(1);
    // Two provisioners at once: each topic exists afterwards, and neither run failed.
    expect([...first.created, ...first.existing].sort()).toEqual(specs.map((s) => s.name).sort());
    expect([...racer.created, ...racer.existing].sort()).toEqual(specs.map((s) => s.name).sort());
    const again = await provisionTopics(kafka, specs);
    expect(again.created).toEqual([]);
    expect(again.existing.sort()).toEqual(specs.map((s) => s.name).sort());
    await admin.connect();
    const metadata = await admin.fetchTopicMetadata({ topics: specs.map((s) => s.name) });
    expect(metadata.topics.map((t) => t.partitions.length)).toEqual([4, 4]);
  });

  test("the whole catalogue exists on the test broker after start-up", async () => {
    await admin.connect();
    const existing = new Set(await admin.listTopics());
    expect(topicCatalogue().filter((t) => !existing.has(t.name))).toEqual([]);
  });

  test("a topic with fewer partitions than asked is reported, not changed", async () => {
    const name = uniqueName("prov-small");
    await admin.connect();
    await admin.createTopics({ topics: [{ topic: name, numPartitions: 2 }], waitForLeaders: false });
    await waitForTopics(admin, [name]);
    const result = await provisionTopics(kafka, [{ name, role: "events", partitions: 10 }]);
    expect(result.underPartitioned).toEqual([{ topic: name, partitions: 2, wanted: 10 }]);
    const metadata = await admin.fetchTopicMetadata({ topics: [name] });
    expect(metadata.topics[0]?.partitions).toHaveLength(2);
  });
});
