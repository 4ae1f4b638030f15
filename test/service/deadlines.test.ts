/**
 * Nothing waits forever, through the whole service (guarantee 14): a booking whose slot never answers — every
 * HOLD it sends is dead-lettered — is not left PENDING; it asks again, then is rejected and the customer sees why.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { listDeadLetters } from "../../runtime/index.ts";
import { waitFor } from "../support.ts";
import { type Service, slotTime, startService } from "./fixtures.ts";

let service: Service;
beforeAll(async () => {
  service = await startService({ ACTOR_ANSWER_TIMEOUT_MS: "500", ASK_TIMEOUT_MS: "1000" });
}, 120_000);
afterAll(() => service?.stop(), 60_000);

test("a booking whose slot's answers are all lost asks three times, then is REJECTED with the reason, and the place is given back in case the slot took it late", async () => {
  const customer = await service.token("customer", `cust-${Bun.randomUUIDv7().slice(-8)}`);
  const bookingDate = slotTime(24 + Math.floor(Math.random() * 24 * 300));
  const { refs, sql, db } = service.system.routes;
  const slotId = refs.slotKey("OIL_CHANGE", new Date(bookingDate));
  // A slot whose stored state its handler cannot read: every HOLD fails three times and is dead-lettered.
  await sql`insert into actor_state (kind, actor_key, state, version) values ('slot', ${slotId}, '{"holds": null}'::jsonb, 1)`;
  const booked = await service.call("POST", "/api/v1/bookings", {
    token: customer,
    body: { vehicleId: "car-d", serviceType: "OIL_CHANGE", bookingDate },
  });
  expect(booked.status).toBe(202); // still deciding when the ask timed out
  const bookingId = String(booked.body.statusUrl).split("/").at(-1) as string;
  const rejected = await waitFor(
    async () => {
      const read = await service.call("GET", `/api/v1/bookings/${bookingId}`, { token: customer });
      return read.body?.status === "REJECTED" ? read.body : undefined;
    },
    { timeoutMs: 60_000, intervalMs: 250, what: "the booking rejected" },
  );
  expect(rejected.reason).toBe(`slot ${slotId} did not answer 3 requests`);
  // Each ask was a HOLD of its own, each dead-lettered by the slot; then a RELEASE, in case it took one late.
  const types = await waitFor(
    async () => {
      const letters = await listDeadLetters(db, { consumer: "slot", key: slotId });
      const found = letters.map((l) => JSON.parse(String(l.value)).eventType as string);
      return found.length >= 4 ? found : undefined;
    },
    { timeoutMs: 30_000, intervalMs: 250, what: "the slot's dead letters" },
  );
  expect(types).toEqual(["HOLD", "HOLD", "HOLD", "RELEASE"]);
  // Nothing is left waiting: no timer of the booking pending.
  const [timers] = await sql<{ n: number }[]>`
    select count(*)::int as n from actor_timer where kind = 'booking' and actor_key = ${bookingId}`;
  expect(timers?.n).toBe(0);
}, 90_000);
