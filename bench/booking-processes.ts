/**
 * Booking throughput when the service runs as one process vs split in two (PITSTOP_RUN=http,actors and
 * PITSTOP_RUN=reactors), each started with `bun main.ts` on the dev database, driven over HTTP by this process
 * with BENCH_CLIENTS concurrent clients for BENCH_DURATION_MS, rounds interleaved.
 *
 *   node_modules/.bin/bun bench/booking-processes.ts
 *
 * Knobs: BENCH_CLIENTS (20), BENCH_DURATION_MS (10000), BENCH_ROUNDS (3).
 */

import { loadConfig } from "../config.ts";
import { createTokens } from "../http/index.ts";
import { fmt, machineNote, median, table } from "./support.ts";

const CLIENTS = Number(process.env.BENCH_CLIENTS ?? 20);
const DURATION_MS = Number(process.env.BENCH_DURATION_MS ?? 10_000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const config = loadConfig({ ...process.env, NODE_ENV: "development" });
const tokens = createTokens(config.auth.jwtSecret, 3600);
const TYPES = ["OIL_CHANGE", "BRAKE_SERVICE", "TIRE_CHANGE", "INSPECTION", "GENERAL_REPAIR"];

type Layout = { name: string; processes: string[] };
const layouts: Layout[] = [
  { name: "one process (http,actors,reactors)", processes: ["http,actors,reactors"] },
  { name: "two processes (http,actors + reactors)", processes: ["http,actors", "reactors"] },
];

async function start(layout: Layout) {
  const children = layout.processes.map((run, i) =>
    Bun.spawn([process.execPath, "main.ts"], {
      // Each process answers its ops endpoints (/metrics...) on a port of its own; the first one serves the API.
      env: { ...process.env, PITSTOP_RUN: run, LOG_LEVEL: "warn", PORT: String(3000 + i) },
      stdout: "ignore",
      stderr: "ignore",
    }),
  );
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    const ok = await fetch("http://127.0.0.1:3000/healthz").then(
      (r) => r.ok,
      () => false,
    );
    if (ok) break;
    await Bun.sleep(200);
  }
  await Bun.sleep(3000); // every consumer group settles its partitions
  return async () => {
    for (const child of children) child.kill("SIGTERM");
    await Promise.all(children.map((c) => c.exited));
  };
}

async function load(): Promise<{
  ok: number;
  other: number;
  statuses: Map<number, number>;
  latencies: number[];
}> {
  const token = await tokens.sign({ sub: `bench-${Bun.randomUUIDv7().slice(-8)}`, role: "customer" });
  const until = Date.now() + DURATION_MS;
  const latencies: number[] = [];
  let ok = 0;
  let other = 0;
  const statuses = new Map<number, number>();
  await Promise.all(
    Array.from({ length: CLIENTS }, async () => {
      while (Date.now() < until) {
        const hours = 24 + Math.floor(Math.random() * 24 * 360);
        const at = new Date(Date.now() + hours * 3600_000);
        at.setUTCMinutes(Math.floor(Math.random() * 60), 0, 0);
        const began = performance.now();
        const response = await fetch("http://127.0.0.1:3000/api/v1/bookings", {
          method: "POST",
          headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
          body: JSON.stringify({
            vehicleId: "bench",
            serviceType: TYPES[Math.floor(Math.random() * TYPES.length)],
            bookingDate: at.toISOString(),
          }),
        });
        await response.arrayBuffer();
        latencies.push(performance.now() - began);
        statuses.set(response.status, (statuses.get(response.status) ?? 0) + 1);
        if (response.status === 201) ok++;
        else other++;
      }
    }),
  );
  return { ok, other, statuses, latencies };
}

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? Number.NaN;
};
const rows: (string | number)[][] = [];
const rates = new Map<string, number[]>();
const started = new Date().toISOString();
for (let round = 1; round <= ROUNDS; round++) {
  for (const layout of layouts) {
    const stop = await start(layout);
    try {
      await load(); // warm-up pass, discarded
      const r = await load();
      const rate = (r.ok * 1000) / DURATION_MS;
      rates.set(layout.name, [...(rates.get(layout.name) ?? []), rate]);
      const others = [...r.statuses]
        .filter(([status]) => status !== 201)
        .map(([status, n]) => `${n} x ${status}`);
      rows.push([
        round,
        layout.name,
        r.ok,
        others.join(", ") || "0",
        fmt(rate),
        fmt(pct(r.latencies, 50)),
        fmt(pct(r.latencies, 99)),
      ]);
      console.error(`[processes] round ${round} ${layout.name}: ${fmt(rate)} bookings/s`);
    } finally {
      await stop();
    }
  }
}
console.log(`## Booking throughput, one process vs two\n\n${machineNote()}\n`);
console.log(
  `Started ${started}; ${CLIENTS} clients, ${DURATION_MS} ms per pass (after a discarded warm-up pass).\n`,
);
console.log(table(["round", "layout", "201", "other", "201/s", "p50 ms", "p99 ms"], rows));
const [one, two] = layouts.map((l) => median(rates.get(l.name) ?? []));
console.log(
  `\nmedian 201/s: one process ${fmt(one as number)}, two processes ${fmt(two as number)}, ratio ${((two as number) / (one as number)).toFixed(3)}x`,
);
process.exit(0);
