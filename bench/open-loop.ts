/**
 * The load generator of bench/booking-vs-peer.ts that is not wrk, in a process of its own:
 *
 * - `open`: an open loop. Requests go out at fixed intended times (every 1000 / rate ms from the start) whether
 *   or not earlier ones were answered, and each latency is measured from its intended send time, not from when it
 *   was actually sent (so a stalled generator or server cannot hide its stall: no coordinated omission).
 * - `burst`: every request of a list sent at once; each answer's status, time from the common start, and index.
 *
 *   node_modules/.bin/bun bench/open-loop.ts '<json config>'
 *
 * Config: { mode: "open", url, body: "token" | "customer", customersFile, rate, durationS, timeoutMs }
 *      or { mode: "burst", url, requestsFile, timeoutMs } (requestsFile: JSON [{ token?, body }]).
 * `body` and customersFile as in bench/booking-wrk.lua ("<customerId> <token>" a line; "token": the customer is
 * the bearer token's subject, "customer": customerId in the body). Prints one line "BENCH_RESULT {json}".
 * A request not answered within timeoutMs (or failing) counts as status 0.
 */
import { readFileSync } from "node:fs";

type Config =
  | {
      mode: "open";
      url: string;
      body: "token" | "customer";
      customersFile: string;
      rate: number;
      durationS: number;
      timeoutMs: number;
    }
  | { mode: "burst"; url: string; requestsFile: string; timeoutMs: number };

const config = JSON.parse(process.argv[2] ?? "{}") as Config;
const TYPES = ["OIL_CHANGE", "BRAKE_SERVICE", "TIRE_CHANGE", "INSPECTION", "GENERAL_REPAIR"];

/** One POST; its status (0 when it failed or timed out) and the moment its answer was read in full. */
async function post(url: string, token: string | undefined, body: string, timeoutMs: number) {
  const headers: Record<string, string> = { "content-type": "application/json" };
  if (token) headers.authorization = `Bearer ${token}`;
  try {
    const response = await fetch(url, {
      method: "POST",
      headers,
      body,
      signal: AbortSignal.timeout(timeoutMs),
    });
    const text = await response.text();
    return { status: response.status, at: performance.now(), text };
  } catch {
    return { status: 0, at: performance.now(), text: "" };
  }
}

function nearestRank(values: number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = Float64Array.from(values).sort();
  return sorted[Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length))) - 1] as number;
}

async function openLoop(c: Extract<Config, { mode: "open" }>) {
  const customers = readFileSync(c.customersFile, "utf8")
    .split("\n")
    .map((line) => line.trim().split(/\s+/))
    .filter((parts) => parts.length === 2) as [string, string][];
  const hour0 = Math.floor(Date.now() / 3_600_000) * 3_600_000;
  const nextBody = (): { token?: string; body: string } => {
    const at = new Date(hour0 + 3_600_000 * (2 + Math.floor(Math.random() * (364 * 24 - 1))));
    const [id, token] = customers[Math.floor(Math.random() * customers.length)] as [string, string];
    const booking = {
      ...(c.body === "customer" ? { customerId: id } : {}),
      vehicleId: "car-1",
      serviceType: TYPES[Math.floor(Math.random() * TYPES.length)],
      bookingDate: at.toISOString().replace(".000Z", "Z"),
    };
    return { token: c.body === "token" ? token : undefined, body: JSON.stringify(booking) };
  };
  const interval = 1000 / c.rate;
  const count = Math.round(c.durationS * c.rate);
  const latencies: number[] = [];
  const statuses: Record<string, number> = {};
  const sendLags: number[] = [];
  const inFlight: Promise<void>[] = [];
  const start = performance.now() + 50;
  for (let i = 0; i < count; i++) {
    const intended = start + i * interval;
    const wait = intended - performance.now();
    if (wait > 0) await Bun.sleep(wait); // the schedule: the next intended send time
    sendLags.push(performance.now() - intended);
    const { token, body } = nextBody();
    inFlight.push(
      post(c.url, token, body, c.timeoutMs).then(({ status, at }) => {
        statuses[status] = (statuses[status] ?? 0) + 1;
        if (status !== 0) latencies.push(at - intended);
      }),
    );
  }
  const sentMs = performance.now() - start;
  await Promise.all(inFlight);
  return {
    sent: count,
    sentMs,
    statuses,
    p50Ms: nearestRank(latencies, 50),
    p99Ms: nearestRank(latencies, 99),
    maxMs: nearestRank(latencies, 100),
    sendLagP99Ms: nearestRank(sendLags, 99),
    sendLagMaxMs: nearestRank(sendLags, 100),
  };
}

async function burst(c: Extract<Config, { mode: "burst" }>) {
  const requests = JSON.parse(readFileSync(c.requestsFile, "utf8")) as { token?: string; body: string }[];
  const start = performance.now();
  const answers = await Promise.all(
    requests.map(async ({ token, body }, index) => {
      const { status, at, text } = await post(c.url, token, body, c.timeoutMs);
      return { index, status, ms: at - start, text: text.slice(0, 300) };
    }),
  );
  return { answers };
}

const result = config.mode === "open" ? await openLoop(config) : await burst(config);
console.log(`BENCH_RESULT ${JSON.stringify(result)}`);
process.exit(0);
