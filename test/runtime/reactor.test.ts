import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { sql as drizzleSql } from "drizzle-orm";
import pino from "pino";
import { defineReactor, type Host, listDeadLetters, RetryableError } from "../../runtime/index.ts";
import { encodeEnvelope, newEnvelope } from "../../topics/index.ts";
import { uniqueName, waitFor } from "../support.ts";
import { database, freshTopics, kafka, testHost } from "./fixtures.ts";

const hosts: Host[] = [];
beforeAll(async () => {
  // The reactor's own effect table, for this test only.
  await database.sql`create table if not exists test_reactor_effect (reactor text, event_id uuid, seq int)`;
});
afterAll(() => Promise.all(hosts.map((h) => h.stop())));

describe("reactors", () => {
  test("a reactor's write happens once per eventId, even when the same event arrives twice; failures retry, poison is dead-lettered", async () => {
    const { events } = await freshTopics("reactor", 3);
    const name = uniqueName("audit");
    let flakyFailures = 0;
    const reactor = defineReactor({
      name,
      topics: [events],
      supervision: { backoff: { baseMs: 50, maxMs: 50, jitter: 0 } },
      async handle(event, { sql, tx }) {
        const seq = Number(event.payload.seq);
        // Odd events are written through postgres.js, even ones through drizzle: the same transaction either way.
        if (seq % 2 === 1) {
          await sql`insert into test_reactor_effect (reactor, event_id, seq) values (${name}, ${event.eventId}, ${seq})`;
        } else {
          await tx.execute(
            drizzleSql`insert into test_reactor_effect (reactor, event_id, seq) values (${name}, ${event.eventId}, ${seq})`,
          );
        }
        // Fails after writing: the write must roll back with the inbox row, and the retry write it once.
        if (seq === 3 && flakyFailures < 2) {
          flakyFailures++;
          throw new RetryableError("audit store busy");
        }
      },
    });
    // Its log lines, to check what each says of its event.
    const lines: Record<string, unknown>[] = [];
    const log = pino({ level: "warn" }, { write: (line: string) => lines.push(JSON.parse(line)) });
    const host = testHost({ actors: [], reactors: [reactor], log });
    hosts.push(host);
    await host.start();

    const sent = [1, 2, 3, 4].map((seq) =>
      newEnvelope({ eventType: "THING_HAPPENED", entityId: `e${seq % 2}`, payload: { seq } }),
    );
    // Idempotent: a plain producer that retries a request after a partial failure writes records twice.
    const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
    await producer.connect();
    await producer.send({
      topic: events,
      messages: [
        ...sent.map((e) => ({ key: e.entityId, value: encodeEnvelope(e) })),
        // The same events again, as a relay that crashed after publishing would send them.
        { key: sent[0]?.entityId ?? "", value: encodeEnvelope(sent[0] as (typeof sent)[number]) },
        { key: sent[3]?.entityId ?? "", value: encodeEnvelope(sent[3] as (typeof sent)[number]) },
        { key: "e9", value: "not an event" },
      ],
    });
    await producer.disconnect();

    await waitFor(
      () =>
        (host.stats().reactors[name]?.handled ?? 0) >= 4 &&
        (host.stats().reactors[name]?.duplicates ?? 0) >= 2 &&
        (host.stats().reactors[name]?.deadLetters ?? 0) >= 1,
      { what: "four handled, two duplicates, one dead letter" },
    );
    const rows = await database.sql<{ event_id: string; seq: number }[]>`
      select event_id, seq from test_reactor_effect where reactor = ${name} order by seq`;
    expect(rows.map((r) => [r.event_id, r.seq])).toEqual(sent.map((e) => [e.eventId, e.payload.seq]));
    // A rebalance while the group forms may deliver a partition's records again: more duplicates are then
    // seen, but the writes above stay once per eventId and the dead letter once per record.
    const stats = host.stats().reactors[name];
    expect(stats).toMatchObject({ handled: 4, retries: 2, deadLetters: 1 });
    expect(stats?.duplicates).toBeGreaterThanOrEqual(2);
    // A retry's line names the event: reactor, where it was read, its type, id and correlation id.
    const retry = lines.find((l) => l.msg === "reactor failed; retrying");
    expect(retry).toMatchObject({
      reactor: name,
      topic: events,
      key: "e1",
      eventType: "THING_HAPPENED",
      eventId: sent[2]?.eventId,
      correlationId: sent[2]?.correlationId,
      attempt: 1,
    });
    expect(typeof retry?.partition).toBe("number");
    expect(typeof retry?.offset).toBe("string");
    const letters = await listDeadLetters(database.db, { consumer: name });
    expect(letters.map((l) => [l.errorClass, l.value?.toString()])).toEqual([
      ["DecodeError", "not an event"],
    ]);
  }, 60_000);
});

describe("reactors of one host", () => {
  test("a reactor waiting on a row lock does not hold up another reactor of the same events", async () => {
    const { events } = await freshTopics("reactor-lock", 2);
    await database.sql`create table if not exists test_reactor_lock (id text primary key)`;
    const row = uniqueName("row");
    await database.sql`insert into test_reactor_lock (id) values (${row})`;
    const lockerName = uniqueName("locker");
    const locker = defineReactor({
      name: lockerName,
      topics: [events],
      supervision: { backoff: { baseMs: 50, maxMs: 50, jitter: 0 } },
      async handle(_event, { sql }) {
        await sql`select id from test_reactor_lock where id = ${row} for update`;
      },
    });
    const quickName = uniqueName("quick");
    const quick = defineReactor({
      name: quickName,
      topics: [events],
      async handle(event, { sql }) {
        await sql`insert into test_reactor_effect (reactor, event_id, seq) values (${quickName}, ${event.eventId}, ${Number(event.payload.seq)})`;
      },
    });
    const host = testHost({ actors: [], reactors: [locker, quick] });
    hosts.push(host);
    await host.start();
    const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
    await producer.connect();
    const send = (seqs: number[]) => {
      const sent = seqs.map((seq) =>
        newEnvelope({ eventType: "THING_HAPPENED", entityId: `k${seq}`, payload: { seq } }),
      );
      return producer.send({
        topic: events,
        messages: sent.map((e) => ({ key: e.entityId, value: encodeEnvelope(e) })),
      });
    };
    // First an event while nothing is locked: both reactors are then reading and warm.
    await send([0]);
    await waitFor(
      () =>
        (host.stats().reactors[quickName]?.handled ?? 0) >= 1 &&
        (host.stats().reactors[lockerName]?.handled ?? 0) >= 1,
      { what: "the first event, by both" },
    );

    // Someone else holds the row the locker needs, for as long as this test looks.
    let release: () => void = () => {};
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    let locked: () => void = () => {};
    const isLocked = new Promise<void>((resolve) => {
      locked = resolve;
    });
    const holder = database.sql.begin(async (tx) => {
      await tx`select id from test_reactor_lock where id = ${row} for update`;
      locked();
      await held;
    });
    await isLocked;
    try {
      const sentAt = Date.now();
      await send([1, 2, 3, 4, 5, 6]);
      // Within the 2 s a reactor's transaction waits for a lock before it gives up (and its batch is split): the
      // quick reactor's events never shared a transaction with the locker's.
      await waitFor(() => (host.stats().reactors[quickName]?.handled ?? 0) >= 7, {
        timeoutMs: 1500,
        what: "the quick reactor's events while the locker waits",
      });
      const tookMs = Date.now() - sentAt;
      const rows = await database.sql<{ seq: number }[]>`
        select seq from test_reactor_effect where reactor = ${quickName} order by seq`;
      expect(rows.map((r) => r.seq)).toEqual([0, 1, 2, 3, 4, 5, 6]);
      expect(tookMs).toBeLessThan(1500);
      expect(host.stats().reactors[lockerName]?.handled ?? 0).toBe(1); // the others still wait on the lock
    } finally {
      release();
      await holder;
      await producer.disconnect();
    }
    await waitFor(() => (host.stats().reactors[lockerName]?.handled ?? 0) >= 7, {
      what: "the locker's events once the row is free",
    });
  }, 60_000);
});

describe("reactor group commit", () => {
  test("events handled in one transaction keep their own outcomes: a throwing handler undoes only its own writes and inbox row, not another reactor's work on the same event", async () => {
    const { ReactorBatcher } = await import("../../runtime/reactor-batch.ts");
    const { drizzle } = await import("drizzle-orm/postgres-js");
    const name = uniqueName("batch");
    const lease = { groupId: uniqueName("g"), topic: uniqueName("t"), partition: 0 };
    const { acquireLease } = await import("../../runtime/fence.ts");
    const taken = await acquireLease(database.db, lease, "me");
    const reactor = defineReactor({
      name,
      topics: ["unused"],
      async handle(event, { sql }) {
        await sql`insert into test_reactor_effect (reactor, event_id, seq) values (${name}, ${event.eventId}, ${Number(event.payload.seq)})`;
        if (event.payload.seq === 2) throw new RetryableError("event 2 fails after its write");
        return { emit: [{ topic: "unused-events", type: "SEEN", payload: { seq: event.payload.seq } }] };
      },
    });
    // A second reactor of the same events, in the same batches (a batcher may hold several reactors' pairs).
    const otherName = uniqueName("other");
    const other = defineReactor({
      name: otherName,
      topics: ["unused"],
      async handle(event, { sql }) {
        await sql`insert into test_reactor_effect (reactor, event_id, seq) values (${otherName}, ${event.eventId}, ${Number(event.payload.seq)})`;
      },
    });
    // One transaction in flight at a time, so the turns queued together share the next one.
    const batcher = new ReactorBatcher(
      database.sql,
      (tx) => drizzle(Object.assign(tx, { options: database.sql.options }) as never),
      { maxBatch: 10, maxInFlight: 1 },
    );
    const events = [1, 2, 3].map((seq) =>
      newEnvelope({ eventType: "E", entityId: `k${seq}`, payload: { seq } }),
    );
    const turn = (event: (typeof events)[number], offset: number, by = reactor) => ({
      reactor: by,
      lease: taken,
      record: {
        topic: "t",
        partition: 0,
        offset: BigInt(offset),
        key: event.entityId,
        value: null,
        headers: {},
        timestamp: "0",
      },
      event,
      attempt: 1,
      now: new Date(),
    });
    const first = newEnvelope({ eventType: "E", entityId: "k0", payload: { seq: 0 } });
    const blocker = batcher.run(turn(first, 0));
    const outcomes = await Promise.allSettled(
      events.flatMap((e, i) => [batcher.run(turn(e, i + 1)), batcher.run(turn(e, i + 1, other))]),
    );
    await blocker;
    expect(outcomes.map((o) => o.status)).toEqual([
      "fulfilled",
      "fulfilled",
      "rejected",
      "fulfilled",
      "fulfilled",
      "fulfilled",
    ]);
    expect(batcher.stats.largestBatch).toBe(6);
    const written = await database.sql<{ seq: number }[]>`
      select seq from test_reactor_effect where reactor = ${name} order by seq`;
    expect(written.map((r) => r.seq)).toEqual([0, 1, 3]);
    const otherWrote = await database.sql<{ seq: number }[]>`
      select seq from test_reactor_effect where reactor = ${otherName} order by seq`;
    expect(otherWrote.map((r) => r.seq)).toEqual([1, 2, 3]);
    const inbox = await database.sql<
      { event_id: string }[]
    >`select event_id from inbox where consumer = ${name}`;
    expect(inbox.map((r) => r.event_id).sort()).toEqual(
      [first.eventId, events[0]?.eventId, events[2]?.eventId].sort() as string[],
    );
    // The failed event runs again alone (as the runner retries it) and is not taken for a duplicate.
    const again = await batcher
      .run({ ...turn(events[1] as (typeof events)[number], 2), attempt: 2 })
      .catch((e) => e);
    expect(again).toBeInstanceOf(RetryableError); // it still throws: its handler always fails on seq 2
    const outbox = await database.sql<
      { value: string }[]
    >`select value from outbox where topic = 'unused-events'
      and value::jsonb->>'causationId' in ${database.sql(events.map((e) => e.eventId))}`;
    expect(outbox.map((r) => JSON.parse(r.value).payload.seq).sort()).toEqual([1, 3]);
    await database.sql`delete from outbox where topic = 'unused-events'`;
  });
});
