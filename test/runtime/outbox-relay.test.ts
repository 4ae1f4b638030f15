import { afterAll, describe, expect, test } from "bun:test";
import { OutboxRelay } from "../../runtime/index.ts";
import { testLog, uniqueName } from "../support.ts";
import { config, database, kafka } from "./fixtures.ts";

const relay = new OutboxRelay({ kafka, databaseUrl: config.postgres.url, log: testLog });
afterAll(() => relay.stop());

describe("outbox relay housekeeping", () => {
  test("deletes published outbox rows and inbox ids past their retention, and nothing else", async () => {
    const topic = uniqueName("hk");
    const consumer = uniqueName("hk");
    const now = new Date();
    const hoursAgo = (h: number) => new Date(now.getTime() - h * 3_600_000).toISOString();
    await database.sql`
      insert into outbox (topic, message_key, value, published_at, created_at) values
        (${topic}, 'old', '{}', ${hoursAgo(2)}, ${hoursAgo(2)}),
        (${topic}, 'recent', '{}', ${hoursAgo(0.5)}, ${hoursAgo(0.5)}),
        (${topic}, 'unpublished', '{}', null, ${hoursAgo(5)})`;
    const [oldId, newId] = [Bun.randomUUIDv7(), Bun.randomUUIDv7()];
    await database.sql`
      insert into inbox (consumer, event_id, handled_at) values
        (${consumer}, ${oldId}, ${hoursAgo(9 * 24)}), (${consumer}, ${newId}, ${hoursAgo(1)})`;
    await relay.housekeep(now);
    const outbox = await database.sql<{ message_key: string }[]>`
      select message_key from outbox where topic = ${topic} order by id`;
    // The unpublished row stays, however old; it is never removed before it is sent.
    expect(outbox.map((r) => r.message_key)).toEqual(["recent", "unpublished"]);
    const inbox = await database.sql<
      { event_id: string }[]
    >`select event_id from inbox where consumer = ${consumer}`;
    expect(inbox.map((r) => r.event_id)).toEqual([newId]);
    await database.sql`delete from outbox where topic = ${topic}`;
  });
});
