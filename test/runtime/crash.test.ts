import { afterAll, describe, expect, test } from "bun:test";
import { uniqueName, waitFor } from "../support.ts";
import {
  actorStates,
  database,
  freshTopics,
  kafka,
  killChildren,
  type SequenceState,
  sendSteps,
  spawnHost,
} from "./fixtures.ts";

afterAll(killChildren);

describe("crash safety", () => {
  test("SIGKILL mid-stream, three times: every step takes effect exactly once, in order, events all published, commits never ahead of effects", async () => {
    const { mailbox, events } = await freshTopics("crash");
    const kind = uniqueName("crash");
    const env = {
      TEST_MAILBOX: mailbox,
      TEST_EVENTS: events,
      TEST_KIND: kind,
      TEST_GROUP_PREFIX: uniqueName("g"),
      TEST_HOST_ID: "crash-host",
    };
    const groupId = `${env.TEST_GROUP_PREFIX}.actor.${kind}`;
    const keys = Array.from({ length: 500 }, (_, i) => `key-${i}`);
    const perKey = 12;
    const total = keys.length * perKey;
    await sendSteps(mailbox, keys, perKey);

    const applied = async () => {
      let n = 0;
      for (const v of (await actorStates<SequenceState>(kind)).values()) n += v.state.count;
      return n;
    };
    const admin = kafka.admin();
    await admin.connect();
    const snapshots: { committed: Map<number, bigint>; lastOffsets: Map<string, bigint> }[] = [];
    for (let kill = 1; kill <= 3; kill++) {
      const { child } = await spawnHost(env);
      const target = Math.floor((total * kill) / 4);
      await waitFor(async () => (await applied()) >= target, {
        timeoutMs: 60_000,
        what: `${target} steps applied`,
      });
      child.kill("SIGKILL");
      await child.exited;
      // Dead host: what Kafka says is committed must already be in Postgres.
      const [offsets] = await admin.fetchOffsets({ groupId, topics: [mailbox] });
      const committed = new Map((offsets?.partitions ?? []).map((p) => [p.partition, BigInt(p.offset)]));
      const rows = await database.sql<{ actor_key: string; last_offset: string }[]>`
        select actor_key, last_offset from actor_state where kind = ${kind}`;
      snapshots.push({
        committed,
        lastOffsets: new Map(rows.map((r) => [r.actor_key, BigInt(r.last_offset)])),
      });
    }
    const { child: survivor, output } = await spawnHost(env);
    await waitFor(async () => (await applied()) >= total, { timeoutMs: 90_000, what: "all steps applied" });

    const states = await actorStates<SequenceState>(kind);
    for (const key of keys) {
      expect(states.get(key)?.state).toEqual({ lastSeq: perKey, count: perKey, violations: 0, failures: 0 });
    }

    // Every record's offset, to check the snapshots: below a partition's committed offset, every key's state
    // had reached its record.
    const byOffset = new Map<string, string>();
    const reader = kafka.consumer({ groupId: uniqueName("reader") });
    await reader.connect();
    await reader.subscribe({ topic: mailbox, fromBeginning: true });
    await reader.run({
      eachMessage: async ({ partition, message }) =>
        void byOffset.set(`${partition}:${message.offset}`, message.key?.toString() ?? ""),
    });
    await waitFor(() => byOffset.size >= total, { timeoutMs: 30_000, what: "whole mailbox read" });
    await reader.disconnect();
    let checked = 0;
    for (const snapshot of snapshots) {
      for (const [pk, key] of byOffset) {
        const [p, o] = pk.split(":").map(BigInt) as [bigint, bigint];
        const committed = snapshot.committed.get(Number(p)) ?? -1n;
        if (o < committed) {
          expect(snapshot.lastOffsets.get(key) ?? -1n).toBeGreaterThanOrEqual(o);
          checked++;
        }
      }
    }
    expect(checked).toBeGreaterThan(0);

    // The outbox published every event; the topic holds each (key, step) at least once.
    await waitFor(
      async () => {
        const [row] = await database.sql<{ n: number }[]>`
          select count(*)::int as n from outbox where topic = ${events} and published_at is null`;
        return row?.n === 0;
      },
      { what: "outbox drained" },
    );
    const [written] = await database.sql<
      { n: number }[]
    >`select count(*)::int as n from outbox where topic = ${events}`;
    expect(written?.n).toBe(total);
    const seen = new Set<string>();
    const eventsReader = kafka.consumer({ groupId: uniqueName("events") });
    await eventsReader.connect();
    await eventsReader.subscribe({ topic: events, fromBeginning: true });
    await eventsReader.run({
      eachMessage: async ({ message }) => {
        const envelope = JSON.parse(message.value?.toString() ?? "{}");
        seen.add(`${envelope.entityId}:${envelope.payload.seq}`);
      },
    });
    await waitFor(() => seen.size >= total, { timeoutMs: 30_000, what: "every event on the topic" });
    await eventsReader.disconnect();
    expect(seen.size).toBe(total);

    survivor.kill("SIGTERM");
    await survivor.exited;
    // What the last host found already done (redelivered after the kills): informative, it varies run to run.
    const last = (await output()).trim().split("\n").at(-1) ?? "{}";
    const stats = JSON.parse(last).actors?.[kind];
    console.log(`[crash] survivor: ${stats?.turns} turns, ${stats?.skipped} redelivered records skipped`);
    await admin.disconnect();
  }, 300_000);
});
