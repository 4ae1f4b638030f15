/**
 * Unrestricted resource consumption (OWASP API4, issue 9): each token has a request budget a minute, shared by
 * every HTTP process through Redis; beyond it, 429 with Retry-After and the error shape. Other tokens go on.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { type Service, slotTime, startService } from "./fixtures.ts";

let service: Service;
beforeAll(async () => {
  service = await startService({ RATE_LIMIT_PER_MINUTE: "30", MAX_OPEN_BOOKINGS: "2" });
}, 120_000);
afterAll(() => service?.stop(), 60_000);

test("a token past its 30 requests a minute gets 429 with Retry-After; another token is served", async () => {
  const uid = Bun.randomUUIDv7().slice(-8);
  const greedy = await service.token("customer", `greedy-${uid}`);
  const other = await service.token("customer", `other-${uid}`);
  // 70 requests: however a minute boundary splits them, one minute holds more than 30.
  const answers = [];
  for (let i = 0; i < 70; i++) answers.push(await service.call("GET", "/api/v1/bookings", { token: greedy }));
  const limited = answers.filter((a) => a.status === 429);
  expect(limited.length).toBeGreaterThan(0);
  expect(answers.filter((a) => a.status === 200).length).toBeLessThanOrEqual(60);
  for (const a of limited) {
    expect(a.body.error).toMatchObject({ code: "rate_limited", retryable: true });
    const retryAfter = Number(a.headers.get("retry-after"));
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(retryAfter).toBeLessThanOrEqual(60);
  }
  expect((await service.call("GET", "/api/v1/bookings", { token: other })).status).toBe(200);
});

test("a customer with 2 open bookings (the cap here) cannot open a third until one is finished or cancelled", async () => {
  const token = await service.token("customer", `hoarder-${Bun.randomUUIDv7().slice(-8)}`);
  const book = (hours: number) =>
    service.call("POST", "/api/v1/bookings", {
      token,
      body: { vehicleId: "car-h", serviceType: "INSPECTION", bookingDate: slotTime(24 * 50 + hours) },
    });
  const first = await book(1);
  expect(first.status).toBe(201);
  expect((await book(2)).status).toBe(201);
  const third = await book(3);
  expect(third.status).toBe(409);
  expect(third.body.error).toMatchObject({ code: "too_many_open_bookings", retryable: false });
  const cancelled = await service.call("POST", `/api/v1/bookings/${first.body.bookingId}/cancel`, {
    token,
    body: { reason: "changed my mind" },
  });
  expect(cancelled.status).toBe(200);
  expect((await book(4)).status).toBe(201);
});
