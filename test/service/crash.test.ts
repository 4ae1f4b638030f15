import { afterAll, expect, test } from "bun:test";
import postgres from "postgres";
import { DEV_JWT_SECRET } from "../../config.ts";
import { createTokens } from "../../http/index.ts";
import { closedPort, waitFor } from "../support.ts";
import { slotTime } from "./fixtures.ts";
import { serviceProcesses } from "./service-process.ts";

const service = serviceProcesses();
const { namespace } = service;
const sql = postgres(service.config.postgres.url, { max: 2, onnotice: () => {} });

afterAll(async () => {
  await service.stop();
  await sql.end();
}, 60_000);

test("the service SIGKILLed while bookings are in flight, restarted, clients retrying with their keys: each booking exactly once, every effect once", async () => {
  const port = await closedPort();
  const tokens = createTokens(DEV_JWT_SECRET, 3600);
  const COUNT = 60;
  const customers = Array.from({ length: COUNT }, (_, i) => `crash-${namespace}-${i}`);
  const jobs = await Promise.all(
    customers.map(async (sub, i) => ({
      token: await tokens.sign({ sub, role: "customer" }),
      key: `book-${i}`,
      body: {
        vehicleId: `car-${i}`,
        serviceType: "OIL_CHANGE",
        bookingDate: slotTime(24 + Math.floor(Math.random() * 24 * 300) + i),
      },
    })),
  );
  const book = (job: (typeof jobs)[number]) =>
    fetch(`http://127.0.0.1:${port}/api/v1/bookings`, {
      method: "POST",
      headers: {
        authorization: `Bearer ${job.token}`,
        "content-type": "application/json",
        "idempotency-key": job.key,
      },
      body: JSON.stringify(job.body),
    }).then(
      async (r) => ({ status: r.status, body: (await r.json()) as { bookingId?: string; status?: string } }),
      () => ({ status: 0, body: {} as { bookingId?: string; status?: string } }), // the connection died with the process
    );

  const first = await service.start(port);
  // A warm-up booking first, so the ones below find a warm pipeline and some are done when the process dies.
  const warm = await book({ ...(jobs[0] as (typeof jobs)[number]), key: "warm-up" });
  expect(warm.status).toBe(201);
  let answered = 0;
  const inFlight = Promise.all(jobs.slice(1).map((job) => book(job).finally(() => answered++)));
  // Killed once a few are answered: some requests are done, others mid-way (sent, turns committing).
  await waitFor(() => answered >= 3, { timeoutMs: 30_000, intervalMs: 1, what: "the first answers" });
  first.kill("SIGKILL");
  await first.exited;
  const beforeCrash = [warm, ...(await inFlight)];
  const interrupted = beforeCrash.filter((a) => a.status !== 201).length;
  console.log(
    `[crash] ${COUNT - interrupted} of ${COUNT} bookings answered before the kill, ${interrupted} interrupted`,
  );
  expect(interrupted).toBeGreaterThan(0); // the kill did cut requests off

  await service.start(port);
  // Clients retry what did not get a 201, with the same Idempotency-Key, until it does.
  const answers = [...beforeCrash];
  const keyed = [{ ...(jobs[0] as (typeof jobs)[number]), key: "warm-up" }, ...jobs.slice(1)];
  await waitFor(
    async () => {
      for (const [i, job] of keyed.entries()) {
        if (answers[i]?.status !== 201) answers[i] = await book(job);
      }
      return answers.every((a) => a.status === 201);
    },
    { timeoutMs: 90_000, intervalMs: 500, what: "every booking answered 201 after the restart" },
  );
  const ids = answers.map((a) => a.body.bookingId as string);
  expect(new Set(ids).size).toBe(COUNT);

  // Exactly one booking per customer, confirmed; each slot holds it once.
  const bookings = await sql<{ customer: string; n: number }[]>`
    select state->>'customerId' as customer, count(*)::int as n from actor_state
    where kind = 'booking' and state->>'customerId' = any(${customers}::text[]) group by 1`;
  expect(bookings.length).toBe(COUNT);
  expect(bookings.every((b) => b.n === 1)).toBe(true);
  // Every effect of BOOKING_CREATED once: 3 notifications per booking (email, SMS, push), one audit row each.
  await waitFor(
    async () => {
      const [row] = await sql<{ n: number }[]>`
        select count(*)::int as n from notification
        where customer_id = any(${customers}::text[]) and template = 'booking-confirmed'`;
      return row?.n === 3 * COUNT;
    },
    { timeoutMs: 60_000, what: "3 booking-confirmed notifications a booking" },
  );
  const [audits] = await sql<{ n: number; distinct_events: number }[]>`
    select count(*)::int as n, count(distinct event_id)::int as distinct_events from audit_log
    where event_type = 'BOOKING_CREATED' and topic = ${`${namespace}.booking-events`}`;
  expect(audits?.n).toBe(audits?.distinct_events);
  const [created] = await sql<{ n: number }[]>`
    select count(distinct (payload->>'bookingId'))::int as n from audit_log
    where event_type = 'BOOKING_CREATED' and topic = ${`${namespace}.booking-events`}`;
  expect(created?.n).toBe(COUNT);
  const holds = await sql<{ holds: Record<string, unknown> }[]>`
    select state->'holds' as holds from actor_state where kind = 'slot' and actor_key like ${`${namespace}/%`}`;
  const held = holds.flatMap((h) => Object.keys(h.holds));
  expect(held.sort()).toEqual([...ids].sort());
}, 240_000);
