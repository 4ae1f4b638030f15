/**
 * One failure is one failure (guarantee 11): a turn whose effects Postgres refuses (a NUL or a lone surrogate in
 * its state, its events) fails alone; the turns that shared its group-commit transaction commit, first time.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { Type } from "@sinclair/typebox";
import { acquireLease } from "../../runtime/fence.ts";
import { GroupCommitter } from "../../runtime/group-commit.ts";
import { defineActor, type Host, listDeadLetters } from "../../runtime/index.ts";
import { encodeEnvelope, newEnvelope } from "../../topics/index.ts";
import { uniqueName, waitFor } from "../support.ts";
import { actorStates, database, freshTopics, kafka, testHost } from "./fixtures.ts";

const hosts: Host[] = [];
afterAll(() => Promise.all(hosts.map((h) => h.stop())));

describe("a poisoned turn among valid ones", () => {
  test("a batch whose transaction one turn fails is split: that turn fails alone with Postgres' own code, the others commit", async () => {
    const groupId = uniqueName("poison");
    const kind = uniqueName("poison");
    const topic = uniqueName("poison-topic");
    const lease = await acquireLease(database.db, { groupId, topic, partition: 0 }, "me");
    const committer = new GroupCommitter(database.sql, { maxBatch: 16, maxInFlight: 1 });
    const turn = (key: string, note: string) => ({
      lease,
      kind,
      key,
      mailbox: "m",
      partition: 0,
      offset: 1n,
      timers: [],
      messageId: Bun.randomUUIDv7(),
      expectedVersion: 0,
      state: { note },
      outbox: [{ topic, key, value: JSON.stringify({ note }) }],
    });
    // The first commit goes alone (nothing in flight yet); the next eight wait and share one transaction.
    const first = committer.commit(turn("first", "fine"));
    const rest = [
      ["a", "ok"],
      ["nul", "a\u0000b"],
      ["b", "ok"],
      ["c", "ok"],
      ["surrogate", "\ud800"],
      ["d", "ok"],
      ["e", "ok"],
      ["f", "ok"],
    ].map(([key, note]) => committer.commit(turn(key as string, note as string)));
    const outcomes = await Promise.allSettled([first, ...rest]);
    const byKey = Object.fromEntries(
      ["first", "a", "nul", "b", "c", "surrogate", "d", "e", "f"].map((k, i) => [k, outcomes[i]]),
    );
    for (const key of ["first", "a", "b", "c", "d", "e", "f"]) {
      expect(byKey[key]).toEqual({ status: "fulfilled", value: 1 });
    }
    const codeOf = (o: PromiseSettledResult<number> | undefined) =>
      o?.status === "rejected" ? (o.reason as { code?: string }).code : undefined;
    expect(codeOf(byKey.nul)).toBe("22P05"); // unsupported Unicode escape sequence
    expect(codeOf(byKey.surrogate)).toBe("22P02"); // invalid input syntax for type json
    expect(committer.stats.largestBatch).toBe(8);
    expect(committer.stats.splits).toBeGreaterThan(0);
    const states = await actorStates<{ note: string }>(kind);
    expect([...states.keys()].sort()).toEqual(["a", "b", "c", "d", "e", "f", "first"]);
    const [outbox] = await database.sql<{ n: number }[]>`
      select count(*)::int as n from outbox where topic = ${topic}`;
    expect(outbox?.n).toBe(7);
    await database.sql`delete from outbox where topic = ${topic}`;
  });

  test("through a host: the poisoned message is dead-lettered once with its SQLSTATE, its partition-mates are handled without a retry", async () => {
    const { mailbox } = await freshTopics("poison", 1); // one partition: every key shares it and its batches
    const kind = uniqueName("poison");
    const actor = defineActor({
      kind,
      mailbox,
      initialState: () => ({ notes: [] as string[] }),
      messages: { NOTE: Type.Object({ text: Type.String() }) },
      handle: async (state, message) => {
        await Bun.sleep(5); // turns finish together and meet in group-commit batches
        return { state: { notes: [...state.notes, message.payload.text] } };
      },
    });
    const host = testHost({ actors: [actor], relay: false });
    hosts.push(host);
    await host.start();
    const keys = Array.from({ length: 60 }, (_, i) => `k${i}`);
    const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
    await producer.connect();
    const note = (key: string, text: string) => ({
      key,
      value: encodeEnvelope(newEnvelope({ eventType: "NOTE", entityId: key, payload: { text } })),
    });
    await producer.send({
      topic: mailbox,
      acks: -1,
      messages: [
        ...keys.slice(0, 30).map((k) => note(k, "fine")),
        note("poisoned", "x\u0000y"),
        ...keys.slice(30).map((k) => note(k, "fine")),
        note("bad\u0000key", "fine"), // a key no actor_state row can hold
      ],
    });
    await producer.disconnect();
    await waitFor(async () => (await actorStates(kind)).size >= keys.length, {
      timeoutMs: 30_000,
      what: "every valid key handled",
    });
    const letters = await waitFor(
      async () => {
        const found = await listDeadLetters(database.db, { consumer: kind });
        return found.length >= 2 ? found : undefined;
      },
      { timeoutMs: 30_000, what: "the two poisoned messages dead-lettered" },
    );
    const states = await actorStates<{ notes: string[] }>(kind);
    for (const key of keys) expect(states.get(key)?.state).toEqual({ notes: ["fine"] });
    expect(states.get("poisoned")?.state).toEqual({ notes: [] }); // advanced past it, unchanged
    expect(letters.map((l) => [l.messageKey, l.errorCode, l.retryable]).sort()).toEqual([
      ["bad\ufffdkey", null, false], // stored with U+FFFD in place of the NUL
      ["poisoned", "22P05", false],
    ]);
    const stats = host.stats();
    expect(stats.actors[kind]?.retries).toBe(0);
    expect(stats.actors[kind]?.deadLetters).toBe(2);
    expect(stats.groupCommit?.largestBatch).toBeGreaterThan(1);
  }, 60_000);
});
