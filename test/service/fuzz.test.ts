/**
 * Schema-driven fuzzing of the HTTP edge (issue 9): requests generated from the served OpenAPI document — every
 * route, with bodies built from each route's own schema and then broken one way each (wrong types, null,
 * missing and extra fields, huge values, NUL and lone surrogates, impossible dates), broken JSON and wrong
 * content types, bad path ids and query values, missing and forged tokens. Nothing may answer 5xx, every refusal
 * is the JSON error shape, and the service is healthy afterwards.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { waitFor } from "../support.ts";
import { type Json, openSocket, type Service, slotTime, startService } from "./fixtures.ts";

const REQUESTS = 10_000;
/** One seed for the run (FUZZ_SEED tells a failing run again): printed by each test. */
const SEED = Number(process.env.FUZZ_SEED ?? Date.now() % 1_000_000);
const CONCURRENCY = 16;

let service: Service;
let tokens: string[];
beforeAll(async () => {
  service = await startService({ RATE_LIMIT_PER_MINUTE: "0" }); // the budget has its own test (limits.test.ts)
  const uid = Bun.randomUUIDv7().slice(-8);
  tokens = await Promise.all([
    service.token("customer", `fuzz-c-${uid}`),
    service.token("technician", `fuzz-t-${uid}`),
    service.token("admin", `fuzz-a-${uid}`),
  ]);
}, 120_000);
afterAll(() => service?.stop(), 60_000);

/** A seeded generator: a failing run can be told again (FUZZ_SEED). */
function random(seed: number) {
  let s = seed >>> 0;
  const next = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    next,
    pick: <T>(items: readonly T[]): T => items[Math.floor(next() * items.length)] as T,
    chance: (p: number) => next() < p,
  };
}

type Schema = {
  type?: string;
  enum?: unknown[];
  pattern?: string;
  minimum?: number;
  maximum?: number;
  properties?: Record<string, Schema>;
  required?: string[];
  items?: Schema;
  anyOf?: Schema[];
};

interface Operation {
  method: string;
  path: string;
  params: { name: string; in: string }[];
  body?: Schema;
}

const NUL = "a\u0000b";
const SURROGATE = "x\ud800y";
const BAD_STRINGS = [
  NUL,
  SURROGATE,
  "",
  " ",
  "x".repeat(5000),
  "💥".repeat(50),
  "'; drop table outbox; --",
  "../..",
];
const BAD_VALUES: unknown[] = [
  null,
  true,
  0,
  -1,
  1.5,
  1e308,
  -1e308,
  2 ** 53 + 1,
  {},
  [],
  "text",
  [null],
  { a: 1 },
];
const BAD_DATES = [
  "2027-02-30T09:00:00Z",
  "2027-04-31T09:00:00Z",
  "2027-01-10T24:00:00Z",
  "tomorrow",
  "2000-01-01T09:00:00Z",
];
const BAD_IDS = ["%00", "a%00b", "..%2F..", "x".repeat(300), "%F0%9F%98%80", "%ED%A0%80", "%25", "a b"];
const BAD_QUERY = ["1.5", "-1", "0", "abc", "99999999999999999999", "%00", "%ED%A0%80", "2027-02-30", ""];

function valueFor(name: string, schema: Schema, r: ReturnType<typeof random>): unknown {
  if (schema.enum) return r.pick(schema.enum);
  if (schema.anyOf) return valueFor(name, r.pick(schema.anyOf), r);
  switch (schema.type) {
    case "string":
      if (/date/i.test(name)) return slotTime(24 + Math.floor(r.next() * 24 * 300));
      if (name === "cardToken") return r.pick(["tok_visa", "tok_declined"]);
      if (schema.pattern) return `fz-${Math.floor(r.next() * 1e9)}`;
      return "fuzz text";
    case "integer":
    case "number": {
      const min = schema.minimum ?? 0;
      const max = Math.min(schema.maximum ?? 1000, min + 1000);
      return Math.floor(min + r.next() * (max - min));
    }
    case "boolean":
      return r.chance(0.5);
    case "array":
      return schema.items ? [valueFor(name, schema.items, r)] : [];
    case "object": {
      const out: Record<string, unknown> = {};
      for (const [key, inner] of Object.entries(schema.properties ?? {})) {
        if (schema.required?.includes(key) || r.chance(0.5)) out[key] = valueFor(key, inner, r);
      }
      return out;
    }
    default:
      return "fuzz";
  }
}

/** The body built from the schema, then broken one way (or left valid, now and then). */
function brokenBody(schema: Schema, r: ReturnType<typeof random>): unknown {
  const body = valueFor("body", schema, r) as Record<string, unknown>;
  const keys = Object.keys(schema.properties ?? {});
  const key = keys.length ? r.pick(keys) : "field";
  switch (
    r.pick(["type", "null", "missing", "extra", "string", "number", "date", "nested", "valid"] as const)
  ) {
    case "type":
      body[key] = r.pick(BAD_VALUES);
      break;
    case "null":
      return r.pick([null, [], "text", 42]);
    case "missing":
      delete body[r.pick(schema.required?.length ? schema.required : [key])];
      break;
    case "extra":
      body[r.pick(["zzz", "__proto__", "constructor", NUL, SURROGATE])] = r.pick(BAD_VALUES);
      break;
    case "string":
      body[key] = r.pick(BAD_STRINGS);
      break;
    case "number":
      body[key] = r.pick([1e308, -1e308, 2 ** 53 + 1, -0.5, 1.5, 1e-300]);
      break;
    case "date":
      body[keys.find((k) => /date/i.test(k)) ?? key] = r.pick(BAD_DATES);
      break;
    case "nested": {
      const array = keys.find((k) => schema.properties?.[k]?.type === "array");
      if (array)
        body[array] = r.pick([
          [{}],
          [null],
          [{ partId: NUL, quantity: -1 }],
          Array(60).fill({ partId: "p", quantity: 1 }),
        ]);
      break;
    }
    case "valid":
      break;
  }
  return body;
}

function operations(doc: Json): Operation[] {
  const ops: Operation[] = [];
  for (const [path, methods] of Object.entries<Json>(doc.paths)) {
    for (const [method, op] of Object.entries<Json>(methods)) {
      if (!["get", "post", "put", "patch", "delete"].includes(method)) continue;
      ops.push({
        method: method.toUpperCase(),
        path,
        params: (op.parameters ?? []).map((p: Json) => ({ name: p.name, in: p.in })),
        body: op.requestBody?.content?.["application/json"]?.schema,
      });
    }
  }
  return ops;
}

test(`${REQUESTS} generated requests from /docs/json: no 5xx, every refusal the JSON error shape, healthy after`, async () => {
  const seed = SEED;
  const r = random(seed);
  const doc = await service.call("GET", "/docs/json");
  expect(doc.status).toBe(200);
  // Readiness and metrics read Kafka (and Postgres): no input to fuzz; and /metrics answers text, as documented.
  const ops = operations(doc.body).filter((o) => o.path !== "/readyz" && o.path !== "/metrics");
  expect(ops.length).toBeGreaterThan(15);

  const failures: string[] = [];
  const statuses = new Map<number, number>();
  let sent = 0;
  const one = async () => {
    const op = r.pick(ops);
    let path = op.path.replace(/\{(\w+)\}/g, () =>
      r.chance(0.5) ? r.pick(BAD_IDS) : `fz-${Math.floor(r.next() * 1e6)}`,
    );
    const query = op.params
      .filter((p) => p.in === "query" && r.chance(0.6))
      .map((p) => `${p.name}=${r.chance(0.6) ? r.pick(BAD_QUERY) : "5"}`);
    if (r.chance(0.05)) query.push(`unknown=${r.pick(BAD_QUERY)}`);
    if (query.length) path += `?${query.join("&")}`;
    const headers: Record<string, string> = {};
    const auth = r.next();
    if (auth > 0.1) headers.authorization = `Bearer ${r.pick(tokens)}`;
    else if (auth > 0.05)
      headers.authorization = `Bearer ${r.pick(["x", "a.b.c", `${r.pick(tokens)}x`, "x".repeat(3000)])}`;
    let raw: string | undefined;
    if (op.method === "POST") {
      headers["content-type"] = "application/json";
      if (r.chance(0.3))
        headers["idempotency-key"] = r.pick([
          `fz-${Math.floor(r.next() * 1e6)}`,
          "%00",
          "x".repeat(300),
          "ok-key",
        ]);
      const shape = r.next();
      if (shape < 0.1) raw = r.pick(['{"a":', "{", "[", "nul", '{"a":1}}', "\u0000", ""]);
      else if (shape < 0.15) {
        headers["content-type"] = r.pick([
          "text/plain",
          "application/x-www-form-urlencoded",
          "application/xml",
        ]);
        raw = "a=1";
      } else if (shape < 0.18) raw = JSON.stringify({ big: "x".repeat(70_000) });
      else raw = JSON.stringify(op.body ? brokenBody(op.body, r) : r.pick(BAD_VALUES));
    }
    let status = 0;
    let text = "";
    try {
      const response = await fetch(`${service.baseUrl}${path}`, { method: op.method, headers, body: raw });
      status = response.status;
      text = await response.text();
    } catch (error) {
      failures.push(`${op.method} ${path}: no answer (${(error as Error).message})`);
      return;
    }
    statuses.set(status, (statuses.get(status) ?? 0) + 1);
    const what = `${op.method} ${path.slice(0, 120)} ${raw?.slice(0, 120) ?? ""} -> ${status} ${text.slice(0, 200)}`;
    if (status >= 500) failures.push(what);
    let body: Json;
    try {
      body = JSON.parse(text);
    } catch {
      failures.push(`not JSON: ${what}`);
      return;
    }
    // Every answer, refusals included, is one its route documents, with the documented body.
    const problem = service.checkAnswer(op.method, path, status, body);
    if (problem) failures.push(`${problem} (request: ${what})`);
    else if (
      status >= 400 &&
      (typeof body?.error?.code !== "string" || typeof body?.error?.message !== "string")
    )
      failures.push(`not the error shape: ${what}`);
  };
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (sent < REQUESTS) {
        sent++;
        await one();
      }
    }),
  );
  console.log(
    `[fuzz] seed ${seed}: ${REQUESTS} requests; statuses ${[...statuses]
      .sort(([a], [b]) => a - b)
      .map(([s, n]) => `${s}:${n}`)
      .join(" ")}; failures ${failures.length}`,
  );
  expect(failures.slice(0, 20)).toEqual([]);
  expect((await service.call("GET", "/healthz")).status).toBe(200);
}, 600_000);

const WS_MESSAGES = 2_000;

/** A generated WebSocket message: mostly broken (types, ids, shapes, encodings), some valid. */
function wsMessage(r: ReturnType<typeof random>, own: string, others: string): string | Uint8Array {
  const shape = r.next();
  if (shape < 0.1)
    return r.pick([
      "{",
      "null",
      "[]",
      "1",
      '"subscribe"',
      "",
      " ",
      "\u0000",
      "{}}",
      "x".repeat(200_000),
      '{"type":"subscribe","__proto__":{"bookingId":"x"}}',
    ]);
  if (shape < 0.13) return new Uint8Array([0, 255, 123, 34]);
  const id = r.pick<unknown>([
    own,
    others,
    `fz-${Math.floor(r.next() * 1e6)}`,
    "",
    "a\u0000b",
    "\ud800",
    "\udfff\ud800",
    "😀",
    "a b",
    "../..",
    "x".repeat(101),
    42,
    null,
    true,
    ["a"],
    { $ne: null },
  ]);
  const message: Record<string, unknown> = {
    type: r.pick<unknown>(["subscribe", "unsubscribe", "subscribe", "SUBSCRIBE", "", null, 1, undefined]),
  };
  const field = r.next();
  if (field < 0.45) message.bookingId = id;
  else if (field < 0.85) message.repairId = id;
  else if (field < 0.92) {
    message.bookingId = id;
    message.repairId = id;
  }
  if (r.chance(0.05)) message.extra = r.pick<unknown>([1, "x", { nested: true }]);
  return JSON.stringify(message);
}

test(`${WS_MESSAGES} generated WebSocket messages: each answered with one frame, never an internal error, the socket stays open`, async () => {
  const seed = SEED;
  const r = random(seed + 1);
  // A customer and slots of its own: the HTTP case above books slots up to 7,224 hours ahead with the shared
  // tokens (a year ahead is the limit).
  const customer = await service.token("customer", `fuzz-ws-${seed}`);
  const booked = await service.call("POST", "/api/v1/bookings", {
    token: customer,
    body: { vehicleId: "car-ws", serviceType: "OIL_CHANGE", bookingDate: slotTime(7300 + (seed % 1400)) },
  });
  expect(booked.status).toBe(201);
  const other = await service.call("POST", "/api/v1/bookings", {
    token: await service.token("customer", `fuzz-other-${seed}`),
    body: { vehicleId: "car-ws", serviceType: "OIL_CHANGE", bookingDate: slotTime(7301 + (seed % 1400)) },
  });
  expect(other.status).toBe(201);
  const sockets = await Promise.all(
    Array.from({ length: 4 }, () => openSocket(`${service.wsUrl}?token=${customer}`)),
  );
  const answers = (frames: Json[]) => frames.filter((f) => f.type !== "status");
  const sent = sockets.map(() => 0);
  for (let i = 0; i < WS_MESSAGES; i++) {
    const n = i % sockets.length;
    sockets[n]?.send(wsMessage(r, booked.body.bookingId, other.body.bookingId));
    sent[n] = (sent[n] ?? 0) + 1;
    if (i % 100 === 99) await Bun.sleep(10); // let the gateway read (it answers each message on its own)
  }
  await waitFor(() => sockets.every((s, n) => answers(s.frames).length >= (sent[n] ?? 0)), {
    timeoutMs: 60_000,
    what: "an answer to every message",
  });
  const kinds = new Map<string, number>();
  for (const [n, s] of sockets.entries()) {
    const got = answers(s.frames);
    expect(got.length).toBe(sent[n] ?? -1);
    for (const frame of got) {
      const kind = frame.type === "error" ? `error:${frame.code}` : String(frame.type);
      kinds.set(kind, (kinds.get(kind) ?? 0) + 1);
    }
  }
  console.log(
    `[ws fuzz] seed ${seed}: ${WS_MESSAGES} messages; answers ${[...kinds].map(([k, v]) => `${k}:${v}`).join(" ")}`,
  );
  // Someone else's booking is never shown: it is refused like a missing one.
  for (const s of sockets) {
    expect(s.frames.some((f) => f.id === other.body.bookingId && f.type === "subscribed")).toBe(false);
  }
  expect(
    [...kinds.keys()].filter(
      (k) => !["subscribed", "unsubscribed", "error:invalid_request", "error:not_found"].includes(k),
    ),
  ).toEqual([]);
  // Every socket still works.
  for (const s of sockets) {
    s.send({ type: "subscribe", bookingId: booked.body.bookingId });
    await s.waitFor(
      (f) => f.type === "subscribed" && f.id === booked.body.bookingId,
      "a valid subscribe after the fuzz",
    );
    s.close();
  }
}, 300_000);
