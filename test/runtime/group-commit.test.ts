import { describe, expect, test } from "bun:test";
import { DuplicateMessageError, StaleStateError } from "../../runtime/actor-store.ts";
import { acquireLease } from "../../runtime/fence.ts";
import { GroupCommitter } from "../../runtime/group-commit.ts";
import { FencedError } from "../../runtime/index.ts";
import { uniqueName } from "../support.ts";
import { database } from "./fixtures.ts";

describe("group commit", () => {
  test("turns in one batch keep their own outcomes: a fenced, a duplicate and a stale turn fail alone; the rest commit", async () => {
    const groupId = uniqueName("gc");
    const kind = uniqueName("gc");
    const topic = uniqueName("gc-topic");
    const mine = await acquireLease(database.db, { groupId, topic, partition: 0 }, "me");
    const stolen = await acquireLease(database.db, { groupId, topic, partition: 1 }, "me");
    await acquireLease(database.db, { groupId, topic, partition: 1 }, "someone else"); // bumps partition 1
    const seenId = Bun.randomUUIDv7();
    await database.sql`insert into inbox (consumer, event_id) values (${kind}, ${seenId})`;
    await database.sql`insert into actor_state (kind, actor_key, state, version) values (${kind}, 'moved-on', '{}'::jsonb, 5)`;

    const committer = new GroupCommitter(database.sql, { maxBatch: 10, maxInFlight: 1 });
    const base = { kind, mailbox: "m", partition: 0, offset: 1n, timers: [] };
    const turn = (key: string, over: Record<string, unknown> = {}) => ({
      ...base,
      lease: mine,
      key,
      messageId: Bun.randomUUIDv7(),
      expectedVersion: 0,
      state: { key },
      outbox: [{ topic, key, value: JSON.stringify({ key }) }],
      ...over,
    });
    const staleId = Bun.randomUUIDv7();
    const outcomes = await Promise.allSettled([
      committer.commit(turn("good-1")),
      committer.commit(turn("fenced", { lease: stolen, partition: 1 })),
      committer.commit(turn("duplicate", { messageId: seenId })),
      committer.commit(turn("moved-on", { messageId: staleId, expectedVersion: 2 })),
      committer.commit(turn("good-2")),
    ]);
    const [good1, fenced, duplicate, stale, good2] = outcomes;
    expect(good1).toEqual({ status: "fulfilled", value: 1 });
    expect(good2).toEqual({ status: "fulfilled", value: 1 });
    expect(fenced.status === "rejected" && fenced.reason).toBeInstanceOf(FencedError);
    expect(duplicate.status === "rejected" && duplicate.reason).toBeInstanceOf(DuplicateMessageError);
    expect(stale.status === "rejected" && stale.reason).toBeInstanceOf(StaleStateError);
    expect(committer.stats.largestBatch).toBeGreaterThanOrEqual(2);

    const states = await database.sql<{ actor_key: string; version: string }[]>`
      select actor_key, version from actor_state where kind = ${kind} order by actor_key`;
    expect(states.map((s) => [s.actor_key, Number(s.version)])).toEqual([
      ["good-1", 1],
      ["good-2", 1],
      ["moved-on", 5],
    ]);
    const outbox = await database.sql<{ message_key: string }[]>`
      select message_key from outbox where topic = ${topic} order by id`;
    expect(outbox.map((o) => o.message_key).sort()).toEqual(["good-1", "good-2"]);
    // The stale turn's inbox row was undone, so its retry is not mistaken for a duplicate.
    const [staleInbox] = await database.sql<{ n: number }[]>`
      select count(*)::int as n from inbox where consumer = ${kind} and event_id = ${staleId}`;
    expect(staleInbox?.n).toBe(0);
    await database.sql`delete from outbox where topic = ${topic}`;
  });
});
