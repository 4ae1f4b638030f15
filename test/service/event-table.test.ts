/**
 * The seed's event table, row by row, end to end: the HTTP call a client makes, the event it causes on its
 * (namespaced) topic as a separate Kafka reader sees it, and every listed consumer's effect, observed the way
 * the outside world would (HTTP, WebSocket, the consumers' own tables and Redis keys).
 *
 * | event             | producer     | topic               | consumers                          |
 * | ----------------- | ------------ | ------------------- | ---------------------------------- |
 * | BOOKING_CREATED   | booking      | booking-events      | notification, analytics, audit     |
 * | REPAIR_STARTED    | repair       | repair-events       | status update, notification        |
 * | REPAIR_COMPLETED  | repair       | repair-events       | payment, notification, inventory   |
 * | PAYMENT_COMPLETED | payment      | payment-events      | notification, booking, analytics   |
 * | NOTIFICATION_SENT | notification | notification-events | analytics, audit                   |
 *
 * The test database and Redis db 1 are shared with other runs: daily figures are compared with their value
 * before the call, and before that the namespace is let settle so that no earlier test's events are counted.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import type { Admin, Consumer } from "kafkajs";
import { LABOUR_RATE_PER_HOUR } from "../../actors/service-catalogue.ts";
import { consumerGroupsOf } from "../../runtime/index.ts";
import { createKafka, decodeEnvelope, type Envelope, type EventTopic } from "../../topics/index.ts";
import { testConfig } from "../support.ts";
import { openSocket, type Service, slotTime, startService } from "./fixtures.ts";

let service: Service;
let reader: Consumer;
let admin: Admin;

/** Every record of the namespace's event topics, as a reader of its own group saw it (from the beginning). */
interface Seen {
  topic: string;
  partition: number;
  offset: string;
  key: string | null;
  envelope: Envelope;
}
const seen: Seen[] = [];
const undecodable: { topic: string; offset: string }[] = [];

const EVENT_TOPICS: EventTopic[] = [
  "booking-events",
  "repair-events",
  "payment-events",
  "notification-events",
];
const topic = (name: EventTopic) => `${service.namespace}.${name}`;

beforeAll(async () => {
  service = await startService();
  const kafka = createKafka({
    brokers: testConfig().kafka.brokers,
    clientId: `${service.namespace}-event-table`,
  });
  admin = kafka.admin();
  await admin.connect();
  reader = kafka.consumer({ groupId: `${service.namespace}-event-table-${uid()}`, maxWaitTimeInMs: 100 });
  await reader.connect();
  await reader.subscribe({ topics: EVENT_TOPICS.map(topic), fromBeginning: true });
  await reader.run({
    eachMessage: async ({ topic: name, partition, message }) => {
      try {
        seen.push({
          topic: name,
          partition,
          offset: message.offset,
          key: message.key?.toString() ?? null,
          envelope: decodeEnvelope(message.value),
        });
      } catch {
        undecodable.push({ topic: name, offset: message.offset });
      }
    },
  });
}, 120_000);

afterAll(async () => {
  await reader?.disconnect().catch(() => {});
  await admin?.disconnect().catch(() => {});
  await service?.stop();
}, 60_000);

function uid() {
  return Bun.randomUUIDv7().slice(-8);
}
const randomHours = () => 24 + Math.floor(Math.random() * 24 * 300);
const QUARTER_HOUR = LABOUR_RATE_PER_HOUR / 4;

async function poll<T>(read: () => Promise<T | undefined> | T | undefined, what: string, timeoutMs = 20_000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const value = await read();
    if (value !== undefined) return value;
    await Bun.sleep(50);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

// ---------------------------------------------------------------------------------------------------------------
// Kafka: the events on their topics

/** The records of `type` on `name` whose payload matches; distinct by eventId (a record may be redelivered). */
function eventsOf(name: EventTopic, type: string, match: (payload: Record<string, unknown>) => boolean) {
  const byId = new Map<string, Seen>();
  for (const s of seen) {
    if (s.topic === topic(name) && s.envelope.eventType === type && match(s.envelope.payload)) {
      if (!byId.has(s.envelope.eventId)) byId.set(s.envelope.eventId, s);
    }
  }
  return [...byId.values()];
}

/** The one event of `type` about `id` (payload field `field`) on its topic; fails if there are two. */
async function theEvent(name: EventTopic, type: string, field: string, id: string): Promise<Seen> {
  const found = await poll(
    () => {
      const list = eventsOf(name, type, (p) => p[field] === id);
      return list.length > 0 ? list : undefined;
    },
    `${type} with ${field}=${id} on ${topic(name)}`,
  );
  expect(found.length).toBe(1);
  return found[0] as Seen;
}

/**
 * Waits until nothing of the namespace is in flight: no unpublished outbox row, and every consumer group of
 * every actor kind and reactor has committed the end of every partition it reads (twice in a row).
 */
async function settle() {
  const domain = service.system.domain();
  if (!domain) throw new Error("the host is not running");
  const prefix = `pitstop-${service.namespace}`;
  const groups = consumerGroupsOf({ ...domain, groupPrefix: prefix });
  const quiet = async () => {
    const [pending] = await service.system.routes.sql<{ n: number }[]>`
      select count(*)::int as n from outbox where published_at is null and topic like ${`${service.namespace}.%`}`;
    if ((pending?.n ?? 0) > 0) return false;
    const names = [...new Set(groups.flatMap((g) => g.topics))];
    const ends = new Map<string, string>();
    for (const [i, offsets] of (await Promise.all(names.map((t) => admin.fetchTopicOffsets(t)))).entries()) {
      for (const p of offsets) ends.set(`${names[i]}/${p.partition}`, p.high);
    }
    const committed = await Promise.all(groups.map((g) => admin.fetchOffsets(g)));
    return committed.every((topics) =>
      topics.every((t) =>
        t.partitions.every((p) => {
          const end = Number(ends.get(`${t.topic}/${p.partition}`) ?? 0);
          return end === 0 || Number(p.offset) >= end;
        }),
      ),
    );
  };
  let inARow = 0;
  await poll(
    async () => {
      // A young topic's leader may still be moving: a failed look is just not quiet yet.
      inARow = (await quiet().catch(() => false)) ? inARow + 1 : 0;
      return inARow >= 2 ? true : undefined;
    },
    "the namespace to settle",
    30_000,
  );
}

// ---------------------------------------------------------------------------------------------------------------
// What the consumers did

const sql = () => service.system.routes.sql;
const redis = () => service.system.routes.redis;

/** Whether reactor `consumer` has handled the event (its inbox row commits with its effects). */
async function handled(consumer: string, eventIds: string[]) {
  return poll(
    async () => {
      const rows = await sql()<{ event_id: string }[]>`
      select event_id from inbox where consumer = ${consumer} and event_id in ${sql()(eventIds)}`;
      return rows.length === eventIds.length ? true : undefined;
    },
    `${consumer} to handle ${eventIds.join(", ")}`,
  );
}

interface NotificationRow {
  id: string;
  channel: string;
  template: string;
  customer_id: string;
  correlation_id: string;
  source_event_type: string;
}

/** The notification rows written for an event, once there are `count` of them, by channel. */
async function notificationsFor(eventId: string, count: number) {
  const rows = await poll(async () => {
    const list = await sql()<NotificationRow[]>`
      select id, channel, template, customer_id, correlation_id, source_event_type
      from notification where source_event_id = ${eventId} order by channel`;
    return list.length >= count ? list : undefined;
  }, `${count} notification(s) for event ${eventId}`);
  return [...rows];
}

interface AuditRow {
  event_type: string;
  topic: string;
  partition: number;
  offset: string;
  entity_id: string;
  correlation_id: string;
  causation_id: string | null;
  payload: unknown;
}

/** The audit row of an event (the audit reactor writes one per event). */
async function auditOf(eventId: string) {
  const rows = await poll(async () => {
    const list = await sql()<AuditRow[]>`
      select event_type, topic, partition, "offset"::text as "offset", entity_id, correlation_id, causation_id, payload
      from audit_log where event_id = ${eventId}`;
    return list.length > 0 ? list : undefined;
  }, `the audit row of event ${eventId}`);
  expect(rows.length).toBe(1);
  return rows[0] as AuditRow;
}

/** The audit row says what the topic carried: type, where it was read, the entity and the correlation. */
async function expectAudited(event: Seen) {
  const row = await auditOf(event.envelope.eventId);
  expect(row).toEqual({
    event_type: event.envelope.eventType,
    topic: event.topic,
    partition: event.partition,
    offset: event.offset,
    entity_id: event.envelope.entityId,
    correlation_id: event.envelope.correlationId,
    causation_id: event.envelope.causationId,
    payload: event.envelope.payload,
  });
}

const utcDay = (at: Date | string) => new Date(at).toISOString().slice(0, 10);

/** The day's figures as the dashboard reads them: GET /api/v1/analytics/daily (Postgres, and Redis's mirror). */
async function daily(day: string) {
  const token = await service.token("admin", `admin-${uid()}`);
  const response = await service.call("GET", `/api/v1/analytics/daily?date=${day}`, { token });
  expect(response.status).toBe(200);
  return response.body as {
    date: string;
    metrics: Record<string, number>;
    redis: { bookings: number | null; revenue: number | null };
  };
}

/** The figures of today and of the next minute's day (an event made at 23:59:59 UTC counts on the next). */
async function figuresBefore() {
  const days = [...new Set([utcDay(new Date()), utcDay(new Date(Date.now() + 60_000))])];
  const out = new Map<string, Record<string, number>>();
  for (const day of days) out.set(day, (await daily(day)).metrics);
  return (day: string, metric: string) => {
    const figures = out.get(day);
    if (!figures) throw new Error(`no figures read before for ${day}`);
    return figures[metric] ?? 0;
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Driving the flows through HTTP

async function book(customer: string, serviceType = "INSPECTION") {
  const bookingDate = slotTime(randomHours(), 45);
  const vehicleId = `car-${uid()}`;
  const booked = await service.call("POST", "/api/v1/bookings", {
    token: customer,
    body: { vehicleId, serviceType, bookingDate },
  });
  expect(booked.status).toBe(201);
  expect(booked.body.status).toBe("CONFIRMED");
  return { bookingId: booked.body.bookingId as string, bookingDate, vehicleId, serviceType };
}

async function startRepair(technician: string, bookingId: string, estimatedTime = 60) {
  const started = await service.call("POST", "/api/v1/repairs/start", {
    token: technician,
    body: { bookingId, estimatedTime },
  });
  expect(started.status).toBe(201);
  return started.body.repairId as string;
}

async function progressToTesting(technician: string, repairId: string) {
  for (const [status, progress] of [
    ["DIAGNOSING", 25],
    ["REPAIRING", 50],
    ["TESTING", 90],
  ] as const) {
    const step = await service.call("POST", `/api/v1/repairs/${repairId}/progress`, {
      token: technician,
      body: { status, progress },
    });
    expect(step.status).toBe(200);
  }
}

async function complete(technician: string, repairId: string, parts: PartUse[], labourMinutes: number) {
  const done = await service.call("POST", `/api/v1/repairs/${repairId}/complete`, {
    token: technician,
    body: { parts, labourMinutes },
  });
  expect(done.status).toBe(200);
  expect(done.body.status).toBe("COMPLETED");
}

interface PartUse {
  partId: string;
  quantity: number;
}

interface CataloguePart {
  partId: string;
  name: string;
  unitPrice: number;
  stock: number;
  lowStockThreshold: number;
  lowStock: boolean;
}

/** The parts catalogue and stock, as staff read it: GET /api/v1/parts. */
async function catalogue(technician: string) {
  const response = await service.call("GET", "/api/v1/parts", { token: technician });
  expect(response.status).toBe(200);
  return new Map((response.body as CataloguePart[]).map((p) => [p.partId, p]));
}

/**
 * Subscribes and waits for the answer, asking again while there is none: the gateway drops a message that
 * arrives before its (async) `open` has registered the connection (http/status-socket.ts), so a subscribe sent
 * right after the socket opens may go unanswered. Subscribing twice is harmless (one NATS subscription).
 */
async function subscribe(
  socket: Awaited<ReturnType<typeof openSocket>>,
  to: { bookingId: string } | { repairId: string },
) {
  const id = "bookingId" in to ? to.bookingId : to.repairId;
  return poll(async () => {
    socket.send({ type: "subscribe", ...to });
    const until = Date.now() + 1000;
    while (Date.now() < until) {
      const answer = socket.frames.find(
        (f) => f.id === id && (f.type === "subscribed" || f.type === "error"),
      );
      if (answer) return answer;
      await Bun.sleep(20);
    }
    return undefined;
  }, `the subscription to ${id}`).then((answer) => {
    expect(answer.type).toBe("subscribed");
    return answer;
  });
}

async function bookingWhen(bookingId: string, customer: string, status: string) {
  return poll(async () => {
    const r = await service.call("GET", `/api/v1/bookings/${bookingId}`, { token: customer });
    return r.status === 200 && r.body.status === status ? r.body : undefined;
  }, `booking ${bookingId} to be ${status}`);
}

// ---------------------------------------------------------------------------------------------------------------

test("BOOKING_CREATED: a customer's booking is on booking-events keyed by the booking, and notification, analytics and audit each act on it", async () => {
  await settle();
  const figure = await figuresBefore();
  const customerId = `cust-${uid()}`;
  const customer = await service.token("customer", customerId);

  const { bookingId, bookingDate, vehicleId, serviceType } = await book(customer);

  // Produced by the booking, on booking-events, keyed by the booking id, carrying what the customer asked for.
  const created = await theEvent("booking-events", "BOOKING_CREATED", "bookingId", bookingId);
  const hour = new Date(bookingDate);
  hour.setUTCMinutes(0, 0, 0);
  expect(created.key).toBe(bookingId);
  expect(created.envelope.entityId).toBe(bookingId);
  expect(created.envelope.payload).toEqual({
    bookingId,
    customerId,
    vehicleId,
    serviceType,
    bookingDate,
    slotId: `${service.namespace}/${serviceType}@${hour.toISOString()}`,
  });

  // notification: the confirmation by email, SMS and push, to this customer, in the request's correlation.
  const sent = await notificationsFor(created.envelope.eventId, 3);
  expect(sent.map((n) => [n.channel, n.template, n.customer_id, n.source_event_type])).toEqual([
    ["email", "booking-confirmed", customerId, "BOOKING_CREATED"],
    ["push", "booking-confirmed", customerId, "BOOKING_CREATED"],
    ["sms", "booking-confirmed", customerId, "BOOKING_CREATED"],
  ]);
  for (const n of sent) expect(n.correlation_id).toBe(created.envelope.correlationId);

  // analytics: one more booking on the event's day, in Postgres and in Redis's mirror of it.
  await handled("analytics", [created.envelope.eventId]);
  const day = utcDay(created.envelope.occurredAt);
  const after = await daily(day);
  expect(after.metrics.bookings).toBe(figure(day, "bookings") + 1);
  await poll(async () => {
    const now = await daily(day);
    const mirror = await redis().get(`daily:bookings:${day}`);
    return now.redis.bookings === now.metrics.bookings && Number(mirror) === now.metrics.bookings
      ? true
      : undefined;
  }, "Redis daily:bookings to equal Postgres");

  // audit: the event's row, where it was read and with its correlation id.
  await expectAudited(created);
}, 60_000);

test("REPAIR_STARTED: a technician's start is on repair-events keyed by the repair, the customer's WebSocket and the status cache follow it, and the customer is told", async () => {
  const customerId = `cust-${uid()}`;
  const customer = await service.token("customer", customerId);
  const technicianId = `tech-${uid()}`;
  const technician = await service.token("technician", technicianId);
  const { bookingId } = await book(customer);
  const socket = await openSocket(`${service.wsUrl}?token=${customer}`);
  try {
    await subscribe(socket, { bookingId });

    const repairId = await startRepair(technician, bookingId, 75);

    const started = await theEvent("repair-events", "REPAIR_STARTED", "repairId", repairId);
    expect(started.key).toBe(repairId);
    expect(started.envelope.entityId).toBe(repairId);
    expect(started.envelope.payload).toEqual({
      repairId,
      bookingId,
      customerId,
      technicianId,
      estimatedMinutes: 75,
    });

    // status update: a frame for this very event reaches the customer's socket, with the booking now in service.
    const frame = await socket.waitFor(
      (f) => f.type === "status" && f.entity === "booking" && f.eventId === started.envelope.eventId,
      "the REPAIR_STARTED frame",
    );
    expect(frame).toMatchObject({
      event: "REPAIR_STARTED",
      id: bookingId,
      status: "IN_SERVICE",
      at: started.envelope.occurredAt,
      detail: started.envelope.payload,
    });
    // The repair can be followed from now on; its current state is the started repair.
    const subscribed = await subscribe(socket, { repairId });
    expect(subscribed.current).toMatchObject({ repairId, bookingId, status: "STARTED", progress: 0 });

    // status update: the real-time status in Redis, repair:status:{id}.
    await handled("cache-sync", [started.envelope.eventId]);
    const cached = await redis().hgetall(`repair:status:${repairId}`);
    expect(cached).toMatchObject({ status: "STARTED", progress: "0" });

    // notification: a push to the customer that work has started.
    const sent = await notificationsFor(started.envelope.eventId, 1);
    expect(sent.map((n) => [n.channel, n.template, n.customer_id])).toEqual([
      ["push", "repair-started", customerId],
    ]);
    expect(sent[0]?.correlation_id).toBe(started.envelope.correlationId);
  } finally {
    socket.close();
  }
}, 60_000);

test("REPAIR_COMPLETED: completing a tested repair is on repair-events, and it is invoiced (parts + labour), the customer is told the car is ready, and the parts leave stock", async () => {
  const customerId = `cust-${uid()}`;
  const customer = await service.token("customer", customerId);
  const technician = await service.token("technician", `tech-${uid()}`);
  const { bookingId } = await book(customer, "GENERAL_REPAIR");
  const repairId = await startRepair(technician, bookingId);
  await progressToTesting(technician, repairId);
  const parts: PartUse[] = [
    { partId: "SPARK-PLUG", quantity: 2 },
    { partId: "WIPER-BLADE", quantity: 1 },
  ];
  const labourMinutes = 50; // four started quarter hours
  const before = await catalogue(technician);
  const priced = parts.map((p) => {
    const known = before.get(p.partId);
    if (!known) throw new Error(`part ${p.partId} is not in the catalogue`);
    return { ...p, name: known.name, unitPrice: known.unitPrice };
  });
  const partsCost = priced.reduce((sum, p) => sum + p.quantity * p.unitPrice, 0);
  const labourCost = 4 * QUARTER_HOUR;

  await complete(technician, repairId, parts, labourMinutes);

  const completed = await theEvent("repair-events", "REPAIR_COMPLETED", "repairId", repairId);
  expect(completed.key).toBe(repairId);
  expect(completed.envelope.entityId).toBe(repairId);
  expect(completed.envelope.payload).toEqual({
    repairId,
    bookingId,
    customerId,
    parts: priced,
    labourMinutes,
    labourCost,
    partsCost,
  });

  // payment: an invoice for the parts and the labour, in the completion's correlation, open for the customer.
  const awaiting = await bookingWhen(bookingId, customer, "AWAITING_PAYMENT");
  const invoiceId: string = awaiting.invoiceId;
  const invoice = await service.call("GET", `/api/v1/invoices/${invoiceId}`, { token: customer });
  expect(invoice.status).toBe(200);
  expect(invoice.body).toMatchObject({
    status: "OPEN",
    bookingId,
    repairId,
    customerId,
    amount: partsCost + labourCost,
    currency: "THB",
  });
  expect(invoice.body.lines).toEqual([
    ...priced.map((p) => ({
      description: p.name,
      quantity: p.quantity,
      unitPrice: p.unitPrice,
      amount: p.quantity * p.unitPrice,
    })),
    { description: `Labour, ${labourMinutes} min`, quantity: 1, unitPrice: labourCost, amount: labourCost },
  ]);
  const opened = await theEvent("payment-events", "INVOICE_CREATED", "invoiceId", invoiceId);
  expect(opened.envelope.correlationId).toBe(completed.envelope.correlationId);
  expect(opened.envelope.payload).toMatchObject({ repairId, bookingId, amount: partsCost + labourCost });

  // notification: "your car is ready", by SMS and push.
  const sent = await notificationsFor(completed.envelope.eventId, 2);
  expect(sent.map((n) => [n.channel, n.template, n.customer_id])).toEqual([
    ["push", "car-ready", customerId],
    ["sms", "car-ready", customerId],
  ]);

  // inventory: one movement per part for this event; stock down by the quantity, never below zero.
  await handled("inventory", [completed.envelope.eventId]);
  const movements = await sql()<
    { part_id: string; quantity: number; shortfall: number; repair_id: string }[]
  >`
    select part_id, quantity, shortfall, repair_id from part_movement
    where event_id = ${completed.envelope.eventId} order by part_id`;
  const stockBefore = (partId: string) => before.get(partId)?.stock ?? 0;
  expect([...movements]).toEqual(
    [...parts]
      .sort((a, b) => (a.partId < b.partId ? -1 : 1))
      .map((p) => ({
        part_id: p.partId,
        quantity: p.quantity,
        shortfall: Math.max(p.quantity - stockBefore(p.partId), 0),
        repair_id: repairId,
      })),
  );
  const after = await catalogue(technician);
  for (const p of parts) {
    const stock = Math.max(stockBefore(p.partId) - p.quantity, 0);
    const threshold = before.get(p.partId)?.lowStockThreshold ?? 0;
    expect({
      partId: p.partId,
      stock: after.get(p.partId)?.stock,
      low: after.get(p.partId)?.lowStock,
    }).toEqual({ partId: p.partId, stock, low: stock <= threshold });
  }
}, 60_000);

test("PAYMENT_COMPLETED: paying the invoice is on payment-events keyed by the invoice, and the receipt goes out, the booking is PAID and the day's revenue grows by the amount", async () => {
  const customerId = `cust-${uid()}`;
  const customer = await service.token("customer", customerId);
  const technician = await service.token("technician", `tech-${uid()}`);
  const { bookingId } = await book(customer, "BRAKE_SERVICE");
  const repairId = await startRepair(technician, bookingId);
  await progressToTesting(technician, repairId);
  await complete(technician, repairId, [{ partId: "FILTER-AIR", quantity: 1 }], 20);
  const { invoiceId } = await bookingWhen(bookingId, customer, "AWAITING_PAYMENT");
  const invoice = await service.call("GET", `/api/v1/invoices/${invoiceId}`, { token: customer });
  expect(invoice.status).toBe(200);
  const amount: number = invoice.body.amount;
  const filterAir = (await catalogue(technician)).get("FILTER-AIR")?.unitPrice ?? Number.NaN;
  expect(amount).toBe(filterAir + 2 * QUARTER_HOUR);
  await settle();
  const figure = await figuresBefore();

  const paid = await service.call("POST", "/api/v1/payments", {
    token: customer,
    body: { invoiceId, cardToken: "tok_visa" },
  });
  expect(paid.status).toBe(200);
  expect(paid.body).toMatchObject({ status: "PAID", amount });

  const payment = await theEvent("payment-events", "PAYMENT_COMPLETED", "invoiceId", invoiceId);
  expect(payment.key).toBe(invoiceId);
  expect(payment.envelope.entityId).toBe(invoiceId);
  const charges = await sql()<{ id: string; amount: number; status: string }[]>`
    select id, amount, status from gateway_charge where reference = ${invoiceId}`;
  expect(charges.length).toBe(1);
  expect(payment.envelope.payload).toEqual({
    invoiceId,
    bookingId,
    customerId,
    amount,
    currency: "THB",
    chargeId: charges[0]?.id,
  });
  expect(charges[0]).toMatchObject({ amount, status: "approved" });

  // notification: the receipt, by email.
  const sent = await notificationsFor(payment.envelope.eventId, 1);
  expect(sent.map((n) => [n.channel, n.template, n.customer_id])).toEqual([["email", "receipt", customerId]]);
  expect(sent[0]?.correlation_id).toBe(payment.envelope.correlationId);

  // booking: the job is closed out as PAID, for this invoice and amount.
  const booking = await bookingWhen(bookingId, customer, "PAID");
  expect(booking).toMatchObject({ invoiceId, amount, repairId });
  const bookingPaid = await theEvent("booking-events", "BOOKING_PAID", "bookingId", bookingId);
  expect(bookingPaid.envelope.correlationId).toBe(payment.envelope.correlationId);

  // analytics: the day's revenue grows by the amount, one more payment; Redis mirrors the revenue.
  await handled("analytics", [payment.envelope.eventId]);
  const day = utcDay(payment.envelope.occurredAt);
  const after = await daily(day);
  expect(after.metrics.revenue).toBe(figure(day, "revenue") + amount);
  expect(after.metrics.payments).toBe(figure(day, "payments") + 1);
  await poll(async () => {
    const now = await daily(day);
    const mirror = await redis().get(`daily:revenue:${day}`);
    return now.redis.revenue === now.metrics.revenue && Number(mirror) === now.metrics.revenue
      ? true
      : undefined;
  }, "Redis daily:revenue to equal Postgres");
}, 60_000);

test("NOTIFICATION_SENT: every notification sent is on notification-events keyed by the customer, and analytics counts it per channel and audit records it", async () => {
  await settle();
  const figure = await figuresBefore();
  const customerId = `cust-${uid()}`;
  const customer = await service.token("customer", customerId);
  const { bookingId } = await book(customer);
  const created = await theEvent("booking-events", "BOOKING_CREATED", "bookingId", bookingId);
  const rows = await notificationsFor(created.envelope.eventId, 3);
  expect(rows.map((r) => r.channel)).toEqual(["email", "push", "sms"]);

  // One NOTIFICATION_SENT per notification row, caused by the booking's event and in its correlation.
  const sent = await poll(() => {
    const list = eventsOf("notification-events", "NOTIFICATION_SENT", (p) => p.customerId === customerId);
    return list.length >= rows.length ? list : undefined;
  }, "a NOTIFICATION_SENT per notification");
  const byChannel = [...sent].sort((a, b) =>
    String(a.envelope.payload.channel) < String(b.envelope.payload.channel) ? -1 : 1,
  );
  expect(byChannel.map((s) => s.envelope.payload)).toEqual(
    rows.map((r) => ({
      notificationId: r.id,
      customerId,
      channel: r.channel,
      template: r.template,
      sourceEventId: created.envelope.eventId,
      sourceEventType: "BOOKING_CREATED",
    })),
  );
  for (const s of byChannel) {
    expect(s.key).toBe(customerId);
    expect(s.envelope.entityId).toBe(customerId);
    expect(s.envelope.correlationId).toBe(created.envelope.correlationId);
    expect(s.envelope.causationId).toBe(created.envelope.eventId);
  }

  // analytics: one more notification on each channel, three more of the template; Redis mirrors the channels.
  const ids = byChannel.map((s) => s.envelope.eventId);
  await handled("analytics", ids);
  const day = utcDay(created.envelope.occurredAt);
  for (const s of byChannel) expect(utcDay(s.envelope.occurredAt)).toBe(day);
  const after = await daily(day);
  for (const channel of ["email", "push", "sms"]) {
    expect({ channel, value: after.metrics[`notifications.${channel}`] }).toEqual({
      channel,
      value: figure(day, `notifications.${channel}`) + 1,
    });
  }
  expect(after.metrics["notifications.booking-confirmed"]).toBe(
    figure(day, "notifications.booking-confirmed") + 3,
  );
  await poll(async () => {
    const now = await daily(day);
    const mirror = await redis().hgetall(`daily:notifications:${day}`);
    return ["email", "push", "sms"].every((c) => Number(mirror[c]) === now.metrics[`notifications.${c}`])
      ? true
      : undefined;
  }, "Redis daily:notifications to equal Postgres per channel");

  // audit: a row for each, with the booking's correlation id.
  for (const s of byChannel) await expectAudited(s);
  await auditOf(created.envelope.eventId);
  const trail = await sql()<{ event_type: string; n: number }[]>`
    select event_type, count(*)::int as n from audit_log where correlation_id = ${created.envelope.correlationId}
    and event_type in ('BOOKING_CREATED', 'NOTIFICATION_SENT') group by event_type order by event_type`;
  expect([...trail]).toEqual([
    { event_type: "BOOKING_CREATED", n: 1 },
    { event_type: "NOTIFICATION_SENT", n: 3 },
  ]);
  expect(undecodable).toEqual([]);
}, 60_000);
