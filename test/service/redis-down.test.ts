import { afterAll, beforeAll, expect, test } from "bun:test";
import { dailyFigures } from "../../actors/reactors/analytics.ts";
import { tcpProxy, waitFor } from "../support.ts";
import { type Service, slotTime, startService } from "./fixtures.ts";

let service: Service;
let proxy: Awaited<ReturnType<typeof tcpProxy>>;
beforeAll(async () => {
  // This service reaches Redis through a proxy the test can cut.
  proxy = await tcpProxy({ host: "127.0.0.1", port: 6379 });
  service = await startService({ REDIS_URL: `redis://127.0.0.1:${proxy.port}/1` });
}, 120_000);
afterAll(async () => {
  await service?.stop();
  await proxy?.close();
}, 60_000);

test("with Redis down, reads fall back to Postgres and commands still work; the cache converges when it is back", async () => {
  const customer = await service.token("customer", `cust-${Bun.randomUUIDv7().slice(-8)}`);
  const bookingDate = slotTime(24 + Math.floor(Math.random() * 24 * 300));
  const booked = await service.call("POST", "/api/v1/bookings", {
    token: customer,
    body: { vehicleId: "car-r", serviceType: "GENERAL_REPAIR", bookingDate },
  });
  expect(booked.status).toBe(201);
  const bookingId: string = booked.body.bookingId;

  await proxy.cut();
  const health = await service.call("GET", "/healthz");
  expect(health.status).toBe(503);
  expect(health.body.dependencies.redis.status).toBe("down");
  const read = await service.call("GET", `/api/v1/bookings/${bookingId}`, { token: customer });
  expect(read.status).toBe(200);
  expect(read.body).toMatchObject({ bookingId, status: "CONFIRMED" });
  // A command while Redis is away: answered, and the next read (from Postgres) shows it.
  const cancelled = await service.call("POST", `/api/v1/bookings/${bookingId}/cancel`, {
    token: customer,
    body: {},
  });
  expect(cancelled.status).toBe(200);
  const after = await service.call("GET", `/api/v1/bookings/${bookingId}`, { token: customer });
  expect(after.body.status).toBe("CANCELLED");

  await proxy.restore();
  // Redis back: the cache-sync reactor's next write for this booking (or the route's) brings it up to date.
  const redis = service.system.routes.redis;
  const deadline = Date.now() + 30_000;
  let cached: { status?: string } | undefined;
  while (Date.now() < deadline) {
    const raw = await redis.get(`booking:${bookingId}`).catch(() => null);
    cached = raw ? JSON.parse(raw) : undefined;
    if (cached?.status === "CANCELLED") break;
    // Until then, reads are still right: from Postgres when Redis has nothing newer.
    await Bun.sleep(100);
  }
  expect(cached?.status).toBe("CANCELLED");
}, 90_000);

test("a Redis outage longer than a command's retries: the cache ends at Postgres' version without any later event", async () => {
  const customer = await service.token("customer", `cust-${Bun.randomUUIDv7().slice(-8)}`);
  const bookingDate = slotTime(24 + Math.floor(Math.random() * 24 * 300));
  const booked = await service.call("POST", "/api/v1/bookings", {
    token: customer,
    body: { vehicleId: "car-r", serviceType: "GENERAL_REPAIR", bookingDate },
  });
  expect(booked.status).toBe(201);
  const bookingId: string = booked.body.bookingId;
  const redis = service.system.routes.redis;
  const cachedVersion = async () => {
    const raw = await redis.get(`booking:${bookingId}`).catch(() => null);
    return raw ? (JSON.parse(raw) as { status: string; version: number }) : undefined;
  };
  await waitFor(async () => (await cachedVersion())?.status === "CONFIRMED", { what: "the booking cached" });

  await proxy.cut();
  const cancelled = await service.call("POST", `/api/v1/bookings/${bookingId}/cancel`, {
    token: customer,
    body: {},
  });
  expect(cancelled.status).toBe(200);
  // A booking counted while Redis is away: its mirror write (after the commit) is lost.
  const other = await service.call("POST", "/api/v1/bookings", {
    token: customer,
    body: {
      vehicleId: "car-s",
      serviceType: "GENERAL_REPAIR",
      bookingDate: slotTime(24 + Math.floor(Math.random() * 24 * 300)),
    },
  });
  expect(other.status).toBe(201);
  const day = new Date().toISOString().slice(0, 10); // the day the events happened
  const counted = async () => {
    return (await dailyFigures(service.system.routes.sql, day)).bookings ?? 0;
  };
  await waitFor(async () => (await counted()) > 0, { what: "the booking counted in Postgres" });
  // Long enough for every Redis write of the cancellation (route, cache-sync) to have given up.
  await waitFor(() => redis.status !== "ready" && redis.status !== "connecting", {
    what: "ioredis giving up",
  });
  await Bun.sleep(6000);
  await proxy.restore();

  const [row] = await service.system.routes.sql<{ version: string }[]>`
    select version from actor_state where kind = 'booking' and actor_key = ${bookingId}`;
  const truth = Number(row?.version);
  // Nothing else happens to this booking: the cache must catch up by itself.
  const cached = await waitFor(
    async () => {
      const c = await cachedVersion();
      return c?.version === truth ? c : undefined;
    },
    { timeoutMs: 45_000, intervalMs: 250, what: "the cache at Postgres' version" },
  );
  expect(cached.status).toBe("CANCELLED");
  // And the day's figure: re-mirrored from Postgres when Redis connected again.
  await waitFor(async () => Number(await redis.get(`daily:bookings:${day}`)) === (await counted()), {
    timeoutMs: 30_000,
    intervalMs: 250,
    what: "daily:bookings mirrored at Postgres' value",
  });
}, 120_000);
