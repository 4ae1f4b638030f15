/**
 * Traces through the real service (docs/ops.md, "Traces"): the test process registers a tracer provider with an
 * in-memory exporter, the way a process with OTEL_EXPORTER_OTLP_ENDPOINT registers one with OTLP (ops/tracing.ts).
 * One booking's trace id is found on its HTTP span, on every turn, commit, publish and reactor span it caused —
 * each hanging off the HTTP span through its parents — and on the Kafka records it caused; a status frame on the
 * WebSocket carries the trace id of the request that moved the booking.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { SpanKind } from "@opentelemetry/api";
import { InMemorySpanExporter, type ReadableSpan } from "@opentelemetry/sdk-trace-base";
import type { IHeaders } from "kafkajs";
import pino from "pino";
import { createApp } from "../../http/index.ts";
import { startTracing, type Tracing } from "../../ops/tracing.ts";
import { createKafka, decodeEnvelope, type Envelope, topicCatalogue } from "../../topics/index.ts";
import { testConfig, waitFor } from "../support.ts";
import { openSocket, type Service, slotTime, startService } from "./fixtures.ts";

const exporter = new InMemorySpanExporter();
let tracing: Tracing;
let service: Service;
beforeAll(async () => {
  // Before the system is built: nothing traces until a provider is registered.
  tracing = startTracing({ exporter, processor: "simple" });
  service = await startService();
}, 120_000);
afterAll(async () => {
  await service?.stop();
  await tracing?.shutdown();
}, 60_000);

const hex = (bytes: number) => Buffer.from(crypto.getRandomValues(new Uint8Array(bytes))).toString("hex");
const spansOf = (traceId: string) =>
  exporter.getFinishedSpans().filter((s) => s.spanContext().traceId === traceId);
const named = (spans: ReadableSpan[], name: string) => spans.filter((s) => s.name === name);

/** The spans whose parent is neither among `spans` nor `rootParent` (the caller's span id). */
function orphans(spans: ReadableSpan[], rootParent: string): ReadableSpan[] {
  const ids = new Set(spans.map((s) => s.spanContext().spanId));
  return spans.filter((s) => {
    const parent = s.parentSpanContext?.spanId;
    return parent !== rootParent && (parent === undefined || !ids.has(parent));
  });
}

/** The names from `span` up to the root through its parents. */
function ancestry(span: ReadableSpan, spans: ReadableSpan[]): string[] {
  const byId = new Map(spans.map((s) => [s.spanContext().spanId, s]));
  const names = [span.name];
  for (let s = span; s.parentSpanContext && byId.has(s.parentSpanContext.spanId); ) {
    s = byId.get(s.parentSpanContext.spanId) as ReadableSpan;
    names.push(s.name);
  }
  return names;
}

const traceIdIn = (traceparent: string | undefined) => traceparent?.split("-")[1];
const header = (headers: IHeaders | undefined, name: string) => headers?.[name]?.toString();

/** Every record of the namespace's topics now, with its traceparent. */
async function recordsOf(namespace: string) {
  const kafka = createKafka({ brokers: testConfig().kafka.brokers, clientId: `${namespace}-trace-reader` });
  const topics = topicCatalogue(3, namespace).map((t) => t.name);
  const admin = kafka.admin();
  await admin.connect();
  let expected = 0;
  for (const topic of topics) {
    for (const p of await admin.fetchTopicOffsets(topic)) expected += Number(p.high) - Number(p.low);
  }
  await admin.disconnect();
  const records: { topic: string; envelope: Envelope; traceparent: string | undefined }[] = [];
  const reader = kafka.consumer({ groupId: `${namespace}-trace-reader-${hex(4)}`, maxWaitTimeInMs: 100 });
  await reader.connect();
  await reader.subscribe({ topics, fromBeginning: true });
  await reader.run({
    eachMessage: async ({ topic, message }) => {
      records.push({
        topic,
        envelope: decodeEnvelope(message.value),
        traceparent: header(message.headers, "traceparent"),
      });
    },
  });
  try {
    await waitFor(() => records.length >= expected, { timeoutMs: 60_000, what: `${expected} records` });
  } finally {
    await reader.disconnect();
  }
  return records;
}

describe("traces", () => {
  let customer: string;
  let bookingId: string;

  test("one booking's trace id is on its HTTP span, every turn, commit, publish and reactor span it caused, and its Kafka records", async () => {
    customer = await service.token("customer", `trace-${hex(4)}`);
    // The caller's trace: the request's span must be its child.
    const traceId = hex(16);
    const callerSpan = hex(8);
    const booked = await service.call("POST", "/api/v1/bookings", {
      token: customer,
      headers: { traceparent: `00-${traceId}-${callerSpan}-01` },
      body: { vehicleId: "v-trace", serviceType: "OIL_CHANGE", bookingDate: slotTime(7000) },
    });
    expect(booked.status).toBe(201);
    bookingId = booked.body.bookingId;

    const reactors = ["audit", "analytics", "status", "notification", "cache-sync"];
    // Done once the booking's turns and every reactor's BOOKING_CREATED are in, and every span's parent is too
    // (a parent ends after its children at times: a publish is acknowledged after its consumer's turn began).
    const spans = await waitFor(
      () => {
        const all = spansOf(traceId);
        const reacted = reactors.every((r) =>
          named(all, `reactor ${r}`).some((s) => s.attributes["pitstop.message.type"] === "BOOKING_CREATED"),
        );
        const turned = ["booking", "slot", "job-saga"].every((kind) => named(all, `turn ${kind}`).length > 0);
        return reacted && turned && orphans(all, callerSpan).length === 0 ? all : undefined;
      },
      { timeoutMs: 30_000, what: "the booking's spans" },
    );

    const [http, ...others] = spans.filter((s) => s.kind === SpanKind.SERVER);
    expect(others).toEqual([]);
    expect(http?.name).toBe("POST /api/v1/bookings");
    expect(http?.parentSpanContext?.spanId).toBe(callerSpan);
    expect(http?.attributes).toMatchObject({
      "http.request.method": "POST",
      "http.route": "/api/v1/bookings",
      "http.response.status_code": 201,
    });

    // The booking's turns: its CREATE (from the request) and the slot's answer, each run in a span of its own.
    const bookingTurns = named(spans, "turn booking");
    expect(bookingTurns.map((s) => s.attributes["pitstop.message.type"]).sort()).toEqual([
      "CREATE",
      "SLOT_HELD",
    ]);
    for (const turn of bookingTurns) {
      expect(turn.kind).toBe(SpanKind.CONSUMER);
      expect(turn.attributes).toMatchObject({
        "pitstop.actor.kind": "booking",
        "pitstop.actor.key": bookingId,
        "messaging.destination.name": `${service.namespace}.booking-mailbox`,
        "pitstop.turn.outcome": "committed",
      });
      expect(typeof turn.attributes["messaging.destination.partition.id"]).toBe("string");
      expect(typeof turn.attributes["messaging.kafka.offset"]).toBe("number");
      // Its commit is a child of it.
      const commits = named(spans, "commit").filter(
        (c) => c.parentSpanContext?.spanId === turn.spanContext().spanId,
      );
      expect(commits).toHaveLength(1);
    }
    const create = bookingTurns.find(
      (s) => s.attributes["pitstop.message.type"] === "CREATE",
    ) as ReadableSpan;
    // request -> publish of the command -> the booking's turn
    expect(ancestry(create, spans)).toEqual([
      "turn booking",
      `publish ${service.namespace}.booking-mailbox`,
      "POST /api/v1/bookings",
    ]);
    const status = named(spans, "reactor status").find(
      (s) => s.attributes["pitstop.message.type"] === "BOOKING_CREATED",
    ) as ReadableSpan;
    // ... -> the slot's turn -> the booking's answer turn -> the event's publish by the relay -> the reactor
    expect(ancestry(status, spans)).toEqual([
      "reactor status",
      `publish ${service.namespace}.booking-events`,
      "turn booking",
      `publish ${service.namespace}.booking-mailbox`,
      "turn slot",
      `publish ${service.namespace}.slot-mailbox`,
      "turn booking",
      `publish ${service.namespace}.booking-mailbox`,
      "POST /api/v1/bookings",
    ]);
    expect(status.attributes).toMatchObject({
      "pitstop.reactor": "status",
      "pitstop.reactor.outcome": "handled",
      "messaging.destination.name": `${service.namespace}.booking-events`,
    });
    // Every span of the trace hangs off the request's.
    for (const span of spans) expect(ancestry(span, spans).at(-1)).toBe("POST /api/v1/bookings");

    // Every record the booking caused (its correlation) carries the trace in its headers.
    const correlationId = create.attributes["pitstop.correlation.id"];
    const records = (await recordsOf(service.namespace)).filter(
      (r) => r.envelope.correlationId === correlationId,
    );
    expect([...new Set(records.map((r) => r.topic))]).toEqual(
      expect.arrayContaining(
        ["booking-mailbox", "slot-mailbox", "job-saga-mailbox", "booking-events"].map(
          (t) => `${service.namespace}.${t}`,
        ),
      ),
    );
    for (const record of records) expect(traceIdIn(record.traceparent)).toBe(traceId);
  }, 120_000);

  test("a status frame on the WebSocket carries the trace id of the request that moved the booking", async () => {
    const socket = await openSocket(`${service.wsUrl}?token=${customer}`);
    socket.send({ type: "subscribe", bookingId });
    await socket.waitFor((f) => f.type === "subscribed", "the subscription");
    const traceId = hex(16);
    const cancelled = await service.call("POST", `/api/v1/bookings/${bookingId}/cancel`, {
      token: customer,
      headers: { traceparent: `00-${traceId}-${hex(8)}-01` },
      body: { reason: "trace test" },
    });
    expect(cancelled.status).toBe(200);
    const frame = await socket.waitFor(
      (f) => f.type === "status" && f.event === "BOOKING_CANCELLED",
      "the cancellation's status frame",
    );
    expect(frame).toMatchObject({ entity: "booking", id: bookingId, status: "CANCELLED", traceId });
    socket.close();
  }, 60_000);

  test("a request without a traceparent is the root of a trace of its own", async () => {
    const read = await service.call("GET", `/api/v1/bookings/${bookingId}`, { token: customer });
    expect(read.status).toBe(200);
    const span = await waitFor(
      () =>
        exporter
          .getFinishedSpans()
          .find(
            (s) =>
              s.name === "GET /api/v1/bookings/:id" &&
              s.attributes["url.path"] === `/api/v1/bookings/${bookingId}`,
          ),
      { what: "the read's span" },
    );
    expect(span.parentSpanContext).toBeUndefined();
    expect(span.attributes["http.response.status_code"]).toBe(200);
  });

  test("the access line of a request carries its request id and trace id", async () => {
    const lines: Record<string, unknown>[] = [];
    const log = pino({ level: "info" }, { write: (line: string) => lines.push(JSON.parse(line)) });
    const app = createApp({ probes: [], log });
    const traceId = hex(16);
    const response = await app.handle(
      new Request("http://localhost/livez", {
        headers: { traceparent: `00-${traceId}-${hex(8)}-01`, "x-request-id": "req-trace-1" },
      }),
    );
    expect(response.status).toBe(200);
    const line = await waitFor(() => lines.find((l) => l.msg === "request"), { what: "the access line" });
    expect(line).toMatchObject({ requestId: "req-trace-1", traceId, route: "/livez", status: 200 });
  });
});
