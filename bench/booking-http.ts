/**
 * Service benchmark 1: `POST /api/v1/bookings` throughput and latency over real HTTP (loopback `fetch`), N
 * concurrent clients each sending its next request when the previous one answered (closed loop), for a fixed
 * time per round.
 *
 * - pitstop: the whole service center in this process (bench/service.ts: a fresh namespace on the dev database
 *   `pitstop`, 10 partitions per topic, every actor and reactor, the real HTTP app). A request goes HTTP (JWT,
 *   schema, date check) -> Kafka (booking mailbox) -> booking actor (turn committed, HOLD in the outbox) -> relay
 *   -> slot mailbox -> slot actor -> relay -> booking mailbox -> booking actor (CONFIRMED) -> NATS reply -> HTTP
 *   201 (then the route caches the view in Redis). Each client is its own customer; bookings go to random future
 *   hours (within 364 days) and random service types, so a slot (3 places) is rarely full.
 * - baseline: a plain Elysia app in the same process with one route `POST /bookings` that validates the same body
 *   with `t.Object` (the route's own schema) and inserts one row with postgres.js (pool 10, the system's size)
 *   into a scratch table, answering 201 with the row.
 *
 * Rounds are interleaved (baseline, pitstop, baseline, pitstop...), each contender warmed up once before round 1.
 * Throughput = responses / time from the first request to the last response; the goal compares 201s per second.
 *
 *   node_modules/.bin/bun bench/booking-http.ts
 *
 * Knobs: BENCH_CLIENTS (20), BENCH_DURATION_MS (10000 per round and contender), BENCH_WARMUP_MS (2000),
 * BENCH_ROUNDS (3), BENCH_PARTITIONS (10), BENCH_LOG_LEVEL (warn; the system's logs go to stderr).
 */
import postgres from "postgres";
import type { ActorClient } from "../runtime/index.ts";
import { createPlainTable, PLAIN_POOL, plainApp, plainDatabase } from "./plain-route.ts";
import {
  benchLog,
  type CleanUpReport,
  loopLag,
  PARTITIONS,
  type PoolUse,
  poolSampler,
  randomBookingDate,
  randomServiceType,
  StatusCounts,
  startBenchService,
  watchOtherTests,
} from "./service.ts";
import {
  type CpuUse,
  codeState,
  cpuMeter,
  fmt,
  interleave,
  machineNote,
  median,
  percentile,
  perSecond,
  ROUNDS,
  ratio,
  sameCode,
  setup,
  shortId,
  stopwatch,
  table,
} from "./support.ts";

const elapsed = stopwatch();
const startedAt = new Date();
const codeAtStart = codeState();
const CLIENTS = Number(process.env.BENCH_CLIENTS ?? 20);
const DURATION_MS = Number(process.env.BENCH_DURATION_MS ?? 10_000);
const WARMUP_MS = Number(process.env.BENCH_WARMUP_MS ?? 2000);

const othersSeen = watchOtherTests();
const { config, kafka } = await setup("booking-http");
const log = benchLog();

// --- the baseline: a plain Elysia app, one route, one insert (bench/plain-route.ts).
const plainSql = plainDatabase(config.postgres.url);
// Samples how each contender's Postgres pool spends its time (bench/service.ts poolSampler).
const monitorSql = postgres(config.postgres.url, { max: 1, onnotice: () => {} });
const [sessions] = await monitorSql<{ n: number }[]>`
  select count(*)::int as n from pg_stat_activity
  where datname = current_database() and application_name in ('pitstop', 'pitstop-relay')`;
const otherPitstopSessions = sessions?.n ?? 0;
const plainTable = `bench_plain_booking_${shortId()}`;
await createPlainTable(plainSql, plainTable);
const plainServer = plainApp(plainSql, plainTable).listen({ hostname: "127.0.0.1", port: 0 });
const plainUrl = `http://127.0.0.1:${plainServer.server?.port}/bookings`;

// --- pitstop: the whole service in a namespace of its own.
const service = await startBenchService(config, kafka, log);
console.error(
  `[booking-http] namespace ${service.namespace} ready in ${fmt(service.startMs)} ms (${PARTITIONS} partitions per topic); relay lock before start: ${service.relayLockBefore}`,
);
const pitstopUrl = `${service.baseUrl}/api/v1/bookings`;
const tokens = await Promise.all(
  Array.from({ length: CLIENTS }, (_, i) => service.token("customer", `${service.customerPrefix}c${i}`)),
);

// Time inside `client.ask` (produce to the booking mailbox, the actors' turns, the NATS reply): what the route
// waits for; the rest of a request is HTTP, JWT, validation and the Redis cache write.
const client = service.system.routes.client as ActorClient;
const ask = client.ask.bind(client);
let askTimes: number[] | undefined;
client.ask = async (...args) => {
  const t0 = performance.now();
  try {
    return await ask(...args);
  } finally {
    askTimes?.push(performance.now() - t0);
  }
};

interface RoundResult {
  requests: number;
  ms: number;
  rate: number;
  created: number;
  createdRate: number;
  statuses: StatusCounts;
  p50: number;
  p99: number;
  max: number;
  cpu: CpuUse;
  pool: PoolUse;
  lag: { p50: number; p99: number; max: number };
  ask?: { p50: number; p99: number };
  turns?: { booking: number; slot: number; relayPublished: number; relayLeader: boolean };
}

function bookingBody() {
  return JSON.stringify({
    vehicleId: `car-${Math.floor(Math.random() * 1000)}`,
    serviceType: randomServiceType(),
    bookingDate: randomBookingDate(),
  });
}

/** CLIENTS closed-loop clients for `durationMs`: each sends its next request when the previous one answered. */
async function load(
  applicationName: string,
  url: string,
  headersOf: (clientNo: number) => Record<string, string>,
  durationMs: number,
  onAnswer?: (status: number, body: string, sentAt: number, answeredAt: number) => void,
): Promise<Omit<RoundResult, "ask" | "turns">> {
  const latencies: number[] = [];
  const statuses = new StatusCounts();
  const cpu = cpuMeter();
  const pool = poolSampler(monitorSql, applicationName);
  const lag = loopLag();
  const start = performance.now();
  const deadline = start + durationMs;
  await Promise.all(
    Array.from({ length: CLIENTS }, async (_, clientNo) => {
      const headers = { "content-type": "application/json", ...headersOf(clientNo) };
      while (performance.now() < deadline) {
        const t0 = performance.now();
        let status = 0;
        let text = "";
        try {
          const response = await fetch(url, { method: "POST", headers, body: bookingBody() });
          text = await response.text();
          status = response.status;
        } catch (error) {
          if (statuses.get(0) === 0) console.error(`[booking-http] request failed: ${String(error)}`);
        }
        const t1 = performance.now();
        latencies.push(t1 - t0);
        statuses.add(status);
        onAnswer?.(status, text, t0, t1);
      }
    }),
  );
  const ms = performance.now() - start;
  const created = statuses.get(201);
  return {
    requests: latencies.length,
    ms,
    rate: perSecond(latencies.length, ms),
    created,
    createdRate: perSecond(created, ms),
    statuses,
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
    max: percentile(latencies, 100),
    cpu: cpu(),
    lag: lag(),
    pool: await pool(),
  };
}

const runPlain = (durationMs: number) => load("bench-plain", plainUrl, () => ({}), durationMs);

async function runPitstop(durationMs: number): Promise<RoundResult> {
  const before = service.host.stats();
  askTimes = [];
  const result = await load(
    "pitstop",
    pitstopUrl,
    (clientNo) => ({ authorization: `Bearer ${tokens[clientNo]}` }),
    durationMs,
    (status, body, sentAt, answeredAt) => {
      if (status !== 201 || !measuring) return;
      const bookingId = (JSON.parse(body) as { bookingId: string }).bookingId;
      answered.set(bookingId, {
        sentAt: performance.timeOrigin + sentAt,
        answeredAt: performance.timeOrigin + answeredAt,
      });
    },
  );
  const asks = askTimes;
  askTimes = undefined;
  const after = service.host.stats();
  const turns = (stats: typeof before, kind: string) => stats.actors[kind]?.turns ?? 0;
  return {
    ...result,
    ask: { p50: percentile(asks, 50), p99: percentile(asks, 99) },
    turns: {
      booking: turns(after, "booking") - turns(before, "booking"),
      slot: turns(after, "slot") - turns(before, "slot"),
      relayPublished: (after.relay?.published ?? 0) - (before.relay?.published ?? 0),
      relayLeader: after.relay?.leader ?? false,
    },
  };
}

/** 201 bookings of the measured pitstop rounds: when the request was sent and answered (epoch ms). */
const answered = new Map<string, { sentAt: number; answeredAt: number }>();
let measuring = false;

const PLAIN = "plain Elysia + postgres.js insert";
const PITSTOP = "pitstop POST /api/v1/bookings";

console.error(`[booking-http] warm-up: ${WARMUP_MS} ms each`);
const warmPlain = await runPlain(WARMUP_MS);
const warmPitstop = await runPitstop(WARMUP_MS);
console.error(
  `[booking-http] warm-up: plain ${warmPlain.requests} requests (${fmt(warmPlain.rate)}/s), pitstop ${warmPitstop.requests} (${fmt(warmPitstop.rate)}/s)`,
);

let results: Map<string, RoundResult[]>;
let cleanUp: CleanUpReport;
let hops: Hops | undefined;
try {
  measuring = true;
  results = await interleave<RoundResult>(
    ROUNDS,
    [
      { name: PLAIN, run: () => runPlain(DURATION_MS) },
      { name: PITSTOP, run: () => runPitstop(DURATION_MS) },
    ],
    (name, round, r) =>
      console.error(
        `[booking-http] round ${round} ${name}: ${r.requests} requests in ${fmt(r.ms)} ms = ${fmt(r.rate)}/s; 201 ${r.created} (${fmt(r.createdRate)}/s); p50 ${fmt(r.p50, 2)} p99 ${fmt(r.p99, 2)} max ${fmt(r.max, 2)} ms; others ${r.statuses.describeOther([201]) || "none"}`,
      ),
  );
  measuring = false;
  hops = await timeline(service.system.routes.sql, service.namespace, answered);
} finally {
  cleanUp = await service.stop();
  await plainServer.stop(true);
  const [plainRows] = await plainSql<{ n: string }[]>`select count(*) as n from ${plainSql(plainTable)}`;
  console.error(`[booking-http] ${plainTable}: ${plainRows?.n} rows; dropping it`);
  await plainSql`drop table ${plainSql(plainTable)}`;
  await plainSql.end();
  await monitorSql.end();
}
console.error(`[booking-http] clean-up: ${JSON.stringify(cleanUp)}`);
const codeAtEnd = codeState();
const finishedAt = new Date();

// --- report
const hopRows = hops
  ? hops.stages.map((stage) => [
      stage.name,
      fmt(percentile(stage.values, 50), 2),
      fmt(percentile(stage.values, 99), 2),
      fmt(stage.values.reduce((a, b) => a + b, 0) / Math.max(1, stage.values.length), 2),
    ])
  : [];
const KNOWN = [201, 409, 202];
const rows: (string | number)[][] = [];
for (let round = 0; round < ROUNDS; round++) {
  for (const name of [PLAIN, PITSTOP]) {
    const r = results.get(name)?.[round] as RoundResult;
    rows.push([
      round + 1,
      name,
      r.requests,
      fmt(r.ms),
      fmt(r.rate),
      `${r.statuses.get(201)} / ${r.statuses.get(409)} / ${r.statuses.get(202)} / ${r.statuses.other(KNOWN)}`,
      fmt(r.createdRate),
      fmt(r.p50, 2),
      fmt(r.p99, 2),
      fmt(r.max, 2),
      r.ask ? `${fmt(r.ask.p50, 2)} / ${fmt(r.ask.p99, 2)}` : "",
      `${r.cpu.process} / ${r.cpu.machine}`,
      `${fmt(r.lag.p50, 1)} / ${fmt(r.lag.p99, 1)} / ${fmt(r.lag.max, 1)}`,
      `${r.pool.active} / ${r.pool.idleInTransaction} / ${r.pool.idle} / ${r.pool.lockWait}`,
      r.turns ? `${r.turns.booking} / ${r.turns.slot} / ${r.turns.relayPublished}` : "",
    ]);
  }
}
const med = (name: string, pick: (r: RoundResult) => number) => median((results.get(name) ?? []).map(pick));
const plainCreated = med(PLAIN, (r) => r.createdRate);
const pitstopCreated = med(PITSTOP, (r) => r.createdRate);
const plainP99 = med(PLAIN, (r) => r.p99);
const pitstopP99 = med(PITSTOP, (r) => r.p99);
const throughputRatio = pitstopCreated / plainCreated;
const p99Ratio = pitstopP99 / plainP99;
const others = [PLAIN, PITSTOP]
  .map((name) => {
    const all = new StatusCounts();
    for (const r of results.get(name) ?? [])
      for (const [s, n] of r.statuses.counts) all.counts.set(s, all.get(s) + n);
    const other = all.describeOther(KNOWN);
    return other ? `${name}: ${other}` : "";
  })
  .filter(Boolean);

const out: string[] = [];
out.push("## Service center: POST /api/v1/bookings over HTTP");
out.push("");
out.push(`${machineNote()}`);
out.push("");
out.push(
  `Runtime measured: ${codeAtEnd}${sameCode(codeAtStart, codeAtEnd) ? "" : ` — CHANGED during the run (at start: ${codeAtStart})`}.`,
);
out.push("");
out.push(
  `Run ${startedAt.toISOString()} to ${finishedAt.toISOString()} (UTC). ${CLIENTS} concurrent clients (closed loop), ${DURATION_MS} ms per round and contender, warm-up ${WARMUP_MS} ms each before round 1 (not counted); ${ROUNDS} rounds, interleaved. Pitstop: namespace ${service.namespace}, ${PARTITIONS} partitions per topic, ready in ${fmt(service.startMs)} ms, relay lock held before start by: ${service.relayLockBefore}; relay leader in this host: ${results.get(PITSTOP)?.every((r) => r.turns?.relayLeader) ? "yes" : "no"}. Sessions of other pitstop processes in the database before the start: ${otherPitstopSessions}. Baseline: Postgres pool ${PLAIN_POOL}, table ${plainTable} (dropped). Other \`bun test\` runs seen during the run: ${othersSeen()}.`,
);
out.push("");
out.push(
  table(
    [
      "round",
      "contender",
      "responses",
      "ms",
      "responses/s",
      "201 / 409 / 202 / other",
      "201/s",
      "p50 ms",
      "p99 ms",
      "max ms",
      "ask p50 / p99 ms",
      "CPU % process / machine",
      "event-loop lag p50 / p99 / max ms",
      "pool sessions: active / idle in tx / idle / waiting on a lock",
      "turns booking / slot / relay published",
    ],
    rows,
  ),
);
out.push("");
out.push(
  table(
    ["contender", "median 201/s", "median p50 ms", "median p99 ms", "median responses/s"],
    [PLAIN, PITSTOP].map((name) => [
      name,
      fmt(med(name, (r) => r.createdRate)),
      fmt(
        med(name, (r) => r.p50),
        2,
      ),
      fmt(
        med(name, (r) => r.p99),
        2,
      ),
      fmt(med(name, (r) => r.rate)),
    ]),
  ),
);
out.push("");
out.push(
  table(
    ["measure", "pitstop", "baseline", "ratio", "goal", "verdict"],
    [
      [
        "throughput (median 201/s)",
        fmt(pitstopCreated),
        fmt(plainCreated),
        ratio(pitstopCreated, plainCreated),
        ">= 0.5x",
        throughputRatio >= 0.5 ? "met" : "missed",
      ],
      [
        "latency p99 (median of rounds, ms)",
        fmt(pitstopP99, 2),
        fmt(plainP99, 2),
        ratio(pitstopP99, plainP99),
        "<= 2x",
        p99Ratio <= 2 ? "met" : "missed",
      ],
    ],
  ),
);
out.push("");
if (hops) {
  out.push(
    `Where a pitstop booking's time goes: ${hops.complete} of the ${hops.bookings} bookings answered 201 in the measured rounds, timed from their outbox rows (\`created_at\` = start of the transaction that committed the turn, with group commit the batch's; \`published_at\` = when the relay marked the row, after Kafka acknowledged it) and the client's send and answer times. ms:`,
  );
  out.push("");
  out.push(table(["stage", "p50", "p99", "mean"], hopRows));
  out.push("");
}
out.push(
  `Statuses other than 201/409/202: ${others.length ? others.join("; ") : "none"}. Clean-up: ${cleanUp.unpublishedOutboxRows} unpublished outbox rows deleted before ${cleanUp.topicsDeleted} topics; rows deleted ${Object.entries(
    cleanUp.rows,
  )
    .map(([k, v]) => `${k} ${v}`)
    .join(", ")}.`,
);
out.push("");
out.push(`wall time ${elapsed()}`);
console.log(out.join("\n"));
process.exit(0);

interface Hops {
  bookings: number;
  complete: number;
  stages: { name: string; values: number[] }[];
}

/**
 * Each answered booking's path through the outbox: the HOLD row its CREATE turn wrote, the SLOT_HELD row the slot's
 * turn wrote, the BOOKING_CREATED row its second turn wrote (created and published times), between the client's
 * send and answer.
 */
async function timeline(
  sql: postgres.Sql,
  namespace: string,
  bookings: Map<string, { sentAt: number; answeredAt: number }>,
): Promise<Hops> {
  const rows = await sql<{ type: string; booking_id: string; created: number; published: number | null }[]>`
    select value::jsonb->>'eventType' as type,
           coalesce(value::jsonb->'payload'->>'bookingId', message_key) as booking_id,
           (extract(epoch from created_at) * 1000)::float8 as created,
           (extract(epoch from published_at) * 1000)::float8 as published
    from outbox
    where topic like ${`${namespace}.%`} and value is not null
      and value::jsonb->>'eventType' in ('HOLD', 'SLOT_HELD', 'BOOKING_CREATED')`;
  const byBooking = new Map<string, Record<string, { created: number; published: number | null }>>();
  for (const row of rows) {
    const entry = byBooking.get(row.booking_id) ?? {};
    entry[row.type] = { created: row.created, published: row.published };
    byBooking.set(row.booking_id, entry);
  }
  const names = [
    "HTTP request sent -> booking turn (CREATE) in its transaction",
    "-> HOLD published to the slot mailbox (commit, relay)",
    "-> slot turn (HOLD) in its transaction",
    "-> SLOT_HELD published to the booking mailbox (commit, relay)",
    "-> booking turn (SLOT_HELD) in its transaction",
    "-> HTTP answer received (commit, NATS reply, route, Redis cache write, HTTP)",
    "total (send -> answer)",
  ];
  const stages = names.map((name) => ({ name, values: [] as number[] }));
  let complete = 0;
  for (const [bookingId, times] of bookings) {
    const entry = byBooking.get(bookingId);
    const hold = entry?.HOLD;
    const held = entry?.SLOT_HELD;
    const created = entry?.BOOKING_CREATED;
    if (!hold?.published || !held?.published || !created) continue;
    complete++;
    const points = [
      times.sentAt,
      hold.created,
      hold.published,
      held.created,
      held.published,
      created.created,
      times.answeredAt,
    ];
    for (let i = 0; i < 6; i++) stages[i]?.values.push((points[i + 1] as number) - (points[i] as number));
    stages[6]?.values.push(times.answeredAt - times.sentAt);
  }
  return { bookings: bookings.size, complete, stages };
}
