/**
 * The edge refuses what the service cannot hold or mean, cleanly (issue 9, items 1-4 and 7): text Postgres
 * cannot store, fractional page sizes, impossible dates, tokens signed with another algorithm. Each answers 422
 * (or 401) with the error shape naming the field, never a 5xx, and leaves nothing behind.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createHmac } from "node:crypto";
import { natsPrefixOf } from "../../actors/index.ts";
import { acquireLease, releaseLease } from "../../runtime/fence.ts";
import { listDeadLetters, partitionOf } from "../../runtime/index.ts";
import { testConfig } from "../support.ts";
import { type Json, openSocket, type Service, slotTime, startService } from "./fixtures.ts";

let service: Service;
let alice: string;
let admin: string;
let aliceBooking: string;
const uid = () => Bun.randomUUIDv7().slice(-8);

beforeAll(async () => {
  service = await startService();
  alice = await service.token("customer", `alice-${uid()}`);
  admin = await service.token("admin", `ops-${uid()}`);
  const booked = await service.call("POST", "/api/v1/bookings", {
    token: alice,
    body: { vehicleId: "car-a", serviceType: "INSPECTION", bookingDate: slotTime(24 * 40) },
  });
  expect(booked.status).toBe(201);
  aliceBooking = booked.body.bookingId;
}, 120_000);
afterAll(() => service?.stop(), 60_000);

function expect422(response: { status: number; body: Json }, field: string) {
  expect({
    status: response.status,
    code: response.body?.error?.code,
    field: response.body?.error?.field,
  }).toEqual({
    status: 422,
    code: "invalid_request",
    field,
  });
  expect(response.body.error.retryable).toBe(false);
}

describe("text the service cannot store", () => {
  // Built at run time: "\u0000" and a lone "\ud800" as JSON escapes, as a client would send them.
  const nul = "a\\u0000b";
  const surrogate = "\\ud800";

  test("a NUL or a lone surrogate in a booking's notes answers 422 naming the field; nothing is created or dead-lettered", async () => {
    const before = (await listDeadLetters(service.system.routes.db, {})).length;
    for (const bad of [nul, surrogate]) {
      const response = await service.call("POST", "/api/v1/bookings", {
        token: alice,
        headers: { "content-type": "application/json" },
        raw: `{"vehicleId":"car-b","serviceType":"INSPECTION","bookingDate":"${slotTime(24 * 41)}","notes":"${bad}"}`,
      });
      expect422(response, "/notes");
    }
    const mine = await service.call("GET", "/api/v1/bookings", { token: alice });
    expect(mine.body.map((b: Json) => b.vehicleId)).not.toContain("car-b");
    expect((await listDeadLetters(service.system.routes.db, {})).length).toBe(before);
  });

  test("the same in a cancellation's reason, a query value and an object key", async () => {
    const cancel = await service.call("POST", `/api/v1/bookings/${aliceBooking}/cancel`, {
      token: alice,
      headers: { "content-type": "application/json" },
      raw: `{"reason":"x${nul}y"}`,
    });
    expect422(cancel, "/reason");
    const query = await service.call("GET", "/api/v1/ops/dead-letters?key=a%00b", { token: admin });
    expect422(query, "/query/key");
    const key = await service.call("POST", "/api/v1/bookings", {
      token: alice,
      headers: { "content-type": "application/json" },
      raw: `{"vehicleId":"car-c","serviceType":"INSPECTION","bookingDate":"${slotTime(24 * 42)}","${surrogate}":1}`,
    });
    expect(key.status).toBe(422);
    // The booking is still there and still confirmed: the refused cancel changed nothing.
    const booking = await service.call("GET", `/api/v1/bookings/${aliceBooking}`, { token: alice });
    expect(booking.body.status).toBe("CONFIRMED");
  });

  test("a WebSocket subscribe with a NUL in its id gets an invalid_request frame, and the socket goes on", async () => {
    const socket = await openSocket(`${service.wsUrl}?token=${alice}`);
    socket.send(`{"type":"subscribe","bookingId":"x${nul}"}`);
    socket.send(`{"type":"subscribe","repairId":"${surrogate}"}`);
    socket.send({ type: "subscribe", bookingId: aliceBooking });
    await socket.waitFor((f) => f.type === "subscribed", "the good subscription after the bad ones");
    const errors = socket.frames.filter((f) => f.type === "error");
    expect(errors.map((e) => e.code)).toEqual(["invalid_request", "invalid_request"]);
    socket.close();
  });
});

describe("query values", () => {
  test("limit must be a whole number in range on every list: 422 naming it", async () => {
    const lists: [string, string][] = [
      ["/api/v1/bookings", alice],
      ["/api/v1/repairs", alice],
      ["/api/v1/invoices", alice],
      ["/api/v1/ops/dead-letters", admin],
    ];
    for (const [path, token] of lists) {
      for (const bad of ["1.5", "0", "-3", "abc", "100000", "1e400"]) {
        const response = await service.call("GET", `${path}?limit=${bad}`, { token });
        expect422(response, "/limit");
      }
      expect((await service.call("GET", `${path}?limit=2`, { token })).status).toBe(200);
    }
  });
});

describe("dates", () => {
  test("impossible calendar dates and 24:00 are refused, not moved to another day", async () => {
    for (const bookingDate of [
      "2027-02-30T09:00:00Z",
      "2027-04-31T09:00:00Z",
      "2027-06-31T09:00:00Z",
      "2027-02-29T09:00:00Z", // 2027 is not a leap year
      "2027-01-10T24:00:00Z",
      "2027-01-10T09:60:00Z",
      "2027-01-10T09:00:00+24:00",
    ]) {
      const response = await service.call("POST", "/api/v1/bookings", {
        token: alice,
        body: { vehicleId: "car-d", serviceType: "INSPECTION", bookingDate },
      });
      expect422(response, "/bookingDate");
    }
  });
});

describe("tokens", () => {
  const secret = testConfig().auth.jwtSecret;
  const part = (o: unknown) => Buffer.from(JSON.stringify(o)).toString("base64url");
  const now = () => Math.floor(Date.now() / 1000);
  const signed = (alg: "HS256" | "HS384" | "HS512") => {
    const head = `${part({ alg, typ: "JWT" })}.${part({ sub: `mallory-${uid()}`, role: "admin", exp: Math.floor(Date.now() / 1000) + 600 })}`;
    const hash = { HS256: "sha256", HS384: "sha384", HS512: "sha512" }[alg];
    return `${head}.${createHmac(hash, secret).update(head).digest("base64url")}`;
  };
  /** A JWT of this header and payload, signed HS256 with `key` (the service's secret unless told). */
  const jwtOf = (header: unknown, payload: unknown, key = secret) => {
    const head = `${part(header)}.${part(payload)}`;
    return `${head}.${createHmac("sha256", key).update(head).digest("base64url")}`;
  };
  const HS = { alg: "HS256", typ: "JWT" };
  const claims = (extra: Record<string, unknown> = {}) => ({
    sub: `mallory-${uid()}`,
    role: "customer",
    exp: now() + 600,
    ...extra,
  });

  test("tampered, forged, expired and malformed tokens answer 401 with the error shape, on HTTP and the WebSocket upgrade", async () => {
    const good = jwtOf(HS, claims());
    const [goodHead, goodBody, goodSig] = good.split(".") as [string, string, string];
    const other = jwtOf(HS, claims({ role: "admin" })).split(".");
    const classes: Record<string, string> = {
      "alg none, no signature": `${part({ alg: "none", typ: "JWT" })}.${goodBody}.`,
      "alg none with the signature kept": `${part({ alg: "none" })}.${goodBody}.${goodSig}`,
      "alg NONE": `${part({ alg: "NONE" })}.${goodBody}.`,
      "alg hs256 (lower case)": jwtOf({ alg: "hs256" }, claims()),
      "alg RS256 keyed with the secret": jwtOf({ alg: "RS256" }, claims()),
      "no alg": jwtOf({ typ: "JWT" }, claims()),
      "a critical header it does not know": jwtOf({ ...HS, crit: ["x-pitstop"], "x-pitstop": 1 }, claims()),
      "signed with another secret": jwtOf(HS, claims(), `${secret}-not`),
      "signed with an empty secret": jwtOf(HS, claims(), ""),
      expired: jwtOf(HS, claims({ exp: now() - 60 })),
      "not valid yet (nbf)": jwtOf(HS, claims({ nbf: now() + 3600 })),
      "no exp (it would never expire)": jwtOf(HS, { sub: `mallory-${uid()}`, role: "customer" }),
      "exp as a string": jwtOf(HS, claims({ exp: String(now() + 600) })),
      "role changed after signing": `${goodHead}.${part(claims({ role: "admin" }))}.${goodSig}`,
      "another token's signature": `${goodHead}.${goodBody}.${other[2]}`,
      "signature cut short": good.slice(0, -2),
      "signature empty": `${goodHead}.${goodBody}.`,
      // (Not a class: the valid signature with base64 padding added is the same signature, not a forgery — and
      // when it has no '+' or '/' the library reads it as the valid one; a fresh clone's run caught that.)
      "an unknown role": jwtOf(HS, claims({ role: "root" })),
      "no role": jwtOf(HS, { sub: `mallory-${uid()}`, exp: now() + 600 }),
      "roles as a list": jwtOf(HS, claims({ role: ["admin"] })),
      "no sub": jwtOf(HS, { role: "customer", exp: now() + 600 }),
      "sub a number": jwtOf(HS, claims({ sub: 42 })),
      "sub with a space": jwtOf(HS, claims({ sub: "a b" })),
      "sub with a NUL": jwtOf(HS, claims({ sub: "a\u0000b" })),
      "sub of 101 characters": jwtOf(HS, claims({ sub: "a".repeat(101) })),
      "payload not JSON": `${goodHead}.${Buffer.from("{not json").toString("base64url")}.${goodSig}`,
      "payload a JSON array": jwtOf(HS, ["customer"]),
      "payload a JSON string": jwtOf(HS, "customer"),
      "header not JSON": `${Buffer.from("{").toString("base64url")}.${goodBody}.${goodSig}`,
      "two parts": `${goodHead}.${goodBody}`,
      "four parts": `${good}.${goodSig}`,
      "empty parts": "..",
      "not base64url": `${goodHead}.${goodBody}!.${goodSig}`,
      "a single word": "customer",
    };
    for (const [what, token] of Object.entries(classes)) {
      const response = await service.call("GET", "/api/v1/bookings", { token });
      expect({ what, status: response.status, code: response.body?.error?.code }).toEqual({
        what,
        status: 401,
        code: "unauthorized",
      });
      await expect(openSocket(`${service.wsUrl}?token=${encodeURIComponent(token)}`)).rejects.toThrow();
    }
    // Headers that carry no bearer token at all.
    for (const authorization of [
      "Basic dXNlcjpwYXNz",
      "Bearer",
      "Bearer  ",
      `Token ${good}`,
      `Bearer ${good} ${good}`,
    ]) {
      const response = await service.call("GET", "/api/v1/bookings", { headers: { authorization } });
      expect({ authorization, status: response.status }).toEqual({ authorization, status: 401 });
    }
    // The untampered one is served (the refusals above are about the tampering, not the route).
    expect((await service.call("GET", "/api/v1/bookings", { token: good })).status).toBe(200);
  });

  test("only HS256 is accepted: HS384 and HS512 signed with the secret answer 401, on HTTP and on the WebSocket upgrade", async () => {
    expect((await service.call("GET", "/api/v1/ops/dead-letters", { token: signed("HS256") })).status).toBe(
      200,
    );
    for (const alg of ["HS384", "HS512"] as const) {
      const response = await service.call("GET", "/api/v1/ops/dead-letters", { token: signed(alg) });
      expect(response.status).toBe(401);
      expect(response.body.error.code).toBe("unauthorized");
      await expect(openSocket(`${service.wsUrl}?token=${signed(alg)}`)).rejects.toThrow();
    }
  });
});

describe("retried creates", () => {
  test("a create retried with its key while the slot has not answered is 202 (still deciding), never 201; once confirmed, 201 for good", async () => {
    const customer = await service.token("customer", `cust-${Bun.randomUUIDv7().slice(-8)}`);
    const bookingDate = slotTime(24 + Math.floor(Math.random() * 7000));
    // The slot does not answer for now: a stale member holds its partition's lease, so the slot's turns are fenced.
    const { refs, db } = service.system.routes;
    const slot = refs.slot(refs.slotKey("OIL_CHANGE", new Date(bookingDate)));
    const lease = {
      groupId: `${natsPrefixOf(service.namespace)}.actor.slot`,
      topic: slot.mailbox,
      partition: partitionOf(slot.key, 3),
    };
    const stale = await acquireLease(db, lease, "stale-member");
    const key = `retry-${Bun.randomUUIDv7()}`;
    const create = () =>
      service.call("POST", "/api/v1/bookings", {
        token: customer,
        headers: { "idempotency-key": key },
        body: { vehicleId: "car-retry", serviceType: "OIL_CHANGE", bookingDate },
      });
    // The first answer: the booking waits for its slot, the route for the booking, until the ask times out: 202.
    expect((await create()).status).toBe(202);
    const retried = await create(); // the actor answers at once with the booking as it stands: PENDING
    expect(retried.status).toBe(202); // the booking is PENDING: not confirmed, so not 201
    expect(retried.body.bookingId).toMatch(/^[0-9a-f-]{36}$/);
    expect(retried.body.statusUrl).toBe(`/api/v1/bookings/${retried.body.bookingId}`);

    await releaseLease(db, stale); // the slot's owner takes its partition back and answers the HOLD
    let answer = retried;
    const deadline = Date.now() + 30_000;
    while (answer.status !== 201 && Date.now() < deadline) {
      await Bun.sleep(200);
      answer = await create();
    }
    expect(answer.status).toBe(201);
    expect(answer.body.status).toBe("CONFIRMED");
    const replay = await create();
    expect(replay.status).toBe(201);
    expect(replay.headers.get("idempotent-replayed")).toBe("true");
  }, 90_000);
});
