import { afterAll, describe, expect, test } from "bun:test";
import { OutboxRelay } from "../../runtime/index.ts";
import { tcpProxy, testLog, uniqueName, waitFor } from "../support.ts";
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
    // Housekeeping deletes in bounded batches; the shared test database may hold older rows of earlier runs.
    while ((await relay.housekeep(now)) > 0) {}
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

describe("outbox relay publishing", () => {
  test("a row whose id was taken first but committed last is still published (no high-water mark skips it)", async () => {
    const { provisionTopics } = await import("../../topics/index.ts");
    const topic = uniqueName("gap");
    await provisionTopics(kafka, [{ name: topic, role: "events", partitions: 1 }]);
    const early = database.sql.reserve();
    const tx = await early;
    await tx`begin`;
    // Takes the lower id now, commits later.
    await tx`insert into outbox (topic, message_key, value) values (${topic}, 'k', 'early')`;
    await database.sql`insert into outbox (topic, message_key, value) values (${topic}, 'k', 'late')`;
    const seen: string[] = [];
    const consumer = kafka.consumer({ groupId: uniqueName("gap-reader") });
    await consumer.connect();
    await consumer.subscribe({ topic, fromBeginning: true });
    await consumer.run({
      eachMessage: async ({ message }) => void seen.push(message.value?.toString() ?? ""),
    });
    relay.start();
    relay.notify();
    await waitFor(() => seen.includes("late"), { what: "the committed row published" });
    await tx`commit`;
    tx.release();
    relay.notify();
    await waitFor(() => seen.includes("early"), { what: "the late-committing row published too" });
    expect(seen).toEqual(["late", "early"]);
    await consumer.disconnect();
  }, 60_000);
});

describe("relays on every host", () => {
  test("two relays at once publish each row once, in order per key; when the publishing one stops, the other takes over", async () => {
    const { provisionTopics } = await import("../../topics/index.ts");
    const topic = uniqueName("relays");
    await provisionTopics(kafka, [{ name: topic, role: "events", partitions: 3 }]);
    await relay.stop(); // this file's relay from the tests above
    const one = new OutboxRelay({
      kafka,
      databaseUrl: config.postgres.url,
      log: testLog,
      pollIntervalMs: 20,
    });
    const two = new OutboxRelay({
      kafka,
      databaseUrl: config.postgres.url,
      log: testLog,
      pollIntervalMs: 20,
    });
    one.start();
    two.start();
    const seen = new Map<string, number[]>();
    const consumer = kafka.consumer({ groupId: uniqueName("relays-reader") });
    await consumer.connect();
    await consumer.subscribe({ topic, fromBeginning: true });
    await consumer.run({
      eachMessage: async ({ message }) => {
        const key = message.key?.toString() ?? "";
        seen.set(key, [...(seen.get(key) ?? []), Number(message.value?.toString())]);
      },
    });
    const write = async (from: number, to: number) => {
      for (let seq = from; seq <= to; seq++) {
        for (const key of ["a", "b", "c", "d", "e"]) {
          await database.sql`insert into outbox (topic, message_key, value) values (${topic}, ${key}, ${String(seq)})`;
        }
      }
    };
    const total = () => [...seen.values()].reduce((n, list) => n + list.length, 0);
    await write(1, 40);
    await waitFor(() => total() >= 200, { timeoutMs: 30_000, what: "200 rows published" });
    // A relay counts rows once it marked them published, a moment after the consumer saw them.
    await waitFor(() => one.stats.published + two.stats.published >= 200, { what: "rows marked published" });
    const leaders = [one, two].filter((r) => r.stats.published > 0);
    expect(leaders).toHaveLength(1);
    const [leader, standby] = leaders[0] === one ? [one, two] : [two, one];
    await leader.stop();
    const before = standby.stats.published;
    await write(41, 60);
    await waitFor(() => total() >= 300, { timeoutMs: 30_000, what: "the standby publishing" });
    // (Counts may include other tests' leftover rows of other topics, hence "at least".)
    await waitFor(() => standby.stats.published - before >= 100, { what: "the standby marking its rows" });
    for (const key of ["a", "b", "c", "d", "e"]) {
      expect(seen.get(key)).toEqual(Array.from({ length: 60 }, (_, i) => i + 1));
    }
    await standby.stop();
    await consumer.disconnect();
  }, 90_000);
});

describe("a topic that cannot be published", () => {
  test("does not hold up the others: their rows go out while its send is still failing, and it is held back", async () => {
    const { provisionTopics } = await import("../../topics/index.ts");
    const good = uniqueName("ok");
    const missing = uniqueName("missing"); // never created (the broker does not create topics on demand)
    await provisionTopics(kafka, [{ name: good, role: "events", partitions: 1 }]);
    // The missing topic's row comes first: a relay that waits for every send of a batch would wait for it.
    await database.sql`insert into outbox (topic, message_key, value) values (${missing}, 'k', 'stuck')`;
    for (let i = 0; i < 5; i++) {
      await database.sql`insert into outbox (topic, message_key, value) values (${good}, 'k', ${String(i)})`;
    }
    const alone = new OutboxRelay({
      kafka,
      databaseUrl: config.postgres.url,
      log: testLog,
      pollIntervalMs: 20,
    });
    await relay.stop(); // (stopped already if the tests above ran; a second stop is harmless)
    alone.start();
    try {
      const published = async () =>
        (
          await database.sql`select count(*)::int as n from outbox where topic = ${good} and published_at is not null`
        )[0]?.n === 5;
      await waitFor(published, { timeoutMs: 30_000, what: "the good topic's rows published" });
      // Its send to the missing topic had not even failed yet when the others were out. (Asked of that topic:
      // the shared database may hold other runs' rows for topics that are gone, whose sends fail too.)
      const heldBackWhenGoodWasOut = alone.heldBack(missing);
      await waitFor(() => alone.heldBack(missing), {
        timeoutMs: 30_000,
        what: "the missing topic's send to fail",
      });
      expect(heldBackWhenGoodWasOut).toBe(false);
      const [stuck] = await database.sql`select published_at from outbox where topic = ${missing}`;
      expect(stuck?.published_at).toBeNull();
    } finally {
      await alone.stop();
      await database.sql`delete from outbox where topic in (${missing}, ${good})`;
    }
  }, 60_000);
});

describe("a session that stops answering", () => {
  test("is given up and replaced: rows written after it hung are still published", async () => {
    const { provisionTopics } = await import("../../topics/index.ts");
    const topic = uniqueName("hung");
    await provisionTopics(kafka, [{ name: topic, role: "events", partitions: 1 }]);
    // The publisher reaches Postgres through a proxy whose open connections can be made to hang.
    const real = new URL(config.postgres.url);
    const proxy = await tcpProxy({ host: real.hostname, port: Number(real.port || 5432) });
    const viaProxy = new URL(config.postgres.url);
    viaProxy.hostname = "127.0.0.1";
    viaProxy.port = String(proxy.port);
    const lease = { groupId: uniqueName("hung-g"), topic: uniqueName("hung-src"), partition: 0, epoch: 1 };
    const publisher = new OutboxRelay({
      kafka,
      databaseUrl: viaProxy.toString(),
      log: testLog,
      leases: () => [lease],
      pollIntervalMs: 100,
      statementTimeoutMs: 1000,
    });
    const write = (value: string) => database.sql`
      insert into outbox (topic, message_key, value, source_group, source_topic, source_partition, source_epoch)
      values (${topic}, 'k', ${value}, ${lease.groupId}, ${lease.topic}, 0, 1)`;
    const seen: string[] = [];
    const consumer = kafka.consumer({ groupId: uniqueName("hung-reader") });
    await consumer.connect();
    await consumer.subscribe({ topic, fromBeginning: true });
    await consumer.run({
      eachMessage: async ({ message }) => void seen.push(message.value?.toString() ?? ""),
    });
    try {
      publisher.start();
      await write("before");
      await waitFor(() => seen.includes("before"), { timeoutMs: 30_000, what: "the first row published" });
      proxy.freeze(); // the publisher's session now gets neither answers nor errors
      await write("after");
      publisher.notify();
      await waitFor(() => seen.includes("after"), {
        timeoutMs: 20_000,
        what: "the row written after the hang",
      });
      expect(publisher.stats.reopened).toBeGreaterThan(0);
      expect(seen.filter((v) => v === "after")).toHaveLength(1);
    } finally {
      await consumer.disconnect();
      await publisher.stop().catch(() => {});
      await proxy.close();
    }
  }, 60_000);
});

describe("a partition's publisher sending rows as they are committed", () => {
  test("rows offered while its lost owner's rows are still unpublished go out after them, in id order; once none is left, offered rows go out as offered", async () => {
    const { provisionTopics } = await import("../../topics/index.ts");
    const { acquireLease } = await import("../../runtime/fence.ts");
    const topic = uniqueName("offer");
    await provisionTopics(kafka, [{ name: topic, role: "events", partitions: 1 }]);
    const lease = await acquireLease(
      database.db,
      { groupId: uniqueName("g"), topic: uniqueName("src"), partition: 0 },
      "test-host",
    );
    /** Writes rows for key k (as a turn's commit does, under the lease); returns them as the publisher is offered them. */
    const write = async (from: number, to: number) => {
      const rows = [];
      for (let seq = from; seq <= to; seq++) {
        const [row] = await database.sql<{ id: string }[]>`
          insert into outbox (topic, message_key, value, source_group, source_topic, source_partition, source_epoch)
          values (${topic}, 'k', ${String(seq)}, ${lease.groupId}, ${lease.topic}, ${lease.partition}, ${lease.epoch})
          returning id`;
        rows.push({ id: String(row?.id), topic, key: "k", headers: {}, value: String(seq), lease });
      }
      return rows;
    };
    await write(1, 20); // its lost owner's, never published
    const publisher = new OutboxRelay({
      kafka,
      databaseUrl: config.postgres.url,
      log: testLog,
      pollIntervalMs: 20,
      leases: () => [lease],
    });
    const seen: number[] = [];
    const consumer = kafka.consumer({ groupId: uniqueName("offer-reader") });
    await consumer.connect();
    await consumer.subscribe({ topic, fromBeginning: true });
    await consumer.run({
      eachMessage: async ({ message }) => void seen.push(Number(message.value?.toString())),
    });
    try {
      publisher.start();
      // Committed by the new owner before anything of the lost owner's went out: offered at once.
      publisher.offer(await write(21, 30));
      await waitFor(() => seen.length >= 30, { timeoutMs: 30_000, what: "30 rows published" });
      expect(seen).toEqual(Array.from({ length: 30 }, (_, i) => i + 1));
      // Nothing of the partition left: now what is offered is sent as offered, and marked published after.
      await waitFor(() => publisher.stats.sweeps > 2, { what: "a sweep finding nothing" });
      const before = publisher.stats.sentAsCommitted;
      publisher.offer(await write(31, 40));
      await waitFor(() => seen.length >= 40, { timeoutMs: 30_000, what: "40 rows published" });
      expect(seen).toEqual(Array.from({ length: 40 }, (_, i) => i + 1));
      expect(publisher.stats.sentAsCommitted - before).toBe(10);
      await waitFor(
        async () =>
          (
            await database.sql<{ n: number }[]>`
              select count(*)::int as n from outbox where topic = ${topic} and published_at is null`
          )[0]?.n === 0,
        { what: "every row marked published" },
      );
    } finally {
      await publisher.stop();
      await consumer.disconnect();
      await database.sql`delete from outbox where topic = ${topic}`;
    }
  }, 60_000);
});
