import { afterAll, describe, expect, test } from "bun:test";
import type { Host } from "../../runtime/index.ts";
import { uniqueName, waitFor } from "../support.ts";
import {
  actorStates,
  freshTopics,
  type SequenceState,
  sendSteps,
  sequenceActor,
  testHost,
} from "./fixtures.ts";

const hosts: Host[] = [];
afterAll(() => Promise.all(hosts.map((h) => h.stop())));

describe("per-key order and concurrency", () => {
  test("50,000 messages over 10 partitions and 1,000 keys with random handler delays: each key's steps once each, in order", async () => {
    const { mailbox } = await freshTopics("order");
    const kind = uniqueName("seq");
    const keys = Array.from({ length: 1000 }, (_, i) => `k${i}`);
    const perKey = 50;
    const host = testHost({ actors: [sequenceActor(kind, mailbox)] });
    hosts.push(host);
    await host.start();
    const started = performance.now();
    await sendSteps(mailbox, keys, perKey, () => ({ delayMs: Math.floor(Math.random() * 4) }));
    const states = await waitFor(
      async () => {
        const s = await actorStates<SequenceState>(kind);
        return [...s.values()].filter((v) => v.state.lastSeq === perKey).length === keys.length
          ? s
          : undefined;
      },
      { timeoutMs: 240_000, intervalMs: 500, what: "all keys at their last step" },
    );
    const seconds = (performance.now() - started) / 1000;
    console.log(`[order] ${keys.length * perKey} turns in ${seconds.toFixed(1)} s`);
    for (const key of keys) {
      // count = perKey: none twice in effect; violations = 0: strictly increasing, none missing.
      expect(states.get(key)?.state).toEqual({ lastSeq: perKey, count: perKey, violations: 0, failures: 0 });
    }
    const stats = host.stats().actors[kind];
    expect(stats?.turns).toBe(keys.length * perKey);
  }, 300_000);
});

describe("concurrency inside a partition", () => {
  test("a slow key does not stall the other keys of its partition", async () => {
    const { mailbox } = await freshTopics("slow", 1);
    const kind = uniqueName("slow");
    const host = testHost({ actors: [sequenceActor(kind, mailbox)] });
    hosts.push(host);
    await host.start();
    const others = Array.from({ length: 100 }, (_, i) => `fast-${i}`);
    const slowMs = 3000;
    // The slow key's record comes first on the single partition; 100 fast keys follow it.
    await sendSteps(mailbox, ["slow"], 1, () => ({ delayMs: slowMs }));
    const started = performance.now();
    await sendSteps(mailbox, others, 1);
    await waitFor(async () => (await actorStates<SequenceState>(kind, others)).size === others.length, {
      timeoutMs: 30_000,
      intervalMs: 20,
      what: "fast keys done",
    });
    const fastDone = performance.now() - started;
    const slowState = (await actorStates<SequenceState>(kind, ["slow"])).get("slow");
    console.log(`[concurrency] 100 fast keys done in ${Math.round(fastDone)} ms behind a ${slowMs} ms turn`);
    expect(fastDone).toBeLessThan(slowMs);
    expect(slowState).toBeUndefined(); // still running when the others were all done
    await waitFor(async () => (await actorStates<SequenceState>(kind, ["slow"])).size === 1, {
      what: "slow done",
    });
  }, 60_000);
});
