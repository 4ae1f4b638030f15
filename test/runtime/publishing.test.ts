/**
 * No singleton on the delivery path (guarantee 12): each host publishes the outbox rows of the partitions it
 * owns, so a frozen host stalls only its own partitions, and only until they are taken over.
 */
import { afterAll, expect, test } from "bun:test";
import { partitionOf } from "../../runtime/index.ts";
import { uniqueName, waitFor } from "../support.ts";
import { freshTopics, kafka, killChildren, sendSteps, spawnHost } from "./fixtures.ts";

afterAll(() => killChildren());

test("while one host is frozen, the other's partitions keep publishing: their events go out at once, the frozen host's after takeover", async () => {
  const partitions = 4;
  const { mailbox, events } = await freshTopics("publish", partitions);
  const kind = uniqueName("publish");
  const groupPrefix = uniqueName("g");
  const env = { TEST_MAILBOX: mailbox, TEST_KIND: kind, TEST_GROUP_PREFIX: groupPrefix, TEST_EVENTS: events };
  const group = `${groupPrefix}.actor.${kind}`;
  // The first host also wins the relay of unsourced rows: under the old single relay it published everything.
  const frozen = await spawnHost({ ...env, TEST_HOST_ID: "frozen" });
  await waitFor(async () => (await frozen.stats()).relay?.leader, {
    what: "the first host leading the relay",
  });
  const steady = await spawnHost({ ...env, TEST_HOST_ID: "steady" });
  const owned = await waitFor(
    async () => {
      const [a, b] = [await frozen.stats(), await steady.stats()];
      const mine = b.consumers[group]?.partitions ?? [];
      return mine.length > 0 && mine.length + (a.consumers[group]?.partitions.length ?? 0) === partitions
        ? new Set(mine.map((p) => p.partition))
        : undefined;
    },
    { timeoutMs: 30_000, intervalMs: 250, what: "the partitions shared by both hosts" },
  );

  const seen = new Map<string, number>(); // key -> STEP_APPLIED events seen
  const reader = kafka.consumer({ groupId: uniqueName("publish-reader") });
  await reader.connect();
  await reader.subscribe({ topic: events, fromBeginning: true });
  await reader.run({
    eachMessage: async ({ message }) => {
      const key = message.key?.toString() ?? "";
      seen.set(key, (seen.get(key) ?? 0) + 1);
    },
  });
  try {
    const keys = Array.from({ length: 80 }, (_, i) => `p${i}`);
    const steadyKeys = keys.filter((k) => owned.has(partitionOf(k, partitions)));
    const frozenKeys = keys.filter((k) => !owned.has(partitionOf(k, partitions)));
    expect(steadyKeys.length).toBeGreaterThan(0);
    expect(frozenKeys.length).toBeGreaterThan(0);

    frozen.child.kill("SIGSTOP");
    const frozenAt = Date.now();
    await sendSteps(mailbox, keys, 1);
    // Inside the frozen host's 6 s session: nobody has taken its partitions yet, yet the steady host's events
    // are all out.
    await waitFor(() => steadyKeys.every((k) => (seen.get(k) ?? 0) >= 1), {
      timeoutMs: 4000,
      intervalMs: 50,
      what: "the steady host's events published while the other host is frozen",
    });
    const steadyOutIn = Date.now() - frozenAt;
    expect((await steady.stats()).consumers[group]?.partitions.length).toBe(owned.size); // no takeover yet
    expect(frozenKeys.some((k) => seen.has(k))).toBe(false); // the frozen host's partitions wait for takeover
    // Then the steady host takes the frozen host's partitions and publishes what they hold.
    await waitFor(() => frozenKeys.every((k) => (seen.get(k) ?? 0) >= 1), {
      timeoutMs: 30_000,
      intervalMs: 100,
      what: "the frozen host's events published after takeover",
    });
    console.log(
      `[publishing] steady host's ${steadyKeys.length} events out ${steadyOutIn} ms into the freeze; ` +
        `the frozen host's ${frozenKeys.length} after takeover, ${Date.now() - frozenAt} ms in`,
    );
  } finally {
    frozen.child.kill("SIGCONT");
    await reader.disconnect();
  }
}, 90_000);
