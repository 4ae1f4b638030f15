/**
 * Service benchmark 2: end-to-end latency at a fixed request rate, from sending an HTTP command to receiving the
 * WebSocket status frame it causes, next to Kafka's own produce -> consume round trip at the same rate.
 *
 * - pitstop: the whole service center in this process (bench/service.ts: a fresh namespace on the dev database
 *   `pitstop`, 10 partitions per topic). Set-up, not measured: R customers each book a slot, a technician starts a
 *   repair of each booking, and each customer's WebSocket subscribes to its repair (`subscribed` answered). Then
 *   `POST /api/v1/repairs/:id/progress` is sent at a fixed rate (open loop: on schedule, whether or not earlier
 *   ones answered), round-robin over the repairs with increasing progress values (DIAGNOSING 1..100, REPAIRING
 *   1..100, TESTING 1..100), a repair's next command only after its previous one answered (so commands of one
 *   repair never overtake each other; a tick with no repair free is counted and skipped). Latency = from sending
 *   the request to the `{"type":"status","event":"REPAIR_IN_PROGRESS"}` frame with that status and progress on
 *   the already-subscribed socket. The path: HTTP -> Kafka (repair mailbox) -> repair actor (turn committed with
 *   the event in the outbox; reply over NATS -> HTTP 200) -> relay -> repair-events -> status reactor (reads the
 *   repair's state) -> NATS -> the WebSocket gateway -> the socket.
 * - baseline: kafkajs alone on a scratch topic (10 partitions): a producer with the runtime's settings (idempotent,
 *   acks=-1, one request in flight) sends at the same rate, open loop; a consumer (eachMessage, maxWaitTimeInMs 100
 *   like the runtime's consumers) in the same process receives; latency = receive time - time before send.
 *
 * - baseline 2: a Postgres commit at the same rate, open loop: one transaction inserting one row into a scratch
 *   table, on a pool of its own (10 connections, as the system's); latency = commit answered - time before begin.
 *   Issue 10's goal: pitstop's p99 at most Kafka's p99 + this p99 + 10 ms.
 *
 * The rate and total duration are per contender: the duration is split into interleaved rounds (kafka, pitstop,
 * kafka, pitstop...), each contender warmed up once before round 1 (not counted). Reported: p50/p99 per round,
 * their medians, and p50/p99 over all samples of a contender.
 *
 *   node_modules/.bin/bun bench/e2e-latency.ts
 *
 * Knobs: BENCH_RATE (20 requests/s), BENCH_SECONDS (30, per contender, over all rounds), BENCH_ROUNDS (3),
 * BENCH_REPAIRS (20), BENCH_WARMUP_S (2), BENCH_PARTITIONS (10), BENCH_LOG_LEVEL (warn, to stderr).
 */
import type { Producer } from "kafkajs";
import type postgres from "postgres";
import {
  benchLog,
  type CleanUpReport,
  loopLag,
  PARTITIONS,
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
  deleteTopics,
  fmt,
  freshTopic,
  interleave,
  machineNote,
  median,
  percentile,
  ROUNDS,
  sameCode,
  setup,
  shortId,
  stopwatch,
  table,
  waitUntil,
} from "./support.ts";

const elapsed = stopwatch();
const startedAt = new Date();
const codeAtStart = codeState();
const RATE = Number(process.env.BENCH_RATE ?? 20);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 30);
const WARMUP_S = Number(process.env.BENCH_WARMUP_S ?? 2);
const PER_ROUND = Math.round((RATE * SECONDS) / ROUNDS);
const WARMUP = Math.round(RATE * WARMUP_S);
const STAGES = ["DIAGNOSING", "REPAIRING", "TESTING"] as const;
const STEPS_PER_REPAIR = STAGES.length * 100;
const REPAIRS = Math.max(
  Number(process.env.BENCH_REPAIRS ?? 20),
  Math.ceil(((PER_ROUND * ROUNDS + WARMUP) * 1.2) / STEPS_PER_REPAIR),
);
const SETTLE_MS = 20_000; // how long a round waits for late answers and frames after its last send

const now = () => performance.timeOrigin + performance.now(); // epoch ms, sub-ms resolution
const othersSeen = watchOtherTests();
const { config, kafka } = await setup("e2e");
const log = benchLog();

// --- the Kafka baseline: a scratch topic, one consumer for the whole run.
const topic = await freshTopic(kafka, "e2e", PARTITIONS);
const arrivals = new Map<string, { sentAt: number; ackedAt: number; consumedAt: number }>();
let kafkaDuplicates = 0;
const consumer = kafka.consumer({ groupId: `bench-e2e-${topic}`, maxWaitTimeInMs: 100 });
let joined = false;
consumer.on(consumer.events.GROUP_JOIN, () => {
  joined = true;
});
await consumer.connect();
await consumer.subscribe({ topic, fromBeginning: true });
await consumer.run({
  eachMessage: async ({ message }) => {
    const at = now();
    const id = message.value?.toString() ?? "";
    const entry = arrivals.get(id);
    if (!entry) return;
    if (entry.consumedAt) kafkaDuplicates++;
    else entry.consumedAt = at;
  },
});
await waitUntil(() => joined, { timeoutMs: 30_000, intervalMs: 20, what: "the baseline consumer to join" });
const producer: Producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
await producer.connect();

// --- pitstop: the service, R repairs each watched by its customer's socket.
const service = await startBenchService(config, kafka, log);
console.error(
  `[e2e] namespace ${service.namespace} ready in ${fmt(service.startMs)} ms (${PARTITIONS} partitions per topic); relay lock before start: ${service.relayLockBefore}`,
);
const technician = await service.token("technician", `${service.customerPrefix}tech`);

/** The fields of an answer the set-up reads. */
type Answer = { status: number; body: { bookingId?: string; repairId?: string } | undefined };

async function call(path: string, token: string, body: unknown): Promise<Answer> {
  const response = await fetch(`${service.baseUrl}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
    body: JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : undefined };
}

interface Pending {
  sentAt: number;
  answeredAt: number;
  status: number;
  frameAt: number;
  round: string;
}
/** Commands sent, by `<repairId>:<stage>:<progress>`. */
const pending = new Map<string, Pending>();
const frameCounts = { matched: 0, duplicates: 0, unmatched: 0, other: 0 };

interface Repair {
  repairId: string;
  step: number;
  busy: boolean;
  socket: WebSocket;
}

async function setUpRepair(i: number): Promise<Repair> {
  const customerId = `${service.customerPrefix}c${i}`;
  const customer = await service.token("customer", customerId);
  let booked: Answer | undefined;
  for (let attempt = 0; attempt < 5 && booked?.status !== 201; attempt++) {
    booked = await call("/api/v1/bookings", customer, {
      vehicleId: `car-${i}`,
      serviceType: randomServiceType(),
      bookingDate: randomBookingDate(),
    });
  }
  if (booked?.status !== 201)
    throw new Error(`booking ${i}: ${booked?.status} ${JSON.stringify(booked?.body)}`);
  const started = await call("/api/v1/repairs/start", technician, {
    bookingId: booked.body?.bookingId,
    estimatedTime: 120,
  });
  if (started.status !== 201)
    throw new Error(`repair ${i}: ${started.status} ${JSON.stringify(started.body)}`);
  const repairId = started.body?.repairId as string;
  const socket = new WebSocket(`${service.wsUrl}?token=${customer}`);
  const seen = new Set<string>();
  let subscribed = false;
  socket.onmessage = (event) => {
    const at = now();
    const frame = JSON.parse(String(event.data));
    if (frame.type === "subscribed") {
      subscribed = true;
      return;
    }
    if (frame.type === "error" && !subscribed) {
      // e.g. not_found: the repair's state not readable yet; ask again shortly.
      console.error(`[e2e] socket ${i}: ${String(event.data)}; subscribing again`);
      setTimeout(() => socket.send(JSON.stringify({ type: "subscribe", repairId })), 200);
      return;
    }
    if (frame.type !== "status" || frame.event !== "REPAIR_IN_PROGRESS" || frame.id !== repairId) {
      frameCounts.other++;
      return;
    }
    if (seen.has(frame.eventId)) {
      frameCounts.duplicates++;
      return;
    }
    seen.add(frame.eventId);
    const entry = pending.get(`${repairId}:${frame.detail?.status}:${frame.detail?.progress}`);
    if (!entry || entry.frameAt) {
      frameCounts.unmatched++;
      return;
    }
    entry.frameAt = at;
    frameCounts.matched++;
  };
  await new Promise<void>((resolve, reject) => {
    socket.onopen = () => resolve();
    socket.onerror = () => reject(new Error(`websocket ${i} failed`));
  });
  // Before commit 83b553f the gateway dropped, unanswered, a message that arrived before its async `open` had
  // registered the connection (http/status-socket.ts); so ask again every 500 ms until `subscribed` comes
  // (subscribing twice to the same id is one subscription). The count is printed: 0 with the fixed gateway.
  let resubscribes = -1;
  await waitUntil(
    () => {
      if (subscribed) return true;
      resubscribes++;
      socket.send(JSON.stringify({ type: "subscribe", repairId }));
      return false;
    },
    { timeoutMs: 30_000, intervalMs: 500, what: `socket ${i} subscribed` },
  );
  if (resubscribes > 0) unanswered.push(resubscribes);
  return { repairId, step: 0, busy: false, socket };
}

const repairs: Repair[] = [];

/** Closes the sockets, stops the service and removes its namespace, and the baseline's topic. */
async function tearDown(): Promise<CleanUpReport> {
  for (const r of repairs) r.socket.close();
  const report = await service.stop();
  await producer.disconnect();
  await consumer.disconnect();
  await deleteTopics(kafka, [topic]).catch((error) => console.error(`[e2e] ${String(error)}`));
  return report;
}

/** Subscribe messages the gateway never answered (sent again), per socket that needed any. */
const unanswered: number[] = [];
const setUpStarted = performance.now();
try {
  for (let i = 0; i < REPAIRS; i += 5) {
    repairs.push(
      ...(await Promise.all(Array.from({ length: Math.min(5, REPAIRS - i) }, (_, j) => setUpRepair(i + j)))),
    );
  }
} catch (error) {
  console.error(`[e2e] set-up failed: ${String(error)}; cleaning up`);
  console.error(`[e2e] clean-up: ${JSON.stringify(await tearDown())}`);
  process.exit(1);
}
const setUpMs = performance.now() - setUpStarted;
console.error(
  `[e2e] ${REPAIRS} repairs started and subscribed in ${fmt(setUpMs)} ms; sockets whose first subscribe went unanswered: ${unanswered.length}`,
);

interface RoundResult {
  sent: number;
  rate: number;
  skippedTicks: number;
  statuses: StatusCounts;
  /** Send -> frame (pitstop) or send -> consumed (kafka). */
  p50: number;
  p99: number;
  max: number;
  /** Send -> HTTP answer (pitstop) or send -> producer ack (kafka). */
  answerP50: number;
  answerP99: number;
  /** Frame after the HTTP answer (pitstop): its p50/p99, and frames that came before the answer. */
  afterAnswerP50?: number;
  afterAnswerP99?: number;
  beforeAnswer?: number;
  lost: number;
  latencies: number[];
  answers: number[];
  cpu: CpuUse;
  lag: { p50: number; p99: number; max: number };
}

/** Calls `fire(i)` for i = 0..count-1 on a fixed schedule (RATE per second); returns ms taken and ticks skipped. */
async function paced(count: number, fire: (i: number) => boolean): Promise<{ ms: number; skipped: number }> {
  const interval = 1000 / RATE;
  const start = performance.now();
  let skipped = 0;
  for (let i = 0; i < count; i++) {
    const wait = start + i * interval - performance.now();
    if (wait > 0) await Bun.sleep(wait); // pacing to the schedule; a late tick fires at once
    if (!fire(i)) skipped++;
  }
  return { ms: performance.now() - start, skipped };
}

let roundNo = 0;

async function kafkaRound(count: number): Promise<RoundResult> {
  const round = `r${++roundNo}`;
  const ids: string[] = [];
  const statuses = new StatusCounts();
  const cpu = cpuMeter();
  const lag = loopLag();
  const { ms } = await paced(count, (i) => {
    const id = `${round}:${i}`;
    const entry = { sentAt: now(), ackedAt: 0, consumedAt: 0 };
    arrivals.set(id, entry);
    ids.push(id);
    producer.send({ topic, acks: -1, messages: [{ key: `k${i % REPAIRS}`, value: id }] }).then(
      () => {
        entry.ackedAt = now();
        statuses.add(200);
      },
      (error) => {
        statuses.add(0);
        console.error(`[e2e] kafka send failed: ${String(error)}`);
      },
    );
    return true;
  });
  const done = () => ids.every((id) => (arrivals.get(id)?.consumedAt ?? 0) > 0);
  await waitUntil(done, { timeoutMs: SETTLE_MS, intervalMs: 5, what: `${round} consumed` }).catch(() => {});
  const used = cpu();
  const lagged = lag();
  const latencies: number[] = [];
  const answers: number[] = [];
  let lost = 0;
  for (const id of ids) {
    const e = arrivals.get(id);
    if (!e?.consumedAt) lost++;
    else latencies.push(e.consumedAt - e.sentAt);
    if (e?.ackedAt) answers.push(e.ackedAt - e.sentAt);
    arrivals.delete(id);
  }
  return baselineResult({ count, ms, statuses, latencies, answers, lost, cpu: used, lag: lagged });
}

/** A baseline round's result (no skipped ticks: a baseline sends on every tick). */
function baselineResult(r: {
  count: number;
  ms: number;
  statuses: StatusCounts;
  latencies: number[];
  answers: number[];
  lost: number;
  cpu: RoundResult["cpu"];
  lag: RoundResult["lag"];
}): RoundResult {
  return {
    sent: r.count,
    rate: Math.round((r.count / (r.ms / 1000)) * 10) / 10,
    skippedTicks: 0,
    statuses: r.statuses,
    p50: percentile(r.latencies, 50),
    p99: percentile(r.latencies, 99),
    max: percentile(r.latencies, 100),
    answerP50: percentile(r.answers, 50),
    answerP99: percentile(r.answers, 99),
    lost: r.lost,
    latencies: r.latencies,
    answers: r.answers,
    cpu: r.cpu,
    lag: r.lag,
  };
}

const commitSql = (await import("postgres")).default(config.postgres.url, {
  max: 10,
  onnotice: () => {},
  connection: { application_name: "bench-commit" },
});
const probeTable = `bench_commit_probe_${shortId()}`;
await commitSql.unsafe(
  `create table ${probeTable} (id bigserial primary key, at timestamptz not null default now(), v text)`,
);

async function postgresRound(count: number): Promise<RoundResult> {
  const statuses = new StatusCounts();
  const cpu = cpuMeter();
  const lag = loopLag();
  const latencies: number[] = [];
  const pending: Promise<void>[] = [];
  const { ms } = await paced(count, (i) => {
    const sentAt = now();
    pending.push(
      commitSql
        .begin((tx) => tx.unsafe(`insert into ${probeTable} (v) values ($1)`, [String(i)]))
        .then(
          () => {
            latencies.push(now() - sentAt);
            statuses.add(200);
          },
          (error) => {
            statuses.add(0);
            console.error(`[e2e] postgres commit failed: ${String(error)}`);
          },
        ),
    );
    return true;
  });
  await Promise.all(pending);
  const lost = count - latencies.length;
  return baselineResult({ count, ms, statuses, latencies, answers: latencies, lost, cpu: cpu(), lag: lag() });
}

let next = 0;

async function pitstopRound(count: number): Promise<RoundResult> {
  const round = `r${++roundNo}`;
  const keys: string[] = [];
  const statuses = new StatusCounts();
  const cpu = cpuMeter();
  const lag = loopLag();
  const { ms, skipped } = await paced(count, () => {
    let repair: Repair | undefined;
    for (let tried = 0; tried < repairs.length && !repair; tried++) {
      const candidate = repairs[next++ % repairs.length] as Repair;
      if (!candidate.busy && candidate.step < STEPS_PER_REPAIR) repair = candidate;
    }
    if (!repair) return false;
    const r = repair;
    const step = r.step++;
    const stage = STAGES[Math.floor(step / 100)] as string;
    const progress = (step % 100) + 1;
    const key = `${r.repairId}:${stage}:${progress}`;
    const entry: Pending = { sentAt: now(), answeredAt: 0, status: 0, frameAt: 0, round };
    pending.set(key, entry);
    keys.push(key);
    r.busy = true;
    fetch(`${service.baseUrl}/api/v1/repairs/${r.repairId}/progress`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${technician}` },
      body: JSON.stringify({ status: stage, progress }),
    })
      .then(async (response) => {
        await response.arrayBuffer();
        entry.status = response.status;
      })
      .catch((error) => {
        console.error(`[e2e] progress request failed: ${String(error)}`);
      })
      .finally(() => {
        entry.answeredAt = now();
        statuses.add(entry.status);
        r.busy = false;
      });
    return true;
  });
  const done = () =>
    keys.every((k) => {
      const e = pending.get(k);
      return e && e.answeredAt > 0 && (e.frameAt > 0 || (e.status !== 200 && e.status !== 202));
    });
  await waitUntil(done, { timeoutMs: SETTLE_MS, intervalMs: 5, what: `${round} frames` }).catch(() => {});
  const used = cpu();
  const lagged = lag();
  const latencies: number[] = [];
  const answers: number[] = [];
  const afterAnswer: number[] = [];
  let beforeAnswer = 0;
  let lost = 0;
  for (const k of keys) {
    const e = pending.get(k) as Pending;
    if (e.answeredAt) answers.push(e.answeredAt - e.sentAt);
    if (!e.frameAt) {
      if (e.status === 200 || e.status === 202) lost++; // accepted, yet no frame
      continue;
    }
    latencies.push(e.frameAt - e.sentAt);
    if (e.answeredAt) {
      afterAnswer.push(e.frameAt - e.answeredAt);
      if (e.frameAt < e.answeredAt) beforeAnswer++;
    }
  }
  return {
    sent: keys.length,
    rate: Math.round((keys.length / (ms / 1000)) * 10) / 10,
    skippedTicks: skipped,
    statuses,
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
    max: percentile(latencies, 100),
    answerP50: percentile(answers, 50),
    answerP99: percentile(answers, 99),
    afterAnswerP50: percentile(afterAnswer, 50),
    afterAnswerP99: percentile(afterAnswer, 99),
    beforeAnswer,
    lost,
    latencies,
    answers,
    cpu: used,
    lag: lagged,
  };
}

const KAFKA = "kafkajs produce -> consume (scratch topic)";
const POSTGRES = "postgres commit (begin, insert one row, commit)";
const PITSTOP = "pitstop POST progress -> WebSocket frame";

console.error(`[e2e] warm-up: ${WARMUP} sends each at ${RATE}/s`);
const warmKafka = await kafkaRound(WARMUP);
await postgresRound(WARMUP);
const warmPitstop = await pitstopRound(WARMUP);
console.error(
  `[e2e] warm-up: kafka p50 ${fmt(warmKafka.p50, 2)} ms, pitstop p50 ${fmt(warmPitstop.p50, 2)} ms (lost ${warmPitstop.lost})`,
);
const measuredFrom = roundNo; // rounds after this one are measured

let results: Map<string, RoundResult[]>;
let cleanUp: CleanUpReport;
let hops: { name: string; values: number[] }[] = [];
let hopsCount = 0;
try {
  results = await interleave<RoundResult>(
    ROUNDS,
    [
      { name: KAFKA, run: () => kafkaRound(PER_ROUND) },
      { name: POSTGRES, run: () => postgresRound(PER_ROUND) },
      { name: PITSTOP, run: () => pitstopRound(PER_ROUND) },
    ],
    (name, round, r) =>
      console.error(
        `[e2e] round ${round} ${name}: ${r.sent} sent at ${fmt(r.rate)}/s (skipped ticks ${r.skippedTicks}); p50 ${fmt(r.p50, 2)} p99 ${fmt(r.p99, 2)} max ${fmt(r.max, 2)} ms; answer p50 ${fmt(r.answerP50, 2)} p99 ${fmt(r.answerP99, 2)}; lost ${r.lost}; statuses ${[...r.statuses.counts].map(([s, n]) => `${s}:${n}`).join(", ")}`,
      ),
  );
  ({ stages: hops, complete: hopsCount } = await timeline(
    service.system.routes.sql,
    service.namespace,
    measuredFrom,
  ));
} finally {
  cleanUp = await tearDown();
  await commitSql.unsafe(`drop table if exists ${probeTable}`).catch(() => {});
  await commitSql.end({ timeout: 5 });
}
console.error(`[e2e] clean-up: ${JSON.stringify(cleanUp)}`);
const codeAtEnd = codeState();
const finishedAt = new Date();

// --- report
const rows: (string | number)[][] = [];
for (let round = 0; round < ROUNDS; round++) {
  for (const name of [KAFKA, POSTGRES, PITSTOP]) {
    const r = results.get(name)?.[round] as RoundResult;
    const pitstop = name === PITSTOP;
    rows.push([
      round + 1,
      name,
      r.sent,
      fmt(r.rate),
      pitstop
        ? `${r.statuses.get(200)} / ${r.statuses.get(409)} / ${r.statuses.get(202)} / ${r.statuses.other([200, 409, 202])}`
        : `${r.statuses.get(200)} ${name === KAFKA ? "acked" : "committed"} / ${r.statuses.other([200])} failed`,
      fmt(r.p50, 2),
      fmt(r.p99, 2),
      fmt(r.max, 2),
      r.lost,
      `${fmt(r.answerP50, 2)} / ${fmt(r.answerP99, 2)}`,
      pitstop
        ? `${fmt(r.afterAnswerP50 ?? 0, 2)} / ${fmt(r.afterAnswerP99 ?? 0, 2)} (${r.beforeAnswer} before)`
        : "",
      pitstop ? r.skippedTicks : "",
      `${r.cpu.process} / ${r.cpu.machine}`,
      `${fmt(r.lag.p50, 1)} / ${fmt(r.lag.p99, 1)} / ${fmt(r.lag.max, 1)}`,
    ]);
  }
}
const summary = [KAFKA, POSTGRES, PITSTOP].map((name) => {
  const list = results.get(name) ?? [];
  const all = list.flatMap((r) => r.latencies);
  const answers = list.flatMap((r) => r.answers);
  return [
    name,
    all.length,
    fmt(median(list.map((r) => r.p50)), 2),
    fmt(median(list.map((r) => r.p99)), 2),
    fmt(percentile(all, 50), 2),
    fmt(percentile(all, 99), 2),
    fmt(percentile(answers, 50), 2),
    fmt(percentile(answers, 99), 2),
    list.reduce((n, r) => n + r.lost, 0),
  ];
});

const out: string[] = [];
out.push("## Service center: end-to-end latency, HTTP command -> WebSocket frame");
out.push("");
out.push(machineNote());
out.push("");
out.push(
  `Runtime measured: ${codeAtEnd}${sameCode(codeAtStart, codeAtEnd) ? "" : ` — CHANGED during the run (at start: ${codeAtStart})`}.`,
);
out.push("");
out.push(
  `Run ${startedAt.toISOString()} to ${finishedAt.toISOString()} (UTC). ${RATE} requests/s for ${SECONDS} s per contender, in ${ROUNDS} interleaved rounds of ${PER_ROUND}; warm-up ${WARMUP} sends each before round 1 (not counted). Pitstop: namespace ${service.namespace}, ${PARTITIONS} partitions per topic, ready in ${fmt(service.startMs)} ms; ${REPAIRS} repairs (booked, started, each watched by its customer's WebSocket) set up in ${fmt(setUpMs)} ms (sockets whose first subscribe the gateway never answered, sent again: ${unanswered.length}); relay lock held before start by: ${service.relayLockBefore}. Kafka baseline: topic ${topic} (${PARTITIONS} partitions, deleted), ${REPAIRS} keys. Other \`bun test\` runs seen during the run: ${othersSeen()}.`,
);
out.push("");
out.push(
  table(
    [
      "round",
      "contender",
      "sent",
      "sent/s",
      "200 / 409 / 202 / other",
      "p50 ms",
      "p99 ms",
      "max ms",
      "lost",
      "HTTP answer (kafka: ack) p50 / p99 ms",
      "frame after answer p50 / p99 ms",
      "skipped ticks",
      "CPU % process / machine",
      "event-loop lag p50 / p99 / max ms",
    ],
    rows,
  ),
);
out.push("");
out.push(
  table(
    [
      "contender",
      "samples",
      "median of rounds' p50 ms",
      "median of rounds' p99 ms",
      "p50 ms, all samples",
      "p99 ms, all samples",
      "answer / ack p50 ms, all",
      "answer / ack p99 ms, all",
      "lost",
    ],
    summary,
  ),
);
out.push("");
{
  const p99Of = (name: string) =>
    percentile(
      (results.get(name) ?? []).flatMap((r) => r.latencies),
      99,
    );
  const bound = p99Of(KAFKA) + p99Of(POSTGRES) + 10;
  const got = p99Of(PITSTOP);
  out.push(
    `Goal (issue 10): pitstop p99 <= Kafka round trip p99 + Postgres commit p99 + 10 ms = ${fmt(p99Of(KAFKA), 2)} + ${fmt(p99Of(POSTGRES), 2)} + 10 = ${fmt(bound, 2)} ms (all samples); pitstop p99 ${fmt(got, 2)} ms: **${got <= bound ? "met" : "missed"}**.`,
  );
  out.push("");
}
if (hopsCount > 0) {
  out.push(
    `Where the time goes (pitstop, ${hopsCount} commands of the measured rounds whose REPAIR_IN_PROGRESS outbox row and frame were both found; \`created_at\` = start of the transaction that committed the turn, with group commit the batch's; \`published_at\` = when the relay marked the row, after Kafka acknowledged it). ms:`,
  );
  out.push("");
  out.push(
    table(
      ["stage", "p50", "p99", "mean"],
      hops.map((stage) => [
        stage.name,
        fmt(percentile(stage.values, 50), 2),
        fmt(percentile(stage.values, 99), 2),
        fmt(stage.values.reduce((a, b) => a + b, 0) / Math.max(1, stage.values.length), 2),
      ]),
    ),
  );
  out.push("");
}
out.push(
  `WebSocket messages: ${frameCounts.matched} REPAIR_IN_PROGRESS frames matched to a command (warm-up included), ${frameCounts.duplicates} duplicates (same eventId), ${frameCounts.unmatched} unmatched, ${frameCounts.other} other messages. Kafka baseline duplicates: ${kafkaDuplicates}. Clean-up: ${cleanUp.unpublishedOutboxRows} unpublished outbox rows deleted before ${cleanUp.topicsDeleted} topics; rows deleted ${Object.entries(
    cleanUp.rows,
  )
    .map(([k, v]) => `${k} ${v}`)
    .join(", ")}.`,
);
out.push("");
out.push(`wall time ${elapsed()}`);
console.log(out.join("\n"));
process.exit(0);

/**
 * Each measured command's path through the outbox: send -> the repair's turn (its REPAIR_IN_PROGRESS row
 * created) -> the row published by the relay -> the frame received; and the HTTP answer after the turn.
 */
async function timeline(
  sql: postgres.Sql,
  namespace: string,
  afterRound: number,
): Promise<{ stages: { name: string; values: number[] }[]; complete: number }> {
  const rows = await sql<{ key: string; created: number; published: number | null }[]>`
    select (value::jsonb->'payload'->>'repairId') || ':' || (value::jsonb->'payload'->>'status') || ':' ||
             (value::jsonb->'payload'->>'progress') as key,
           (extract(epoch from created_at) * 1000)::float8 as created,
           (extract(epoch from published_at) * 1000)::float8 as published
    from outbox
    where topic = ${`${namespace}.repair-events`} and value::jsonb->>'eventType' = 'REPAIR_IN_PROGRESS'`;
  const names = [
    "HTTP request sent -> repair turn (PROGRESS) in its transaction",
    "-> REPAIR_IN_PROGRESS published to repair-events (commit, relay)",
    "-> frame received (status reactor: consume, state read, NATS; gateway; socket)",
    "total (send -> frame)",
    "turn in its transaction -> HTTP answer received (commit, NATS reply, HTTP)",
  ];
  const stages = names.map((name) => ({ name, values: [] as number[] }));
  let complete = 0;
  for (const row of rows) {
    const e = pending.get(row.key);
    if (!e?.frameAt || !row.published || Number(e.round.slice(1)) <= afterRound) continue;
    complete++;
    stages[0]?.values.push(row.created - e.sentAt);
    stages[1]?.values.push(row.published - row.created);
    stages[2]?.values.push(e.frameAt - row.published);
    stages[3]?.values.push(e.frameAt - e.sentAt);
    if (e.answeredAt) stages[4]?.values.push(e.answeredAt - row.created);
  }
  return { stages, complete };
}
