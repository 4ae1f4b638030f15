/**
 * The reactors through the real Kafka, Postgres, Redis and NATS: one host runs all six in a namespace of its
 * own; events are produced to the namespace's topics as the actors would emit them, and the effects awaited.
 * Postgres and Redis are shared with other runs, so every id (and every analytics day) is unique to this run.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { inArray } from "drizzle-orm";
import { drizzle } from "drizzle-orm/postgres-js";
import type { Consumer, Producer, RecordMetadata } from "kafkajs";
import pino from "pino";
import type postgres from "postgres";
import { openDatabase, schema } from "../../db/index.ts";
import {
  createHost,
  type Host,
  type NatsConnection,
  openNats,
  openRedis,
  type ReactorContext,
  type ReactorResult,
  statusSubject,
  UnavailableError,
} from "../../runtime/index.ts";
import { closedPort, testConfig, testKafka, testLog, uniqueName, waitFor } from "../../test/support.ts";
import {
  decodeEnvelope,
  type Envelope,
  type EventSource,
  type EventTopic,
  encodeEnvelope,
  newEnvelope,
  provisionTopics,
  topicCatalogue,
} from "../../topics/index.ts";
import { type EventPayload, type EventType, topicOf, topicsIn } from "../events.ts";
import { natsPrefixOf } from "../index.ts";
import { analyticsReactor, dailyFigures, dailyStatFolder } from "./analytics.ts";
import { cacheSyncReactor } from "./cache-sync.ts";
import { createReactors, type NotificationSender } from "./index.ts";
import { CACHE_TTL_SECONDS, writeHashIfNewer, writeJsonIfNewer } from "./newer-version.ts";
import type { StatusFrame } from "./status.ts";

const config = testConfig();
const kafka = testKafka(config);
const database = openDatabase(config.postgres.url, { max: 10 });
const redis = openRedis(config.redis.url);
// Namespaces are lower-case letters, digits and dashes, at most 31 characters (config.ts).
const namespace = uniqueName("rx")
  .toLowerCase()
  .replace(/[^a-z0-9-]/g, "");
const topics = topicsIn(namespace);
const natsPrefix = natsPrefixOf(namespace);
const run = Bun.randomUUIDv7().slice(-8);
const id = (what: string) => `${what}-${uniqueName(run)}`;

/** Analytics days other runs are unlikely to touch: a random day in 1980-2007, one per test that counts. */
const usedDays: string[] = [];
function uniqueDay(): string {
  const day = new Date(Date.UTC(1980, 0, 1) + Math.floor(Math.random() * 10_000) * 86_400_000);
  const text = day.toISOString().slice(0, 10);
  usedDays.push(text);
  return text;
}

const sent: { channel: string; customerId: string; template: string; subject: string; body: string }[] = [];
const senders: NotificationSender[] = (["email", "sms", "push"] as const).map((channel) => ({
  channel,
  send: async (message) => {
    sent.push({ channel, ...message });
  },
}));

let nc: NatsConnection;
let host: Host;
const folder = dailyStatFolder({ sql: database.sql, redis, log: testLog });
let producer: Producer;
let watcher: Consumer;
/** NOTIFICATION_SENT envelopes read back from the namespace's notification-events topic. */
const notificationEvents: { key: string; envelope: Envelope }[] = [];
const actorRows: { kind: string; key: string }[] = [];
const partIds: string[] = [];
const redisKeys: string[] = [];

beforeAll(async () => {
  await provisionTopics(kafka, topicCatalogue(3, namespace));
  nc = await openNats(config.nats.servers);
  host = createHost({
    kafka,
    database,
    databaseUrl: config.postgres.url,
    log: testLog,
    groupPrefix: uniqueName("g-rx"),
    nats: nc,
    natsPrefix,
    reactors: createReactors({ topics, redis, nats: nc, natsPrefix, senders, log: testLog }),
    tuning: { commitIntervalMs: 100, sessionTimeoutMs: 6000, heartbeatIntervalMs: 500, drainTimeoutMs: 5000 },
  });
  producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
  watcher = kafka.consumer({ groupId: uniqueName("rx-watch"), sessionTimeout: 6000, heartbeatInterval: 500 });
  await Promise.all([host.start(), producer.connect(), watcher.connect()]);
  await watcher.subscribe({ topic: topics.event("notification-events"), fromBeginning: true });
  await watcher.run({
    eachMessage: async ({ message }) => {
      notificationEvents.push({
        key: message.key?.toString() ?? "",
        envelope: decodeEnvelope(message.value),
      });
    },
  });
}, 60_000);

afterAll(async () => {
  await Promise.allSettled([host?.stop(), watcher?.disconnect(), producer?.disconnect()]);
  // Each clean-up runs whatever an earlier one did: the topics must go even if a delete below fails.
  const dailyKeys = usedDays.flatMap((day) =>
    ["bookings", "cancellations", "revenue", "notifications"].map((m) => `daily:${m}:${day}`),
  );
  const cleanups = await Promise.allSettled([
    // Events emitted at the end (NOTIFICATION_SENT nobody waited for) would otherwise stay in the outbox for
    // topics deleted below, and every relay would keep trying them.
    database.sql`delete from outbox where published_at is null and starts_with(topic, ${`${namespace}.`})`.then(
      deleteTopics,
    ),
    ...actorRows.map(
      ({ kind, key }) => database.sql`delete from actor_state where kind = ${kind} and actor_key = ${key}`,
    ),
    database.sql`delete from part_movement where part_id = any(${partIds}::text[])`.then(
      () => database.sql`delete from part where id = any(${partIds}::text[])`,
    ),
    database.sql`delete from daily_stat where day = any(${usedDays}::text[])`,
    database.sql`delete from daily_stat_delta where day = any(${usedDays}::text[])`,
    [...dailyKeys, ...redisKeys].length > 0 ? redis.del(...dailyKeys, ...redisKeys) : undefined,
  ]);
  await Promise.allSettled([nc?.drain(), redis.quit(), database.close()]);
  for (const c of cleanups) if (c.status === "rejected") throw c.reason;
}, 60_000);

async function deleteTopics() {
  const admin = kafka.admin();
  await admin.connect();
  try {
    await admin.deleteTopics({ topics: topicCatalogue(3, namespace).map((t) => t.name) });
  } finally {
    await admin.disconnect();
  }
}

// -------------------------------------------------------------------------------------------------------------
// Helpers: events as the actors emit them, producing them, and waiting for a reactor to have handled them.

/** The record key of each topic's events: the entity they are about. */
const KEY_FIELD: Record<EventTopic, string> = {
  "booking-events": "bookingId",
  "repair-events": "repairId",
  "payment-events": "invoiceId",
  "compensation-events": "bookingId",
  "notification-events": "customerId",
};

function eventOf<E extends EventType>(
  type: E,
  payload: EventPayload<E>,
  options: {
    correlationId?: string;
    causationId?: string;
    occurredAt?: Date;
    source?: EventSource;
    causeSource?: EventSource;
  } = {},
): Envelope {
  const fields = payload as Record<string, unknown>;
  return newEnvelope({
    eventType: type,
    entityId: String(fields[KEY_FIELD[topicOf(type)]]),
    payload: fields,
    ...options,
  });
}

/** Produces envelopes in order (each send awaited), to their type's topic or `topic`; returns where each landed. */
async function publish(envelopes: Envelope[], topic?: EventTopic): Promise<RecordMetadata[]> {
  const landed: RecordMetadata[] = [];
  for (const envelope of envelopes) {
    const [meta] = await producer.send({
      topic: topics.event(topic ?? topicOf(envelope.eventType as EventType)),
      acks: -1,
      messages: [{ key: envelope.entityId, value: encodeEnvelope(envelope) }],
    });
    if (meta) landed.push(meta);
  }
  return landed;
}

/** Waits until `reactor` has handled (committed, with its inbox row) every one of `envelopes`. */
async function handledBy(reactor: string, envelopes: Envelope[]) {
  const ids = envelopes.map((e) => e.eventId);
  await waitFor(
    async () => {
      const [row] = await database.sql<{ n: number }[]>`
        select count(*)::int as n from inbox where consumer = ${reactor} and event_id = any(${ids}::uuid[])`;
      return row?.n === ids.length;
    },
    { what: `${reactor} to handle ${ids.length} event(s)` },
  );
}

async function putState(kind: string, key: string, state: { version: number } & Record<string, unknown>) {
  if (!actorRows.some((r) => r.kind === kind && r.key === key)) actorRows.push({ kind, key });
  await database.sql`
    insert into actor_state (kind, actor_key, state, version) values (${kind}, ${key}, ${JSON.stringify(state)}::jsonb, ${state.version})
    on conflict (kind, actor_key) do update set state = excluded.state, version = excluded.version`;
}

async function dailyValue(day: string, metric: string): Promise<number> {
  return (await dailyFigures(database.sql, day))[metric] ?? 0;
}

const booking = (overrides: Record<string, unknown> = {}) => {
  const bookingId = id("bk");
  return {
    bookingId,
    customerId: id("cust"),
    vehicleId: id("car"),
    serviceType: "OIL_CHANGE",
    bookingDate: "2031-03-04T09:00:00.000Z",
    slotId: "OIL_CHANGE@2031-03-04T09:00:00.000Z",
    ...overrides,
  };
};

// -------------------------------------------------------------------------------------------------------------

describe("notification reactor", () => {
  test("each notified event type writes one notification per channel of its row, calls that channel's sender, and emits NOTIFICATION_SENT on notification-events", async () => {
    const b = booking();
    const ids = { repairId: id("rp"), invoiceId: id("inv") };
    const customer = () => id("cust");
    const base = { bookingId: b.bookingId };
    const events = [
      eventOf("BOOKING_CREATED", { ...b, customerId: customer() }),
      eventOf("BOOKING_REJECTED", {
        ...base,
        customerId: customer(),
        slotId: b.slotId,
        reason: "slot is full",
      }),
      eventOf("BOOKING_CANCELLED", { ...base, customerId: customer(), reason: "plans changed" }),
      eventOf("BOOKING_RESCHEDULED", {
        ...base,
        customerId: customer(),
        fromDate: b.bookingDate,
        bookingDate: "2031-03-05T09:00:00.000Z",
        slotId: "OIL_CHANGE@2031-03-05T09:00:00.000Z",
      }),
      eventOf("REPAIR_STARTED", {
        ...base,
        repairId: ids.repairId,
        customerId: customer(),
        technicianId: "tech-1",
        estimatedMinutes: 90,
      }),
      eventOf("REPAIR_COMPLETED", {
        ...base,
        repairId: ids.repairId,
        customerId: customer(),
        parts: [],
        labourMinutes: 60,
        labourCost: 80_000,
        partsCost: 0,
      }),
      eventOf("INVOICE_CREATED", {
        ...base,
        ...ids,
        customerId: customer(),
        amount: 150_000,
        currency: "THB",
        dueAt: "2031-03-10T00:00:00.000Z",
      }),
      eventOf("PAYMENT_COMPLETED", {
        ...base,
        invoiceId: ids.invoiceId,
        customerId: customer(),
        amount: 150_000,
        currency: "THB",
        chargeId: "ch-1",
      }),
      eventOf("PAYMENT_FAILED", {
        ...base,
        invoiceId: ids.invoiceId,
        customerId: customer(),
        amount: 150_000,
        reason: "card declined",
        attempts: 3,
      }),
      eventOf("PAYMENT_REFUNDED", {
        ...base,
        invoiceId: ids.invoiceId,
        customerId: customer(),
        amount: 150_000,
        chargeId: "ch-1",
      }),
      eventOf("INVOICE_REMINDER", {
        ...base,
        invoiceId: ids.invoiceId,
        customerId: customer(),
        amount: 150_000,
        dueAt: "2031-03-10T00:00:00.000Z",
      }),
      eventOf("ROLLBACK_BOOKING", {
        ...base,
        invoiceId: ids.invoiceId,
        customerId: customer(),
        reason: "payment failed",
      }),
      // Not notified:
      eventOf("BOOKING_CLOSED", { ...base, customerId: customer() }),
      eventOf("REPAIR_IN_PROGRESS", {
        ...base,
        repairId: ids.repairId,
        customerId: customer(),
        status: "DIAGNOSING",
        progress: 10,
      }),
    ];
    await publish(events);
    await handledBy("notification", events);

    const rows = await database.db
      .select()
      .from(schema.notification)
      .where(
        inArray(
          schema.notification.sourceEventId,
          events.map((e) => e.eventId),
        ),
      );
    const byEvent = (e: Envelope) => rows.filter((r) => r.sourceEventId === e.eventId);
    const summary = events.map((e) => [
      e.eventType,
      byEvent(e)[0]?.template ?? null,
      byEvent(e)
        .map((r) => r.channel)
        .sort(),
    ]);
    expect(summary).toEqual([
      ["BOOKING_CREATED", "booking-confirmed", ["email", "push", "sms"]],
      ["BOOKING_REJECTED", "booking-rejected", ["email"]],
      ["BOOKING_CANCELLED", "booking-cancelled", ["email", "sms"]],
      ["BOOKING_RESCHEDULED", "booking-rescheduled", ["email"]],
      ["REPAIR_STARTED", "repair-started", ["push"]],
      ["REPAIR_COMPLETED", "car-ready", ["push", "sms"]],
      ["INVOICE_CREATED", "invoice", ["email"]],
      ["PAYMENT_COMPLETED", "receipt", ["email"]],
      ["PAYMENT_FAILED", "payment-failed", ["email"]],
      ["PAYMENT_REFUNDED", "refund", ["email"]],
      ["INVOICE_REMINDER", "payment-reminder", ["email", "sms"]],
      ["ROLLBACK_BOOKING", "booking-rolled-back", ["email", "sms"]],
      ["BOOKING_CLOSED", null, []],
      ["REPAIR_IN_PROGRESS", null, []],
    ]);
    // Each row names its source, customer and correlation; bodies name the ids and amounts.
    for (const e of events) {
      for (const row of byEvent(e)) {
        expect(row).toMatchObject({
          sourceEventType: e.eventType,
          customerId: e.payload.customerId,
          correlationId: e.correlationId,
        });
      }
    }
    const body = (type: string) =>
      byEvent(events.find((e) => e.eventType === type) as Envelope)[0]?.body ?? "";
    expect(body("BOOKING_CREATED")).toContain(b.bookingId);
    expect(body("REPAIR_COMPLETED")).toContain("collect");
    expect(body("INVOICE_CREATED")).toContain("1500.00 THB");
    expect(body("ROLLBACK_BOOKING")).toMatch(/payment failed.*refunded/);

    // The channel's sender was called once per row.
    const customers = new Set(rows.map((r) => r.customerId));
    const calls = sent.filter((s) => customers.has(s.customerId));
    expect(calls.map((c) => `${c.customerId}/${c.channel}/${c.template}`).sort()).toEqual(
      rows.map((r) => `${r.customerId}/${r.channel}/${r.template}`).sort(),
    );

    // One NOTIFICATION_SENT per row, keyed by the customer, caused by the source event.
    const announced = await waitFor(
      () => {
        const mine = notificationEvents.filter((n) => customers.has(n.key));
        return mine.length >= rows.length ? mine : undefined;
      },
      // Published by whichever host's relay holds the relay lock (maybe another test's): allow it time.
      { what: "NOTIFICATION_SENT on notification-events", timeoutMs: 30_000 },
    );
    expect(announced.map((n) => n.envelope.payload.notificationId).sort()).toEqual(
      rows.map((r) => r.id).sort(),
    );
    for (const { key, envelope } of announced) {
      const row = rows.find((r) => r.id === envelope.payload.notificationId);
      expect(envelope.eventType).toBe("NOTIFICATION_SENT");
      expect(key).toBe(row?.customerId as string);
      expect(envelope.causationId).toBe(row?.sourceEventId as string);
      expect(envelope.correlationId).toBe(row?.correlationId as string);
      expect(envelope.payload).toEqual({
        notificationId: row?.id,
        customerId: row?.customerId,
        channel: row?.channel,
        template: row?.template,
        sourceEventId: row?.sourceEventId,
        sourceEventType: row?.sourceEventType,
      });
    }
  }, 60_000);
});

describe("redelivery", () => {
  test("the same event delivered twice yields one notification per channel, one audit row, and counts once in analytics", async () => {
    const day = uniqueDay();
    const occurredAt = new Date(`${day}T10:00:00.000Z`);
    const b = booking();
    const created = eventOf("BOOKING_CREATED", b, { occurredAt });
    // Same key, after the copy: once it is handled, so is the copy (per-key order).
    const marker = eventOf(
      "BOOKING_CANCELLED",
      { bookingId: b.bookingId, customerId: b.customerId, reason: "changed plans" },
      { occurredAt },
    );
    const before = {
      bookings: await dailyValue(day, "bookings"),
      cancellations: await dailyValue(day, "cancellations"),
    };
    const reactors = ["notification", "audit", "analytics"];
    const duplicates = () => reactors.map((r) => host.stats().reactors[r]?.duplicates ?? 0);
    const duplicatesBefore = duplicates();
    await publish([created, created, marker]);
    for (const reactor of reactors) await handledBy(reactor, [created, marker]);
    // Each reactor saw the copy and skipped it (a rebalance may add redeliveries of its own: at least one).
    duplicates().forEach((n, i) => {
      expect(n - (duplicatesBefore[i] ?? 0)).toBeGreaterThanOrEqual(1);
    });

    const [notifications] = await database.sql<{ n: number }[]>`
      select count(*)::int as n from notification where source_event_id = ${created.eventId}`;
    expect(notifications?.n).toBe(3);
    expect(sent.filter((s) => s.customerId === b.customerId).map((s) => s.template)).toEqual([
      "booking-confirmed",
      "booking-confirmed",
      "booking-confirmed",
      "booking-cancelled",
      "booking-cancelled",
    ]);
    const [audits] = await database.sql<{ n: number }[]>`
      select count(*)::int as n from audit_log where event_id = ${created.eventId}`;
    expect(audits?.n).toBe(1);
    expect(await dailyValue(day, "bookings")).toBe(before.bookings + 1);
    expect(await dailyValue(day, "cancellations")).toBe(before.cancellations + 1);
    await folder.foldNow();
    expect(await redis.get(`daily:bookings:${day}`)).toBe(String(before.bookings + 1));
  }, 30_000);
});

describe("analytics reactor", () => {
  test("daily figures in Postgres and their Redis mirror agree: bookings, cancellations, revenue, payments, failures, notifications by channel and template", async () => {
    const day = uniqueDay();
    const occurredAt = new Date(`${day}T23:59:59.000+00:00`);
    const template = `tmpl-${run}`;
    const metrics = [
      "bookings",
      "cancellations",
      "revenue",
      "payments",
      "payment_failures",
      "notifications.email",
      "notifications.sms",
      `notifications.${template}`,
    ];
    const before = Object.fromEntries(
      await Promise.all(metrics.map(async (m) => [m, await dailyValue(day, m)])),
    );
    const b1 = booking();
    const b2 = booking();
    const paid = (amount: number) =>
      eventOf(
        "PAYMENT_COMPLETED",
        {
          invoiceId: id("inv"),
          bookingId: b1.bookingId,
          customerId: b1.customerId,
          amount,
          currency: "THB",
          chargeId: id("ch"),
        },
        { occurredAt },
      );
    const sentOn = (channel: "email" | "sms") =>
      eventOf(
        "NOTIFICATION_SENT",
        {
          notificationId: Bun.randomUUIDv7(),
          customerId: b1.customerId,
          channel,
          template,
          sourceEventId: Bun.randomUUIDv7(),
          sourceEventType: "BOOKING_CREATED",
        },
        { occurredAt },
      );
    const events = [
      eventOf("BOOKING_CREATED", b1, { occurredAt }),
      eventOf("BOOKING_CREATED", b2, { occurredAt }),
      eventOf(
        "BOOKING_CANCELLED",
        { bookingId: b2.bookingId, customerId: b2.customerId, reason: "x" },
        { occurredAt },
      ),
      paid(150_000),
      paid(2_500),
      eventOf(
        "PAYMENT_FAILED",
        {
          invoiceId: id("inv"),
          bookingId: b1.bookingId,
          customerId: b1.customerId,
          amount: 9,
          reason: "declined",
          attempts: 3,
        },
        { occurredAt },
      ),
      sentOn("email"),
      sentOn("sms"),
      // Not counted:
      eventOf("BOOKING_CLOSED", { bookingId: b1.bookingId, customerId: b1.customerId }, { occurredAt }),
    ];
    await publish(events);
    await handledBy("analytics", events);

    const after = Object.fromEntries(
      await Promise.all(metrics.map(async (m) => [m, await dailyValue(day, m)])),
    );
    const deltas = Object.fromEntries(metrics.map((m) => [m, (after[m] ?? 0) - (before[m] ?? 0)]));
    expect(deltas).toEqual({
      bookings: 2,
      cancellations: 1,
      revenue: 152_500,
      payments: 2,
      payment_failures: 1,
      "notifications.email": 1,
      "notifications.sms": 1,
      [`notifications.${template}`]: 2,
    });
    // The folder (every reactor process runs one) moves the deltas into the totals and mirrors them.
    await folder.foldNow();
    expect({
      bookings: await redis.get(`daily:bookings:${day}`),
      cancellations: await redis.get(`daily:cancellations:${day}`),
      revenue: await redis.get(`daily:revenue:${day}`),
      notifications: await redis.hgetall(`daily:notifications:${day}`),
    }).toEqual({
      bookings: String(after.bookings),
      cancellations: String(after.cancellations),
      revenue: String(after.revenue),
      notifications: { email: String(after["notifications.email"]), sms: String(after["notifications.sms"]) },
    });
  }, 30_000);
});

describe("audit reactor", () => {
  test("records each event once with its topic, partition, offset, ids, time and payload, whatever its type", async () => {
    const b = booking();
    const correlationId = Bun.randomUUIDv7();
    const causationId = Bun.randomUUIDv7();
    const occurredAt = new Date("2030-01-02T03:04:05.678Z");
    const known = eventOf("BOOKING_CREATED", b, { correlationId, causationId, occurredAt });
    const unknown = newEnvelope({ eventType: "SOMETHING_NEW", entityId: b.bookingId, payload: { n: 1 } });
    const [knownAt] = await publish([known]);
    const [unknownAt] = await publish([unknown], "compensation-events");
    await handledBy("audit", [known, unknown]);

    const rows = await database.sql<Record<string, unknown>[]>`
      select event_id, event_type, topic, partition, "offset"::text as offset, entity_id, correlation_id,
             causation_id, occurred_at, payload
      from audit_log where event_id in (${known.eventId}, ${unknown.eventId}) order by event_type`;
    expect(
      rows.map(
        (r): Record<string, unknown> => ({
          ...r,
          occurred_at: new Date(String(r.occurred_at)).toISOString(),
        }),
      ),
    ).toEqual([
      {
        event_id: known.eventId,
        event_type: "BOOKING_CREATED",
        topic: topics.event("booking-events"),
        partition: knownAt?.partition,
        offset: knownAt?.baseOffset,
        entity_id: b.bookingId,
        correlation_id: correlationId,
        causation_id: causationId,
        occurred_at: occurredAt.toISOString(),
        payload: b,
      },
      {
        event_id: unknown.eventId,
        event_type: "SOMETHING_NEW",
        topic: topics.event("compensation-events"),
        partition: unknownAt?.partition,
        offset: unknownAt?.baseOffset,
        entity_id: b.bookingId,
        correlation_id: unknown.eventId,
        causation_id: null,
        occurred_at: unknown.occurredAt,
        payload: { n: 1 },
      },
    ]);
  }, 30_000);
});

describe("cache-sync reactor", () => {
  test("writes booking, repair and invoice state from actor_state to Redis with a week's TTL", async () => {
    const b = booking();
    const repairId = id("rp");
    const invoiceId = id("inv");
    const bookingState = { ...b, status: "IN_SERVICE", repairId, version: 3 };
    const repairState = {
      repairId,
      bookingId: b.bookingId,
      status: "DIAGNOSING",
      progress: 10,
      updatedAt: "2030-01-01T00:00:00.000Z",
      version: 2,
    };
    const invoiceState = { invoiceId, bookingId: b.bookingId, status: "OPEN", amount: 150_000, version: 1 };
    await putState("booking", b.bookingId, bookingState);
    await putState("repair", repairId, repairState);
    await putState("invoice", invoiceId, invoiceState);
    redisKeys.push(`booking:${b.bookingId}`, `repair:status:${repairId}`, `invoice:${invoiceId}`);

    const events = [
      eventOf("REPAIR_IN_PROGRESS", {
        repairId,
        bookingId: b.bookingId,
        customerId: b.customerId,
        status: "DIAGNOSING",
        progress: 10,
      }),
      eventOf("INVOICE_CREATED", {
        invoiceId,
        bookingId: b.bookingId,
        repairId,
        customerId: b.customerId,
        amount: 150_000,
        currency: "THB",
        dueAt: "2031-01-01T00:00:00.000Z",
      }),
    ];
    await publish(events);
    await handledBy("cache-sync", events);

    expect(JSON.parse((await redis.get(`booking:${b.bookingId}`)) ?? "null")).toEqual(bookingState);
    expect(JSON.parse((await redis.get(`invoice:${invoiceId}`)) ?? "null")).toEqual(invoiceState);
    expect(await redis.hgetall(`repair:status:${repairId}`)).toEqual({
      status: "DIAGNOSING",
      progress: "10",
      version: "2",
      updatedAt: "2030-01-01T00:00:00.000Z",
    });
    for (const key of [`booking:${b.bookingId}`, `invoice:${invoiceId}`, `repair:status:${repairId}`]) {
      const ttl = await redis.ttl(key);
      expect(ttl).toBeGreaterThan(CACHE_TTL_SECONDS - 60);
      expect(ttl).toBeLessThanOrEqual(CACHE_TTL_SECONDS);
    }
  }, 30_000);

  test("an older version in Postgres never overwrites a newer one in Redis; a newer one does", async () => {
    const b = booking();
    const key = `booking:${b.bookingId}`;
    redisKeys.push(key);
    const cancel = () =>
      eventOf("BOOKING_CANCELLED", { bookingId: b.bookingId, customerId: b.customerId, reason: "x" });
    await putState("booking", b.bookingId, { ...b, status: "CONFIRMED", version: 3 });
    // A later turn's write got to Redis first.
    await redis.set(key, JSON.stringify({ ...b, status: "PAID", version: 9 }));
    const stale = cancel();
    await publish([stale]);
    await handledBy("cache-sync", [stale]);
    expect(JSON.parse((await redis.get(key)) ?? "null")).toMatchObject({ status: "PAID", version: 9 });

    await putState("booking", b.bookingId, { ...b, status: "CANCELLED", version: 10 });
    const fresh = cancel();
    await publish([fresh]);
    await handledBy("cache-sync", [fresh]);
    expect(JSON.parse((await redis.get(key)) ?? "null")).toMatchObject({ status: "CANCELLED", version: 10 });
  }, 30_000);

  test("write-if-newer skips an older version and takes an equal or newer one, for JSON and hashes", async () => {
    const key = id("newer");
    redisKeys.push(key, `${key}:h`);
    expect(await writeJsonIfNewer(redis, key, { version: 5, v: "five" })).toBe(true);
    expect(await writeJsonIfNewer(redis, key, { version: 4, v: "four" })).toBe(false);
    expect(await writeJsonIfNewer(redis, key, { version: 5, v: "five again" })).toBe(true);
    expect(JSON.parse((await redis.get(key)) ?? "null")).toEqual({ version: 5, v: "five again" });
    expect(await writeHashIfNewer(redis, `${key}:h`, 7, { status: "TESTING", extra: "x" })).toBe(true);
    expect(await writeHashIfNewer(redis, `${key}:h`, 6, { status: "REPAIRING" })).toBe(false);
    expect(await writeHashIfNewer(redis, `${key}:h`, 8, { status: "COMPLETED" })).toBe(true);
    // Replaced whole: no field of the older write lingers.
    expect(await redis.hgetall(`${key}:h`)).toEqual({ status: "COMPLETED", version: "8" });
  });
});

describe("inventory reactor", () => {
  test("a completed repair takes its parts out of stock without going below zero, flags low stock, and records shortfalls, also for unknown parts", async () => {
    const [oil, pads, ghost] = [id("part-oil"), id("part-pads"), id("part-ghost")];
    partIds.push(oil, pads, ghost);
    await database.sql`
      insert into part (id, name, unit_price, stock, low_stock_threshold) values
        (${oil}, 'Test oil', 100, 5, 2), (${pads}, 'Test pads', 100, 4, 1)`;
    const completed = (repairId: string, parts: [string, number][]) =>
      eventOf("REPAIR_COMPLETED", {
        repairId,
        bookingId: id("bk"),
        customerId: id("cust"),
        parts: parts.map(([partId, quantity]) => ({ partId, name: partId, quantity, unitPrice: 100 })),
        labourMinutes: 30,
        labourCost: 40_000,
        partsCost: 0,
      });
    const first = completed(id("rp"), [
      [oil, 1],
      [pads, 10],
      [ghost, 3],
      [oil, 1], // the same part twice: one movement of 2
    ]);
    await publish([first]);
    await handledBy("inventory", [first]);
    const stock = async () => [
      ...(await database.sql<{ id: string; stock: number; low_stock: boolean }[]>`
        select id, stock, low_stock from part where id = any(${[oil, pads]}::text[]) order by id`),
    ];
    const movements = async (eventId: string) => [
      ...(await database.sql<{ part_id: string; quantity: number; shortfall: number }[]>`
        select part_id, quantity, shortfall from part_movement where event_id = ${eventId} order by part_id`),
    ];
    expect(await stock()).toEqual([
      { id: oil, stock: 3, low_stock: false },
      { id: pads, stock: 0, low_stock: true },
    ]);
    expect(await movements(first.eventId)).toEqual(
      [
        { part_id: oil, quantity: 2, shortfall: 0 },
        { part_id: pads, quantity: 10, shortfall: 6 },
        { part_id: ghost, quantity: 3, shortfall: 3 },
      ].sort((a, b) => (a.part_id < b.part_id ? -1 : 1)),
    );

    const second = completed(id("rp"), [[oil, 1]]);
    await publish([second]);
    await handledBy("inventory", [second]);
    expect(await stock()).toEqual([
      { id: oil, stock: 2, low_stock: true },
      { id: pads, stock: 0, low_stock: true },
    ]);
  }, 30_000);
});

describe("status reactor", () => {
  test("status frames reach NATS subscribers of the booking and repair subjects in order, each with what its own event said", async () => {
    const b = booking();
    const repairId = id("rp");
    const frames = { booking: [] as StatusFrame[], repair: [] as StatusFrame[] };
    const subscriptions = (["booking", "repair"] as const).map((entity) =>
      nc.subscribe(statusSubject(natsPrefix, entity, entity === "booking" ? b.bookingId : repairId), {
        callback: (error, message) => {
          if (!error) frames[entity].push(message.json<StatusFrame>());
        },
      }),
    );
    await nc.flush(); // the server has the subscriptions before anything is published
    const of = (kind: string, key: string, version: number, state: Record<string, unknown>) => ({
      source: { kind, key, version, state },
    });
    try {
      // The store is always further on than the events: the frames must not read it.
      await putState("booking", b.bookingId, { ...b, status: "AWAITING_PAYMENT", version: 9 });
      await putState("repair", repairId, { repairId, status: "COMPLETED", progress: 100, version: 9 });
      const rescheduled = eventOf(
        "BOOKING_RESCHEDULED",
        {
          bookingId: b.bookingId,
          customerId: b.customerId,
          fromDate: b.bookingDate,
          bookingDate: "2031-03-05T09:00:00.000Z",
          slotId: "OIL_CHANGE@2031-03-05T09:00:00.000Z",
        },
        of("booking", b.bookingId, 2, { status: "CONFIRMED" }),
      );
      await publish([rescheduled]);
      await waitFor(() => frames.booking.length === 1, { what: "the booking's first frame" });

      const ids = { repairId, bookingId: b.bookingId, customerId: b.customerId };
      const repairEvents = [
        // Asked for by the booking's turn that went IN_SERVICE (its START command): that is the booking's status.
        eventOf(
          "REPAIR_STARTED",
          { ...ids, technicianId: "tech-1", estimatedMinutes: 60 },
          {
            ...of("repair", repairId, 1, { status: "STARTED", progress: 0 }),
            causeSource: of("booking", b.bookingId, 3, { status: "IN_SERVICE" }).source,
          },
        ),
        eventOf(
          "REPAIR_IN_PROGRESS",
          { ...ids, status: "DIAGNOSING", progress: 20 },
          of("repair", repairId, 2, { status: "DIAGNOSING", progress: 20 }),
        ),
        eventOf(
          "REPAIR_IN_PROGRESS",
          { ...ids, status: "REPAIRING", progress: 40 },
          of("repair", repairId, 3, { status: "REPAIRING", progress: 40 }),
        ),
        // Made outside an actor's turn (no source): it says nothing of anyone's status.
        eventOf("REPAIR_IN_PROGRESS", { ...ids, status: "REPAIRING", progress: 50 }),
      ];
      await publish(repairEvents);
      await waitFor(() => frames.repair.length === 4 && frames.booking.length === 5, { what: "all frames" });

      const frame = (
        e: Envelope,
        entity: "booking" | "repair",
        said: { status: string | null; progress?: number; version?: number },
      ): StatusFrame => {
        const source = e.source && {
          kind: e.source.kind,
          id: e.source.key,
          version: e.source.version,
          status: e.source.state.status as string,
          ...(e.source.state.progress === undefined ? {} : { progress: e.source.state.progress as number }),
        };
        return {
          type: "status",
          entity,
          id: entity === "booking" ? b.bookingId : repairId,
          event: e.eventType,
          eventId: e.eventId,
          at: e.occurredAt,
          status: said.status,
          ...(said.progress === undefined ? {} : { progress: said.progress }),
          ...(said.version === undefined ? {} : { version: said.version }),
          ...(source ? { source } : {}),
          detail: e.payload,
        };
      };
      const [started, diagnosing, repairing, unsourced] = repairEvents as [
        Envelope,
        Envelope,
        Envelope,
        Envelope,
      ];
      expect(frames.repair).toEqual([
        frame(started, "repair", { status: "STARTED", progress: 0, version: 1 }),
        frame(diagnosing, "repair", { status: "DIAGNOSING", progress: 20, version: 2 }),
        frame(repairing, "repair", { status: "REPAIRING", progress: 40, version: 3 }),
        frame(unsourced, "repair", { status: null }),
      ]);
      // The repair's steps the booking did not ask for did not change it: null, and whose step it was in `source`.
      expect(frames.booking).toEqual([
        frame(rescheduled, "booking", { status: "CONFIRMED", version: 2 }),
        frame(started, "booking", { status: "IN_SERVICE", version: 3 }),
        frame(diagnosing, "booking", { status: null }),
        frame(repairing, "booking", { status: null }),
        frame(unsourced, "booking", { status: null }),
      ]);
    } finally {
      for (const s of subscriptions) s.unsubscribe();
    }
  }, 30_000);
});

describe("bad input", () => {
  test("an event whose payload is off its schema is dead-lettered by the reactors that read it, and audited as it came", async () => {
    const bookingId = id("bk");
    const poison = newEnvelope({
      eventType: "BOOKING_CREATED",
      entityId: bookingId,
      payload: { bookingId, customerId: 42 },
    });
    await publish([poison], "booking-events");
    const topic = topics.event("booking-events");
    const consumers = await waitFor(
      async () => {
        const rows = await database.sql<{ consumer: string; error_class: string }[]>`
          select consumer, error_class from dead_letter where source_topic = ${topic} order by consumer`;
        return rows.length >= 4 ? rows : undefined;
      },
      { what: "dead letters of the four reactors that check BOOKING_CREATED" },
    );
    expect(consumers.map((r) => [r.consumer, r.error_class])).toEqual([
      ["analytics", "TerminalError"],
      ["cache-sync", "TerminalError"],
      ["notification", "TerminalError"],
      ["status", "TerminalError"],
    ]);
    await handledBy("audit", [poison]);
    const [notified] = await database.sql<{ n: number }[]>`
      select count(*)::int as n from notification where source_event_id = ${poison.eventId}`;
    expect(notified?.n).toBe(0);
  }, 30_000);
});

describe("Redis down", () => {
  /** Runs a reactor's handler in a transaction of our own, as the runtime does (without its inbox). */
  async function handleInTransaction(
    handle: (event: Envelope, ctx: ReactorContext) => Promise<unknown>,
    event: Envelope,
  ) {
    const result = await database.sql.begin(async (tx) => {
      // As runtime/reactor.ts: drizzle reads the client's options, which a transaction handle lacks.
      const db = drizzle(Object.assign(tx, { options: database.sql.options }) as unknown as postgres.Sql);
      return handle(event, {
        tx: db,
        sql: tx,
        topic: "t",
        partition: 0,
        offset: "0",
        attempt: 1,
        now: new Date(),
      });
    });
    // As runtime/reactor.ts: work a handler leaves for after the commit runs once it committed.
    await (result as ReactorResult | undefined)?.afterCommit?.();
  }

  test("analytics counts in Postgres and its folder logs the lost mirror; cache-sync, whose write is its whole effect, waits (UnavailableError)", async () => {
    const lines: string[] = [];
    const log = pino({ level: "warn" }, { write: (line: string) => lines.push(line) });
    const deadRedis = openRedis(`redis://127.0.0.1:${await closedPort()}/1`, { connectTimeoutMs: 200 });
    deadRedis.on("error", () => {}); // connection refused, over and over: expected here
    try {
      const deps = { topics, redis: deadRedis, natsPrefix, log };
      const day = uniqueDay();
      const b = booking();
      await putState("booking", b.bookingId, { ...b, status: "PENDING", version: 1 });
      const created = eventOf("BOOKING_CREATED", b, { occurredAt: new Date(`${day}T08:00:00Z`) });
      const before = await dailyValue(day, "bookings");
      const started = Date.now();
      await handleInTransaction(analyticsReactor(deps).handle, created);
      const deadFolder = dailyStatFolder({ sql: database.sql, redis: deadRedis, log });
      await deadFolder.foldNow(); // folds in Postgres; the mirror is logged as lost
      const waited = await handleInTransaction(cacheSyncReactor(deps).handle, created).catch(
        (e: unknown) => e,
      );
      expect(Date.now() - started).toBeLessThan(5000);
      expect(await dailyValue(day, "bookings")).toBe(before + 1);
      // Not the event's fault: the runtime neither dead-letters it nor moves past it (isUnavailable).
      expect(waited).toBeInstanceOf(UnavailableError);
      expect((waited as UnavailableError).retryable).toBe(true);
      const warnings = lines.map((l) => JSON.parse(l) as { reactor: string; key: string; msg: string });
      // (The shared test database may hold other runs' deltas: this folder folds and fails to mirror those too.)
      const ours = warnings.filter((w) => w.key === `daily:bookings:${day}`);
      expect(ours.map((w) => w.reactor)).toEqual(["analytics"]);
      expect(ours[0]?.msg).toContain("redis write failed");
      expect(warnings.every((w) => w.reactor === "analytics")).toBe(true); // cache-sync threw, logged nothing
    } finally {
      deadRedis.disconnect();
    }
  }, 30_000);
});
