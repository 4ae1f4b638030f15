import { afterAll, beforeAll, expect, test } from "bun:test";
import { type Service, slotTime, startService } from "./fixtures.ts";

let service: Service;
beforeAll(async () => {
  // Routes wait 1 ms for an actor's answer: every command answers 202 before the actor has decided.
  service = await startService({ ASK_TIMEOUT_MS: "1" });
}, 120_000);
afterAll(() => service?.stop(), 60_000);

test("a command not answered in time degrades to 202 with a status URL, where the outcome then shows", async () => {
  const customer = await service.token("customer", `cust-${Bun.randomUUIDv7().slice(-8)}`);
  const accepted = await service.call("POST", "/api/v1/bookings", {
    token: customer,
    body: {
      vehicleId: "car-slow",
      serviceType: "OIL_CHANGE",
      bookingDate: slotTime(24 + Math.floor(Math.random() * 7000)),
    },
  });
  expect(accepted.status).toBe(202);
  expect(accepted.body.status).toBe("accepted");
  const statusUrl: string = accepted.body.statusUrl;
  expect(statusUrl).toMatch(/^\/api\/v1\/bookings\/[0-9a-f-]{36}$/);
  expect(accepted.headers.get("location")).toBe(statusUrl);
  const deadline = Date.now() + 30_000;
  let outcome: { status: number; body: { status?: string } } | undefined;
  while (Date.now() < deadline) {
    outcome = await service.call("GET", statusUrl, { token: customer });
    if (outcome.status === 200 && outcome.body.status === "CONFIRMED") break;
    await Bun.sleep(50);
  }
  expect(outcome?.status).toBe(200);
  expect(outcome?.body.status).toBe("CONFIRMED");
}, 60_000);
