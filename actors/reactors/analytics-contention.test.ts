/**
 * The analytics reactor on two hosts at once, as when PITSTOP_RUN scales reactors out: every event of a day moves
 * the same few figures, from batches of both hosts in any order, and both hosts' folders move them into the same
 * `daily_stat` rows at once. Nothing may deadlock, retry or be dead-lettered, and every figure must come out
 * exact, in Postgres and in Redis.
 */
import { afterAll, expect, test } from "bun:test";
import { openDatabase } from "../../db/index.ts";
import { createHost, type Host, openRedis } from "../../runtime/index.ts";
import { testConfig, testKafka, testLog, uniqueName, waitFor } from "../../test/support.ts";
import { encodeEnvelope, newEnvelope, provisionTopics, topicCatalogue } from "../../topics/index.ts";
import { topicsIn } from "../events.ts";
import { analyticsReactor, dailyFigures, dailyStatFolder } from "./analytics.ts";

const config = testConfig();
const kafka = testKafka(config);
const namespace = uniqueName("an")
  .toLowerCase()
  .replace(/[^a-z0-9-]/g, "");
const topics = topicsIn(namespace);
const redis = openRedis(config.redis.url);
const pools = [
  openDatabase(config.postgres.url, { max: 10 }),
  openDatabase(config.postgres.url, { max: 10 }),
];
const db = pools[0] as (typeof pools)[number];
const hosts: Host[] = [];
// The shared test database holds other runs' deltas too: these folders fold them as well, which is fine.
const folders = pools.map((p) => dailyStatFolder({ sql: p.sql, redis, log: testLog, intervalMs: 50 }));
const day = new Date(Date.UTC(1970, 0, 1) + Math.floor(Math.random() * 3650) * 86_400_000)
  .toISOString()
  .slice(0, 10);

afterAll(async () => {
  await Promise.allSettled(hosts.map((h) => h.stop()));
  await Promise.all(folders.map((f) => f.stop()));
  await db.sql`delete from daily_stat where day = ${day}`;
  await db.sql`delete from daily_stat_delta where day = ${day}`;
  await redis.del(`daily:bookings:${day}`, `daily:cancellations:${day}`, `daily:revenue:${day}`);
  const admin = kafka.admin();
  await admin.connect();
  await admin.deleteTopics({ topics: topicCatalogue(3, namespace).map((t) => t.name) }).catch(() => {});
  await admin.disconnect();
  await Promise.allSettled([...pools.map((p) => p.close()), redis.quit()]);
}, 60_000);

test("two hosts counting the same day at once: no deadlock, no retry, no dead letter, every figure exact", async () => {
  await provisionTopics(kafka, topicCatalogue(3, namespace));
  const groupPrefix = uniqueName("g-an");
  for (const [i, database] of pools.entries()) {
    const host = createHost({
      kafka,
      database,
      databaseUrl: config.postgres.url,
      log: testLog,
      groupPrefix,
      hostId: `analytics-${i}`,
      relay: false,
      reactors: [analyticsReactor({ topics, redis, log: testLog, natsPrefix: namespace })],
      tuning: {
        commitIntervalMs: 100,
        sessionTimeoutMs: 6000,
        heartbeatIntervalMs: 500,
        drainTimeoutMs: 5000,
      },
    });
    hosts.push(host);
    await host.start();
  }
  for (const f of folders) f.start();
  const deadlocks = async () => {
    const [row] = await db.sql<{ n: string }[]>`
      select deadlocks as n from pg_stat_database where datname = current_database()`;
    return Number(row?.n);
  };
  const deadlocksBefore = await deadlocks();

  const occurredAt = new Date(`${day}T12:00:00.000Z`);
  const customer = uniqueName("c");
  const kinds = [
    (i: number) => ({
      topic: "booking-events" as const,
      type: "BOOKING_CREATED",
      key: `b${i}`,
      payload: {
        bookingId: `b${i}`,
        customerId: customer,
        vehicleId: "v",
        serviceType: "OIL_CHANGE",
        bookingDate: occurredAt.toISOString(),
        slotId: "s",
      },
    }),
    (i: number) => ({
      topic: "booking-events" as const,
      type: "BOOKING_CANCELLED",
      key: `b${i}`,
      payload: { bookingId: `b${i}`, customerId: customer, reason: "x" },
    }),
    (i: number) => ({
      topic: "payment-events" as const,
      type: "PAYMENT_COMPLETED",
      key: `i${i}`,
      payload: {
        invoiceId: `i${i}`,
        bookingId: `b${i}`,
        customerId: customer,
        amount: 100,
        currency: "THB",
        chargeId: `c${i}`,
      },
    }),
    (i: number) => ({
      topic: "payment-events" as const,
      type: "PAYMENT_FAILED",
      key: `i${i}`,
      payload: {
        invoiceId: `i${i}`,
        bookingId: `b${i}`,
        customerId: customer,
        amount: 100,
        reason: "no",
        attempts: 1,
      },
    }),
    (i: number) => ({
      topic: "notification-events" as const,
      type: "NOTIFICATION_SENT",
      key: `${customer}-${i % 7}`,
      payload: {
        notificationId: Bun.randomUUIDv7(),
        customerId: customer,
        channel: (["email", "sms", "push"] as const)[i % 3],
        template: "t",
        sourceEventId: Bun.randomUUIDv7(),
        sourceEventType: "BOOKING_CREATED",
      },
    }),
  ];
  const perKind = 400;
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  const all = kinds.flatMap((make) => Array.from({ length: perKind }, (_, i) => make(i)));
  all.sort(() => Math.random() - 0.5);
  for (let i = 0; i < all.length; i += 100) {
    await producer.sendBatch({
      acks: -1,
      topicMessages: Object.entries(Object.groupBy(all.slice(i, i + 100), (e) => e.topic)).map(
        ([topic, list]) => ({
          topic: topics.event(topic as "booking-events"),
          messages: (list ?? []).map((e) => ({
            key: e.key,
            value: encodeEnvelope(
              newEnvelope({ eventType: e.type, entityId: e.key, payload: e.payload, occurredAt }),
            ),
          })),
        }),
      ),
    });
  }
  await producer.disconnect();

  const expected = {
    bookings: perKind,
    cancellations: perKind,
    revenue: perKind * 100,
    payments: perKind,
    payment_failures: perKind,
    "notifications.email": Math.ceil(perKind / 3),
    "notifications.sms": Math.ceil((perKind - 1) / 3),
    "notifications.push": Math.ceil((perKind - 2) / 3),
    "notifications.t": perKind,
  };
  const figures = () => dailyFigures(db.sql, day);
  await waitFor(
    async () => (await figures())["notifications.t"] === perKind && (await figures()).bookings === perKind,
    {
      timeoutMs: 60_000,
      intervalMs: 250,
      what: "every event counted",
    },
  );
  await waitFor(
    async () => JSON.stringify(await figures()) === JSON.stringify({ ...(await figures()), ...expected }),
    { timeoutMs: 30_000, intervalMs: 250, what: "every figure exact" },
  );
  expect(await figures()).toEqual(expected);
  // Folded into the totals and mirrored (the folders run every 50 ms).
  await waitFor(
    async () => {
      const [pending] = await db.sql<
        { n: number }[]
      >`select count(*)::int as n from daily_stat_delta where day = ${day}`;
      return pending?.n === 0 && Number(await redis.get(`daily:bookings:${day}`)) === perKind;
    },
    { timeoutMs: 30_000, what: "the deltas folded and mirrored" },
  );
  expect(
    await redis.mget(`daily:bookings:${day}`, `daily:cancellations:${day}`, `daily:revenue:${day}`),
  ).toEqual([String(perKind), String(perKind), String(perKind * 100)]);
  const stats = hosts.map((h) => h.stats().reactors.analytics);
  console.log(
    `[analytics] two hosts: ${JSON.stringify(stats)}; deadlocks ${(await deadlocks()) - deadlocksBefore}`,
  );
  for (const s of stats) expect(s?.handled).toBeGreaterThan(0); // both hosts took part
  expect(stats.map((s) => [s?.retries, s?.deadLetters])).toEqual([
    [0, 0],
    [0, 0],
  ]);
  expect((await deadlocks()) - deadlocksBefore).toBe(0);
}, 120_000);
