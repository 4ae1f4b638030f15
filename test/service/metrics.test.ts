/**
 * `/metrics` on the real service: the series of every source are there after a booking, and the consumer lag
 * series rises while a reactor cannot write (its table locked by someone else, the load going on) and returns to
 * 0 once it can. `/livez` answers; a process without the API (PITSTOP_RUN without http) still serves them.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import postgres from "postgres";
import { createSystem } from "../../system.ts";
import { testConfig, testLog, waitFor } from "../support.ts";
import { type Service, slotTime, startService } from "./fixtures.ts";

let service: Service;
beforeAll(async () => {
  service = await startService();
}, 120_000);
afterAll(() => service?.stop());

async function scrape(baseUrl: string) {
  const response = await fetch(`${baseUrl}/metrics`);
  expect(response.status).toBe(200);
  expect(response.headers.get("content-type")).toContain("text/plain");
  return response.text();
}

/** The value of one series (name and labels as written, e.g. `x{a="b"}`), summed over the lines that match. */
function seriesValue(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  let found: number | undefined;
  for (const line of text.split("\n")) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (!Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) continue;
    found = (found ?? 0) + Number(line.slice(line.lastIndexOf(" ") + 1));
  }
  return found;
}

let booked = 0;
async function book(customer: string) {
  const answer = await service.call("POST", "/api/v1/bookings", {
    token: customer,
    body: { vehicleId: `v-${booked}`, serviceType: "OIL_CHANGE", bookingDate: slotTime(5000 + booked++) },
  });
  expect(answer.status).toBe(201);
  return answer.body;
}

describe("/metrics", () => {
  test("after a booking it holds the series of the turns, reactors, batches, HTTP, WebSockets, host, lag, outbox and dependencies", async () => {
    const customer = await service.token("customer", `metrics-${Bun.randomUUIDv7()}`);
    const { bookingId } = await book(customer);
    const socket = new WebSocket(`${service.wsUrl}?token=${customer}`);
    await new Promise((resolve) => {
      socket.onopen = resolve;
    });
    socket.send(JSON.stringify({ type: "subscribe", bookingId }));
    await new Promise((resolve) => {
      socket.onmessage = resolve;
    });
    const reactors = `pitstop-${service.namespace}.reactors`;
    // The reactors' work on the booking's events is done once the group's lag is 0 again.
    const text = await waitFor(
      async () => {
        const t = await scrape(service.baseUrl);
        return seriesValue(t, "pitstop_reactor_event_duration_seconds_count", { reactor: "audit" }) &&
          seriesValue(t, "pitstop_consumer_group_lag", { group: reactors }) === 0
          ? t
          : undefined;
      },
      { what: "the reactors' series, lag 0" },
    );
    expect(
      seriesValue(text, "pitstop_turn_duration_seconds_count", { kind: "booking", outcome: "committed" }),
    ).toBeGreaterThanOrEqual(2);
    expect(seriesValue(text, "pitstop_turn_duration_seconds_count", { kind: "slot" })).toBeGreaterThanOrEqual(
      1,
    );
    expect(seriesValue(text, "pitstop_commit_batch_size_count", { of: "actors" })).toBeGreaterThanOrEqual(1);
    expect(seriesValue(text, "pitstop_commit_batch_size_count", { of: "audit" })).toBeGreaterThanOrEqual(1);
    expect(seriesValue(text, "pitstop_rebalance_duration_seconds_count")).toBeGreaterThanOrEqual(1);
    expect(
      seriesValue(text, "pitstop_http_requests_total", {
        method: "POST",
        route: "/api/v1/bookings",
        status: "201",
      }),
    ).toBeGreaterThanOrEqual(1);
    expect(
      seriesValue(text, "pitstop_http_request_duration_seconds_count", {
        route: "/api/v1/bookings",
        status: "201",
      }),
    ).toBeGreaterThanOrEqual(1);
    expect(seriesValue(text, "pitstop_websockets_open")).toBeGreaterThanOrEqual(1);
    expect(
      seriesValue(text, "pitstop_websocket_frames_total", { type: "subscribed" }),
    ).toBeGreaterThanOrEqual(1);
    // The host: 3 partitions per topic, all owned by this one process.
    expect(
      seriesValue(text, "pitstop_partitions_owned", { group: `pitstop-${service.namespace}.actor.booking` }),
    ).toBe(3);
    expect(seriesValue(text, "pitstop_actors_active", { kind: "booking" })).toBeGreaterThanOrEqual(1);
    expect(
      seriesValue(text, "pitstop_messages_handled_total", { role: "reactor", consumer: "audit" }),
    ).toBeGreaterThanOrEqual(1);
    expect(
      seriesValue(text, "pitstop_retries_total", { role: "actor", consumer: "booking" }),
    ).toBeGreaterThanOrEqual(0);
    expect(seriesValue(text, "pitstop_dead_letters_total", { role: "actor", consumer: "booking" })).toBe(0);
    expect(seriesValue(text, "pitstop_fenced_turns_total", { role: "actor", consumer: "booking" })).toBe(0);
    expect(seriesValue(text, "pitstop_passivations_total", { kind: "booking" })).toBe(0);
    expect(seriesValue(text, "pitstop_rebalances_total", { group: reactors })).toBeGreaterThanOrEqual(1);
    // Kafka's view: one series per partition of every group.
    expect(
      seriesValue(text, "pitstop_consumer_lag", {
        group: reactors,
        topic: `${service.namespace}.booking-events`,
        partition: "0",
      }),
    ).toBe(0);
    expect(seriesValue(text, "pitstop_outbox_backlog")).toBeGreaterThanOrEqual(0);
    expect(seriesValue(text, "pitstop_outbox_oldest_unpublished_seconds")).toBeGreaterThanOrEqual(0);
    for (const dependency of ["kafka", "postgres", "redis", "nats"])
      expect(seriesValue(text, "pitstop_dependency_up", { dependency })).toBe(1);
    for (const source of ["host", "kafka", "postgres", "dependencies"])
      expect(seriesValue(text, "pitstop_scrape_source_up", { source })).toBe(1);
    expect(seriesValue(text, "pitstop_process_cpu_seconds_total")).toBeGreaterThan(0);
    socket.close();
    await waitFor(async () => seriesValue(await scrape(service.baseUrl), "pitstop_websockets_open") === 0, {
      what: "the socket counted closed",
    });
  }, 60_000);

  test("the lag series rises while the audit reactor cannot write, the load going on, and returns to 0 after", async () => {
    const reactors = `pitstop-${service.namespace}.reactors`;
    const lagNow = async () =>
      seriesValue(await scrape(service.baseUrl), "pitstop_consumer_group_lag", { group: reactors });
    expect(await waitFor(async () => (await lagNow()) === 0, { what: "lag 0 at the start" })).toBe(true);
    const customer = await service.token("customer", `metrics-load-${Bun.randomUUIDv7()}`);
    const holder = postgres(testConfig().postgres.url, { max: 1, onnotice: () => {} });
    let release: () => void = () => {};
    const released = new Promise<void>((resolve) => {
      release = resolve;
    });
    let locked: () => void = () => {};
    const isLocked = new Promise<void>((resolve) => {
      locked = resolve;
    });
    // Someone else's long statement on the audit table: every audit insert waits (and times out, and retries).
    const holding = holder.begin(async (tx) => {
      await tx`lock table audit_log in access exclusive mode`;
      locked();
      await released;
    });
    let risen: number | undefined;
    try {
      await isLocked;
      for (let i = 0; i < 6; i++) await book(customer); // the bookings themselves do not wait for the audit
      risen = await waitFor(
        async () => {
          const lag = (await lagNow()) ?? 0;
          return lag > 0 ? lag : undefined;
        },
        { what: "the lag to rise" },
      );
      // And it stays up while audit cannot write: its records cannot be committed past (the others' are handled).
      await Bun.sleep(2500);
      expect((await lagNow()) ?? 0).toBeGreaterThan(0);
    } finally {
      release();
      await holding;
      await holder.end();
    }
    expect(risen).toBeGreaterThan(0);
    await waitFor(async () => (await lagNow()) === 0, { timeoutMs: 60_000, what: "the lag back to 0" });
  }, 120_000);
});

describe("/livez and a process without the API", () => {
  test("/livez answers; without http in PITSTOP_RUN the app serves /livez, /metrics, /healthz and no API", async () => {
    const live = await fetch(`${service.baseUrl}/livez`);
    expect(live.status).toBe(200);
    expect(await live.json()).toEqual({ status: "live" });
    const system = createSystem(
      testConfig({ PITSTOP_RUN: "actors,reactors", PITSTOP_NAMESPACE: service.namespace }),
      testLog,
    );
    try {
      const get = (path: string) => system.app.handle(new Request(`http://localhost${path}`));
      expect((await get("/livez")).status).toBe(200);
      const metrics = await get("/metrics");
      expect(metrics.status).toBe(200);
      expect(await metrics.text()).toContain("pitstop_process_cpu_seconds_total");
      expect((await get("/healthz")).status).toBe(200);
      expect((await get("/api/v1/bookings/x")).status).toBe(404);
    } finally {
      await system.close();
    }
  }, 60_000);
});
