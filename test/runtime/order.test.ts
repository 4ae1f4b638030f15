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
  test("every key's steps are applied once each, in order, across 10 partitions", async () => {
    const { mailbox, events } = await freshTopics("order");
    const kind = uniqueName("seq");
    const keys = Array.from({ length: 200 }, (_, i) => `k${i}`);
    const host = testHost({ actors: [sequenceActor(kind, mailbox, events)] });
    hosts.push(host);
    await host.start();
    await sendSteps(mailbox, keys, 20, () => ({ delayMs: Math.floor(Math.random() * 3) }));
    const states = await waitFor(
      async () => {
        const s = await actorStates<SequenceState>(kind);
        return [...s.values()].filter((v) => v.state.lastSeq === 20).length === keys.length ? s : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 250, what: "all keys at step 20" },
    );
    for (const key of keys) {
      expect(states.get(key)?.state).toEqual({ lastSeq: 20, count: 20, violations: 0, failures: 0 });
    }
  }, 90_000);
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
