import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { type Json, openSocket, type Service, slotTime, startService } from "./fixtures.ts";

let service: Service;
let alice: string;
let bob: string;
let technician: string;
let admin: string;
/** Alice's booking and repair, which Bob must not see. */
let aliceBooking: string;
let aliceRepair: string;

const uid = () => Bun.randomUUIDv7().slice(-8);
const future = () => slotTime(24 + Math.floor(Math.random() * 24 * 300));

beforeAll(async () => {
  service = await startService();
  alice = await service.token("customer", `alice-${uid()}`);
  bob = await service.token("customer", `bob-${uid()}`);
  technician = await service.token("technician", `tech-${uid()}`);
  admin = await service.token("admin", `ops-${uid()}`);
  const booked = await service.call("POST", "/api/v1/bookings", {
    token: alice,
    body: { vehicleId: "car-a", serviceType: "INSPECTION", bookingDate: future() },
  });
  aliceBooking = booked.body.bookingId;
  const started = await service.call("POST", "/api/v1/repairs/start", {
    token: technician,
    body: { bookingId: aliceBooking, estimatedTime: 30 },
  });
  aliceRepair = started.body.repairId;
}, 120_000);
afterAll(() => service?.stop(), 60_000);

/** Every 4xx carries a code and a message; nothing here may be a 5xx. */
function expectClientError(response: { status: number; body: Json }, status: number, field?: string) {
  expect({ status: response.status, body: response.body }).toMatchObject({ status });
  expect(typeof response.body.error.code).toBe("string");
  expect(response.body.error.message.length).toBeGreaterThan(0);
  if (field) expect(response.body.error.field).toBe(field);
}

describe("authentication and roles", () => {
  const protectedRoutes: [string, string][] = [
    ["POST", "/api/v1/bookings"],
    ["GET", "/api/v1/bookings"],
    ["GET", "/api/v1/bookings/x"],
    ["POST", "/api/v1/repairs/start"],
    ["POST", "/api/v1/payments"],
    ["GET", "/api/v1/invoices/x"],
    ["GET", "/api/v1/jobs/x"],
    ["GET", "/api/v1/analytics/daily"],
    ["GET", "/api/v1/parts"],
    ["GET", "/api/v1/ops/dead-letters"],
  ];

  test("no token, or a bad one, answers 401 on every route", async () => {
    const forged = `${alice.slice(0, -4)}AAAA`;
    const other = await service.token("customer", "x");
    const expired = other.replace(
      /\.[^.]+\./,
      `.${Buffer.from(JSON.stringify({ sub: "x", role: "customer", exp: 1 })).toString("base64url")}.`,
    );
    for (const [method, path] of protectedRoutes) {
      for (const token of [undefined, "garbage", forged, expired]) {
        const response = await service.call(method, path, {
          token,
          body: method === "POST" ? {} : undefined,
        });
        expectClientError(response, 401);
        expect(response.headers.get("www-authenticate")).toContain("Bearer");
      }
    }
    const wrongRole = await service.call("GET", "/api/v1/bookings", {
      headers: {
        authorization: `Bearer ${await service.system.routes.tokens.sign({ sub: "x", role: "customer" })}`,
      },
    });
    expect(wrongRole.status).toBe(200);
  });

  test("the wrong role answers 403", async () => {
    const cases: [string, string, string, unknown][] = [
      [
        technician,
        "POST",
        "/api/v1/bookings",
        { vehicleId: "v", serviceType: "INSPECTION", bookingDate: future() },
      ],
      [alice, "POST", "/api/v1/repairs/start", { bookingId: aliceBooking, estimatedTime: 10 }],
      [alice, "POST", `/api/v1/repairs/${aliceRepair}/progress`, { status: "DIAGNOSING", progress: 5 }],
      [alice, "GET", "/api/v1/ops/dead-letters", undefined],
      [technician, "POST", "/api/v1/ops/dead-letters/replay", { ids: [1] }],
      [technician, "GET", "/api/v1/analytics/daily", undefined],
      [alice, "GET", "/api/v1/parts", undefined],
      [technician, "POST", "/api/v1/payments", { invoiceId: "x", cardToken: "tok_visa" }],
    ];
    for (const [token, method, path, body] of cases) {
      expectClientError(await service.call(method, path, { token, body }), 403);
    }
    // A customer books only for themselves.
    expectClientError(
      await service.call("POST", "/api/v1/bookings", {
        token: alice,
        body: {
          customerId: "someone-else",
          vehicleId: "v",
          serviceType: "INSPECTION",
          bookingDate: future(),
        },
      }),
      403,
    );
  });
});

describe("another customer's ids", () => {
  test("answer 404, as if they did not exist, on reads, commands and subscriptions", async () => {
    for (const [method, path, body] of [
      ["GET", `/api/v1/bookings/${aliceBooking}`, undefined],
      ["GET", `/api/v1/repairs/${aliceRepair}`, undefined],
      ["GET", `/api/v1/repairs/${aliceRepair}/status`, undefined],
      ["GET", `/api/v1/jobs/${aliceBooking}`, undefined],
      ["POST", `/api/v1/bookings/${aliceBooking}/cancel`, {}],
      ["POST", `/api/v1/bookings/${aliceBooking}/reschedule`, { bookingDate: future() }],
    ] as const) {
      expectClientError(await service.call(method, path, { token: bob, body }), 404);
    }
    const list = await service.call("GET", "/api/v1/bookings", { token: bob });
    expect(list.status).toBe(200);
    expect(list.body).toEqual([]);
    const mine = await service.call("GET", `/api/v1/bookings/${aliceBooking}`, { token: alice });
    expect(mine.status).toBe(200);
    const socket = await openSocket(`${service.wsUrl}?token=${bob}`);
    socket.send({ type: "subscribe", bookingId: aliceBooking });
    const refused = await socket.waitFor((f) => f.type === "error", "the refusal");
    expect(refused.code).toBe("not_found");
    socket.close();
  });

  test("a WebSocket without a valid token is refused before it opens", async () => {
    const response = await fetch(`${service.baseUrl}/ws?token=garbage`, {
      headers: {
        upgrade: "websocket",
        connection: "Upgrade",
        "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
        "sec-websocket-version": "13",
      },
    });
    expect(response.status).toBe(401);
  });
});

describe("bad input never gets a 5xx", () => {
  const good = () => ({ vehicleId: "car-1", serviceType: "OIL_CHANGE", bookingDate: future() });

  test("bookings: missing fields, wrong types, unknown fields, bad and past dates, huge and broken bodies", async () => {
    const post = (body: unknown, raw?: string, headers?: Record<string, string>) =>
      service.call("POST", "/api/v1/bookings", { token: alice, body, raw, headers });
    expectClientError(await post({}), 422);
    const { vehicleId: _v, ...noVehicle } = good();
    expectClientError(await post(noVehicle), 422, "/vehicleId");
    expectClientError(await post({ ...good(), vehicleId: 42 }), 422, "/vehicleId");
    expectClientError(await post({ ...good(), serviceType: "TELEPORT" }), 422, "/serviceType");
    expectClientError(await post({ ...good(), isAdmin: true }), 422);
    expectClientError(await post({ ...good(), bookingDate: "next tuesday" }), 422, "/bookingDate");
    expectClientError(await post({ ...good(), bookingDate: "2026-02-30T10:00:00Z" }), 422, "/bookingDate");
    expectClientError(await post({ ...good(), bookingDate: "2020-01-01T10:00:00Z" }), 422, "/bookingDate");
    expectClientError(await post({ ...good(), bookingDate: "2999-01-01T10:00:00Z" }), 422, "/bookingDate");
    expectClientError(await post({ ...good(), notes: "x".repeat(100_000) }), 413);
    expectClientError(await post(undefined, "{not json", { "content-type": "application/json" }), 400);
    expectClientError(
      await post(good(), undefined, { "idempotency-key": "k".repeat(300) }),
      422,
      "Idempotency-Key",
    );
  });

  test("repairs: bad stages and percentages, unknown parts, illegal transitions with a reason", async () => {
    const tech = (path: string, body: unknown) => service.call("POST", path, { token: technician, body });
    expectClientError(
      await tech("/api/v1/repairs/start", { bookingId: aliceBooking }),
      422,
      "/estimatedTime",
    );
    expectClientError(
      await tech("/api/v1/repairs/start", { bookingId: aliceBooking, estimatedTime: "90" }),
      422,
    );
    expectClientError(await tech("/api/v1/repairs/start", { bookingId: "nope", estimatedTime: 10 }), 404);
    const progress = `/api/v1/repairs/${aliceRepair}/progress`;
    expectClientError(await tech(progress, { status: "FLYING", progress: 10 }), 422, "/status");
    expectClientError(await tech(progress, { status: "REPAIRING", progress: 150 }), 422, "/progress");
    expect((await tech(progress, { status: "REPAIRING", progress: 50 })).status).toBe(200);
    const back = await tech(progress, { status: "DIAGNOSING", progress: 60 });
    expectClientError(back, 409);
    expect(back.body.error).toMatchObject({
      code: "invalid_transition",
      message: "a repair cannot go back from REPAIRING to DIAGNOSING",
    });
    const down = await tech(progress, { status: "REPAIRING", progress: 40 });
    expect(down.body.error.message).toBe("progress cannot go down within REPAIRING (50% -> 40%)");
    const early = await tech(`/api/v1/repairs/${aliceRepair}/complete`, { parts: [], labourMinutes: 10 });
    expectClientError(early, 409);
    expect(early.body.error.message).toBe("a repair completes after TESTING; it is REPAIRING");
    expectClientError(
      await tech(`/api/v1/repairs/${aliceRepair}/complete`, {
        parts: [{ partId: "NO-SUCH", quantity: 1 }],
        labourMinutes: 5,
      }),
      422,
      "/parts/0/partId",
    );
    expectClientError(
      await tech(`/api/v1/repairs/${aliceRepair}/complete`, { parts: "all", labourMinutes: 5 }),
      422,
    );
    const second = await tech("/api/v1/repairs/start", { bookingId: aliceBooking, estimatedTime: 10 });
    expectClientError(second, 409);
    expect(second.body.error.message).toMatch(/has already started/);
  });

  test("payments, operations and queries", async () => {
    expectClientError(
      await service.call("POST", "/api/v1/payments", {
        token: alice,
        body: { invoiceId: "x", cardToken: "4111111111111111" },
      }),
      422,
      "/cardToken",
    );
    expectClientError(
      await service.call("POST", "/api/v1/payments", { token: alice, body: { cardToken: "tok_visa" } }),
      422,
    );
    expectClientError(
      await service.call("POST", "/api/v1/payments", {
        token: alice,
        body: { invoiceId: "no-such", cardToken: "tok_visa" },
      }),
      404,
    );
    expectClientError(
      await service.call("POST", "/api/v1/ops/dead-letters/replay", { token: admin, body: {} }),
      422,
    );
    expectClientError(
      await service.call("GET", "/api/v1/analytics/daily?date=yesterday", { token: admin }),
      422,
    );
    expectClientError(await service.call("GET", "/api/v1/bookings?limit=0", { token: alice }), 422);
    expectClientError(await service.call("GET", "/api/v1/no-such-route", { token: alice }), 404);
    const docs = await service.call("GET", "/docs/json");
    expect(docs.status).toBe(200);
    // The seed's paths, without a trailing slash (a generated client calls exactly these).
    const paths = Object.keys(docs.body.paths);
    expect(paths).toContain("/api/v1/bookings");
    expect(paths).toContain("/api/v1/repairs");
    expect(paths.filter((p) => p.endsWith("/"))).toEqual([]);
  });
});

describe("operations", () => {
  test("admins list and replay dead letters over HTTP; technicians read parts stock", async () => {
    // A command the booking actor cannot decode (its payload is off-schema) is dead-lettered.
    const { createKafka, encodeEnvelope, newEnvelope } = await import("../../topics/index.ts");
    const key = `poison-${uid()}`;
    const kafka = createKafka({ brokers: ["127.0.0.1:9092"], clientId: "edge-poison" });
    const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
    await producer.connect();
    await producer.send({
      topic: `${service.namespace}.booking-mailbox`,
      acks: -1,
      messages: [
        {
          key,
          value: encodeEnvelope(newEnvelope({ eventType: "CREATE", entityId: key, payload: { nope: 1 } })),
        },
      ],
    });
    await producer.disconnect();
    const list = async () =>
      (await service.call("GET", `/api/v1/ops/dead-letters?consumer=booking&key=${key}`, { token: admin }))
        .body;
    let letters: Json[] = [];
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline && letters.length === 0) {
      letters = await list();
      if (letters.length === 0) await Bun.sleep(100);
    }
    expect(letters).toHaveLength(1);
    expect(letters[0]).toMatchObject({
      consumer: "booking",
      messageKey: key,
      status: "dead",
      errorClass: "DecodeError",
    });
    expect(letters[0].errorMessage).toContain("CREATE payload is invalid");
    const replay = await service.call("POST", "/api/v1/ops/dead-letters/replay", {
      token: admin,
      body: { ids: [letters[0].id] },
    });
    expect(replay.status).toBe(200);
    expect(replay.body).toEqual({ replayed: [letters[0].id] });
    // Replayed, it fails again (still off-schema) and comes back as a new dead letter.
    const replayDeadline = Date.now() + 30_000;
    while (Date.now() < replayDeadline && letters.length < 2) {
      letters = await list();
      if (letters.length < 2) await Bun.sleep(100);
    }
    expect(letters.map((l: Json) => l.status)).toEqual(["replayed", "dead"]);

    const parts = await service.call("GET", "/api/v1/parts", { token: technician });
    expect(parts.status).toBe(200);
    expect(parts.body.find((p: Json) => p.partId === "OIL-5W30-4L")).toMatchObject({
      name: "Engine oil 5W-30, 4 L",
      unitPrice: 120_000,
      lowStockThreshold: 20,
    });
  }, 60_000);
});

describe("WebSocket messages", () => {
  test("bad messages get an error frame each, and the connection keeps working", async () => {
    const socket = await openSocket(`${service.wsUrl}?token=${alice}`);
    const bad = ["garbage", "{}", '{"type":"dance","bookingId":"x"}', JSON.stringify({ type: "subscribe" })];
    for (const message of bad) socket.send(message);
    socket.send({ type: "subscribe", bookingId: "b".repeat(500) });
    socket.send({ type: "subscribe", bookingId: aliceBooking });
    await socket.waitFor((f) => f.type === "subscribed", "the good subscription after the bad ones");
    const errors = socket.frames.filter((f) => f.type === "error");
    expect(errors).toHaveLength(5);
    for (const error of errors) {
      expect(error.code).toBe("invalid_request");
      expect(typeof error.message).toBe("string");
    }
    // Nothing but our frames: no framework dumps, no stray values.
    expect(socket.frames.every((f) => f && typeof f === "object" && typeof f.type === "string")).toBe(true);
    socket.close();
  });
});
