import { afterAll, describe, expect, test } from "bun:test";
import type { Host } from "../../runtime/index.ts";
import { uniqueName, waitFor } from "../support.ts";
import { database, freshTopics, sendSteps, sequenceActor, testHost } from "./fixtures.ts";

const hosts: Host[] = [];
afterAll(() => Promise.all(hosts.map((h) => h.stop())));

describe("lifecycle", () => {
  test("100,000 distinct actors pass through a host that keeps at most 5,000 in memory, then passivates the idle ones", async () => {
    const { mailbox } = await freshTopics("lru");
    const kind = uniqueName("lru");
    const maxActors = 5000;
    const host = testHost({
      actors: [sequenceActor(kind, mailbox)],
      tuning: { maxActors, passivateAfterMs: 3000, maxConcurrencyPerPartition: 32 },
    });
    hosts.push(host);
    await host.start();
    const keys = Array.from({ length: 100_000 }, (_, i) => `car-${i}`);
    await sendSteps(mailbox, keys, 1);
    let peak = 0;
    const count = async () => {
      peak = Math.max(peak, host.stats().actors[kind]?.active ?? 0);
      const [row] = await database.sql<
        { n: number }[]
      >`select count(*)::int as n from actor_state where kind = ${kind}`;
      return row?.n ?? 0;
    };
    await waitFor(async () => (await count()) >= keys.length, {
      timeoutMs: 300_000,
      intervalMs: 200,
      what: "100,000 actors activated",
    });
    const stats = host.stats().actors[kind];
    console.log(
      `[passivation] peak in memory ${peak}, passivated ${stats?.passivated}, rss ${Math.round(process.memoryUsage().rss / 2 ** 20)} MiB`,
    );
    // Running turns cannot be evicted, so the bound may be passed by at most the turns running at once.
    expect(peak).toBeLessThanOrEqual(maxActors + 10 * 32);
    expect(stats?.turns).toBe(keys.length);
    expect(stats?.passivated).toBeGreaterThanOrEqual(keys.length - maxActors - 10 * 32);
    // Idle for passivateAfterMs: the rest leave memory too.
    await waitFor(() => host.stats().actors[kind]?.active === 0, {
      timeoutMs: 15_000,
      what: "idle actors passivated",
    });
  }, 330_000);
});
