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
