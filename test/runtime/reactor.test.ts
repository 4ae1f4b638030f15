import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { sql as drizzleSql } from "drizzle-orm";
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
    const host = testHost({ actors: [], reactors: [reactor] });
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
    const letters = await listDeadLetters(database.db, { consumer: name });
    expect(letters.map((l) => [l.errorClass, l.value?.toString()])).toEqual([
      ["DecodeError", "not an event"],
    ]);
  }, 60_000);
});

describe("reactor group commit", () => {
  test("events handled in one transaction keep their own outcomes: a throwing handler undoes only its own writes and inbox row", async () => {
    const { ReactorBatcher } = await import("../../runtime/reactor-batch.ts");
    const { drizzle } = await import("drizzle-orm/postgres-js");
    const { schema } = await import("../../db/index.ts");
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
    // One transaction in flight at a time, so the three events queued together share the next one.
    const batcher = new ReactorBatcher(
      database.sql,
      reactor,
      (tx) => drizzle(Object.assign(tx, { options: database.sql.options }) as never, { schema }),
      { maxBatch: 10, maxInFlight: 1 },
    );
    const events = [1, 2, 3].map((seq) =>
      newEnvelope({ eventType: "E", entityId: `k${seq}`, payload: { seq } }),
    );
    const turn = (event: (typeof events)[number], offset: number) => ({
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
    const outcomes = await Promise.allSettled(events.map((e, i) => batcher.run(turn(e, i + 1))));
    await blocker;
    expect(outcomes.map((o) => o.status)).toEqual(["fulfilled", "rejected", "fulfilled"]);
    expect(batcher.stats.largestBatch).toBe(3);
    const written = await database.sql<{ seq: number }[]>`
      select seq from test_reactor_effect where reactor = ${name} order by seq`;
    expect(written.map((r) => r.seq)).toEqual([0, 1, 3]);
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
