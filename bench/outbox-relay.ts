/**
 * Benchmark 4: the outbox relay (runtime/outbox-relay.ts), in two parts, each interleaved with a baseline.
 *
 * Drain (throughput): N rows are committed to the outbox while no relay runs, then an OutboxRelay starts and
 * publishes them; rows/s from its start to the last row marked published. Baseline: a kafkajs producer with the
 * relay's settings (idempotent, one request in flight, acks=all, 500 records per request) sending the same
 * number of records from memory: Kafka's own publish rate, without Postgres.
 *
 * Steady (lag): N rows written through committed transactions at a steady rate (10 rows per transaction), each
 * row's value an envelope carrying its insert time. The relay runs, warmed up by one row published first (its
 * producer connected, as in a running host), woken by notify() after each commit as the runtime's turns do; a
 * consumer of the target topic computes lag = consume time - insert time (and consume time - commit time). Baseline: the same transactions with the rows already marked published, each
 * transaction's records sent straight to Kafka by the writer after its commit (no outbox: what a service that
 * publishes after committing would see).
 *
 * The relay takes a global advisory lock per database (only one relay publishes at a time). If another relay
 * holds it (a dev host on this database), this benchmark says who holds it and stops instead of waiting.
 *
 *   node_modules/.bin/bun bench/outbox-relay.ts
 *
 * Knobs: BENCH_ROWS (20000), BENCH_RATE (rows/s written in the steady part, 2000), BENCH_ROUNDS (3).
 */
import type { Kafka, Producer } from "kafkajs";
import { openDatabase } from "../db/index.ts";
import { createLogger, OutboxRelay } from "../runtime/index.ts";
import { encodeEnvelope, newEnvelope } from "../topics/index.ts";
import {
  codeState,
  deleteTopics,
  fmt,
  freshTopic,
  interleave,
  machineNote,
  median,
  percentile,
  perSecond,
  ROUNDS,
  ratio,
  sameCode,
  setup,
  stopwatch,
  table,
  waitUntil,
} from "./support.ts";

const elapsed = stopwatch();
const codeAtStart = codeState();
const ROWS = Number(process.env.BENCH_ROWS ?? 20_000);
const RATE = Number(process.env.BENCH_RATE ?? 2000);
const ROWS_PER_TX = 10;
const CHUNK = 500; // the relay's batch size
const KEYS = 1000;
const RELAY_LOCK = 7_150_002; // runtime/outbox-relay.ts
const LEADER_WAIT_MS = 15_000;

const { config, kafka } = await setup("relay");
const database = openDatabase(config.postgres.url, { max: 10 });
const { sql } = database;
const log = createLogger("silent");
const topic = await freshTopic(kafka, "relay", 10);

/** Who holds the relay's advisory lock in this database, if anyone. */
async function lockHolder(): Promise<string | undefined> {
  const rows = await sql<{ pid: number; application_name: string; backend_start: string }[]>`
    select a.pid, a.application_name, a.backend_start::text
    from pg_locks l join pg_stat_activity a on a.pid = l.pid
    where l.locktype = 'advisory' and l.granted and l.classid = 0 and l.objid = ${RELAY_LOCK} and l.objsubid = 1
      and l.database = (select oid from pg_database where datname = current_database())`;
  const row = rows[0];
  return row ? `pid ${row.pid} (${row.application_name}, session since ${row.backend_start})` : undefined;
}

class LockHeldError extends Error {}

async function unpublished(): Promise<number> {
  const [row] = await sql<{ n: string }[]>`select count(*) as n from outbox where published_at is null`;
  return Number(row?.n ?? 0);
}

const holder = await lockHolder();
const backlog = await unpublished();
console.error(
  `[relay] target ${topic}; relay lock holder before start: ${holder ?? "none"}; unpublished outbox rows: ${backlog}`,
);
if (holder) {
  console.log(
    `## Outbox relay\n\nNot measured: the relay lock (${RELAY_LOCK}) in database ${new URL(config.postgres.url).pathname.slice(1)} is held by ${holder}; only one relay publishes per database.`,
  );
  await deleteTopics(kafka, [topic]);
  process.exit(2);
}

// --- the consumer of the target topic: one for the whole run; records carry their round and sequence number.
interface Arrivals {
  consumedAt: Float64Array;
  received: number;
  duplicates: number;
}
const rounds = new Map<string, Arrivals>();
const now = () => performance.timeOrigin + performance.now(); // epoch ms, sub-ms resolution
const consumer = kafka.consumer({ groupId: `bench-relay-${topic}`, maxWaitTimeInMs: 100 });
let joined = false;
consumer.on(consumer.events.GROUP_JOIN, () => {
  joined = true;
});
await consumer.connect();
await consumer.subscribe({ topic, fromBeginning: true });
await consumer.run({
  eachBatch: async ({ batch }) => {
    const at = now();
    for (const message of batch.messages) {
      const envelope = JSON.parse(message.value?.toString() ?? "{}") as {
        payload: { round: string; seq: number };
      };
      const arrivals = rounds.get(envelope.payload.round);
      if (!arrivals) continue;
      if (arrivals.consumedAt[envelope.payload.seq] !== 0) {
        arrivals.duplicates++;
        continue;
      }
      arrivals.consumedAt[envelope.payload.seq] = at;
      arrivals.received++;
    }
  },
});
await waitUntil(() => joined, { timeoutMs: 30_000, intervalMs: 20, what: "the measuring consumer to join" });

function expectRound(round: string): Arrivals {
  const arrivals = { consumedAt: new Float64Array(ROWS), received: 0, duplicates: 0 };
  rounds.set(round, arrivals);
  return arrivals;
}

function envelopeOf(round: string, seq: number, insertedAt: number): { key: string; value: string } {
  const key = `k${seq % KEYS}`;
  const value = encodeEnvelope(
    newEnvelope({ eventType: "BENCH_ROW", entityId: key, payload: { round, seq, insertedAt } }),
  ).toString("utf8");
  return { key, value };
}

async function connectProducer(): Promise<Producer> {
  // The relay's producer settings (runtime/outbox-relay.ts connectProducer).
  const producer = kafka.producer({
    idempotent: true,
    maxInFlightRequests: 1,
    retry: { retries: 3, initialRetryTime: 200, maxRetryTime: 1000 },
  });
  await producer.connect();
  return producer;
}

/** Starts a relay and waits (bounded) until it holds the lock; if another relay holds it, says so. */
async function startRelay(k: Kafka): Promise<OutboxRelay> {
  const relay = new OutboxRelay({ kafka: k, databaseUrl: config.postgres.url, log });
  relay.start();
  try {
    await waitUntil(() => relay.stats.leader, {
      timeoutMs: LEADER_WAIT_MS,
      intervalMs: 1,
      what: "the relay to take its lock",
    });
  } catch {
    const who = await lockHolder();
    await relay.stop();
    throw new LockHeldError(
      `the relay lock was not granted within ${LEADER_WAIT_MS} ms; held by ${who ?? "?"}`,
    );
  }
  return relay;
}

interface DrainResult {
  rows: number;
  msToPublished: number;
  rate: number;
  msToConsumed: number;
  duplicates: number;
}

let roundNo = 0;

async function drainRaw(): Promise<DrainResult> {
  const round = `drain-raw-${++roundNo}`;
  const arrivals = expectRound(round);
  const messages = Array.from({ length: ROWS }, (_, seq) => envelopeOf(round, seq, now()));
  const started = performance.now();
  const producer = await connectProducer();
  for (let i = 0; i < messages.length; i += CHUNK) {
    await producer.send({ topic, acks: -1, messages: messages.slice(i, i + CHUNK) });
  }
  const published = performance.now();
  await waitUntil(() => arrivals.received >= ROWS, { timeoutMs: 60_000, what: `${round} consumed` });
  const consumed = performance.now();
  await producer.disconnect();
  return {
    rows: ROWS,
    msToPublished: published - started,
    rate: perSecond(ROWS, published - started),
    msToConsumed: consumed - started,
    duplicates: arrivals.duplicates,
  };
}

async function drainRelay(): Promise<DrainResult> {
  const round = `drain-relay-${++roundNo}`;
  const arrivals = expectRound(round);
  const before = await unpublished();
  for (let i = 0; i < ROWS; i += CHUNK) {
    const rows = Array.from({ length: Math.min(CHUNK, ROWS - i) }, (_, j) => {
      const { key, value } = envelopeOf(round, i + j, now());
      return { topic, message_key: key, value };
    });
    await sql`insert into outbox ${sql(rows)}`;
  }
  const expected = before + ROWS;
  const started = performance.now();
  const relay = await startRelay(kafka);
  let published = 0;
  try {
    published = await waitUntil(() => (relay.stats.published >= expected ? performance.now() : 0), {
      timeoutMs: 90_000,
      intervalMs: 1,
      what: `${round}: the relay to publish ${expected} rows`,
    });
    await waitUntil(() => arrivals.received >= ROWS, { timeoutMs: 60_000, what: `${round} consumed` });
  } finally {
    await relay.stop();
  }
  const consumed = performance.now();
  if (relay.stats.errors > 0) console.error(`[relay] ${round}: relay errors ${relay.stats.errors}`);
  return {
    rows: ROWS,
    msToPublished: published - started,
    rate: perSecond(ROWS, published - started),
    msToConsumed: consumed - started,
    duplicates: arrivals.duplicates,
  };
}

interface SteadyResult {
  rows: number;
  writeRate: number;
  publishRate: number;
  lagP50: number;
  lagP99: number;
  lagMax: number;
  commitLagP50: number;
  commitLagP99: number;
  duplicates: number;
}

/**
 * Writes ROWS rows at RATE rows/s, ROWS_PER_TX per committed transaction, paced against a schedule (a late
 * writer catches up without sleeping). `afterCommit` runs after each commit with the transaction's records.
 */
async function steadyWrite(
  round: string,
  markPublished: boolean,
  afterCommit: (messages: { key: string; value: string }[]) => Promise<void> | void,
) {
  const insertedAt = new Float64Array(ROWS);
  const committedAt = new Float64Array(ROWS);
  const intervalMs = (ROWS_PER_TX / RATE) * 1000;
  const started = performance.now();
  for (let tx = 0, seq = 0; seq < ROWS; tx++) {
    const due = started + tx * intervalMs;
    const wait = due - performance.now();
    if (wait > 0) await Bun.sleep(wait); // pacing the writer to its schedule
    const first = seq;
    const messages: { key: string; value: string }[] = [];
    const rows: Record<string, string>[] = [];
    for (; seq < Math.min(ROWS, first + ROWS_PER_TX); seq++) {
      insertedAt[seq] = now();
      const message = envelopeOf(round, seq, insertedAt[seq] as number);
      messages.push(message);
      rows.push(
        markPublished
          ? { topic, message_key: message.key, value: message.value, published_at: new Date().toISOString() }
          : { topic, message_key: message.key, value: message.value },
      );
    }
    await sql.begin((t) => t`insert into outbox ${t(rows)}`);
    const at = now();
    committedAt.fill(at, first, seq);
    await afterCommit(messages);
  }
  const writeMs = performance.now() - started;
  return { insertedAt, committedAt, writeMs };
}

function steadyResult(
  arrivals: Arrivals,
  write: { insertedAt: Float64Array; committedAt: Float64Array; writeMs: number },
): SteadyResult {
  const lag: number[] = [];
  const commitLag: number[] = [];
  let lastConsumed = 0;
  for (let seq = 0; seq < ROWS; seq++) {
    const at = arrivals.consumedAt[seq] as number;
    lag.push(at - (write.insertedAt[seq] as number));
    commitLag.push(at - (write.committedAt[seq] as number));
    lastConsumed = Math.max(lastConsumed, at);
  }
  // Where the slow rows are: the worst lag in each window of 1,000 rows (stderr, for reading the run).
  const windows: string[] = [];
  for (let i = 0; i < ROWS; i += 1000) windows.push(Math.max(...lag.slice(i, i + 1000)).toFixed(0));
  console.error(`[relay]   max lag per 1,000 rows (ms): ${windows.join(" ")}`);
  return {
    rows: ROWS,
    writeRate: perSecond(ROWS, write.writeMs),
    publishRate: perSecond(ROWS, lastConsumed - (write.insertedAt[0] as number)),
    lagP50: percentile(lag, 50),
    lagP99: percentile(lag, 99),
    lagMax: percentile(lag, 100),
    commitLagP50: percentile(commitLag, 50),
    commitLagP99: percentile(commitLag, 99),
    duplicates: arrivals.duplicates,
  };
}

async function steadyDirect(): Promise<SteadyResult> {
  const round = `steady-direct-${++roundNo}`;
  const arrivals = expectRound(round);
  const producer = await connectProducer();
  const write = await steadyWrite(round, true, (messages) =>
    producer.send({ topic, acks: -1, messages }).then(() => {}),
  );
  await waitUntil(() => arrivals.received >= ROWS, { timeoutMs: 60_000, what: `${round} consumed` });
  await producer.disconnect();
  return steadyResult(arrivals, write);
}

async function steadyRelay(): Promise<SteadyResult> {
  const round = `steady-relay-${++roundNo}`;
  const arrivals = expectRound(round);
  const relay = await startRelay(kafka);
  try {
    // Warm-up, as in a running host: one row published first, so the relay's producer is connected before the
    // measured rows (the drain part measures a cold start). The consumer ignores this row (no such round).
    const { key, value } = envelopeOf(`${round}-warmup`, 0, now());
    await sql`insert into outbox (topic, message_key, value) values (${topic}, ${key}, ${value})`;
    relay.notify();
    await waitUntil(() => relay.stats.published >= 1, {
      timeoutMs: 15_000,
      what: `${round}: warm-up row published`,
    });
    const write = await steadyWrite(round, false, () => relay.notify());
    await waitUntil(() => arrivals.received >= ROWS, { timeoutMs: 60_000, what: `${round} consumed` });
    if (relay.stats.errors > 0) console.error(`[relay] ${round}: relay errors ${relay.stats.errors}`);
    return steadyResult(arrivals, write);
  } finally {
    await relay.stop();
  }
}

let drain: Map<string, DrainResult[]>;
let steady: Map<string, SteadyResult[]>;
try {
  drain = await interleave<DrainResult>(
    ROUNDS,
    [
      { name: "kafkajs producer (relay settings, from memory)", run: drainRaw },
      { name: "OutboxRelay", run: drainRelay },
    ],
    (name, round, r) =>
      console.error(
        `[relay] drain round ${round} ${name}: ${r.rows} in ${fmt(r.msToPublished)} ms = ${fmt(r.rate)} rows/s (consumed after ${fmt(r.msToConsumed)} ms, duplicates ${r.duplicates})`,
      ),
  );
  steady = await interleave<SteadyResult>(
    ROUNDS,
    [
      { name: "publish after commit (no outbox)", run: steadyDirect },
      { name: "OutboxRelay", run: steadyRelay },
    ],
    (name, round, r) =>
      console.error(
        `[relay] steady round ${round} ${name}: written ${fmt(r.writeRate)} rows/s, published ${fmt(r.publishRate)} rows/s, lag p50 ${fmt(r.lagP50, 2)} p99 ${fmt(r.lagP99, 2)} max ${fmt(r.lagMax, 2)} ms`,
      ),
  );
} catch (error) {
  if (!(error instanceof LockHeldError)) throw error;
  console.log(`## Outbox relay\n\nNot measured: ${error.message}.`);
  await consumer.disconnect();
  await sql`delete from outbox where topic = ${topic}`;
  await database.close();
  await deleteTopics(kafka, [topic]);
  process.exit(2);
}

await consumer.disconnect();
const [left] = await sql<{ n: string }[]>`
  select count(*) as n from outbox where topic = ${topic} and published_at is null`;
await sql`delete from outbox where topic = ${topic}`;
await database.close();
await deleteTopics(kafka, [topic]);

const drainRows: (string | number)[][] = [];
for (let round = 0; round < ROUNDS; round++) {
  for (const [name, list] of drain) {
    const r = list[round] as DrainResult;
    drainRows.push([
      round + 1,
      name,
      r.rows,
      fmt(r.msToPublished),
      fmt(r.rate),
      fmt(r.msToConsumed),
      r.duplicates,
    ]);
  }
}
const steadyRows: (string | number)[][] = [];
for (let round = 0; round < ROUNDS; round++) {
  for (const [name, list] of steady) {
    const r = list[round] as SteadyResult;
    steadyRows.push([
      round + 1,
      name,
      r.rows,
      fmt(r.writeRate),
      fmt(r.publishRate),
      fmt(r.lagP50, 2),
      fmt(r.lagP99, 2),
      fmt(r.lagMax, 2),
      fmt(r.commitLagP50, 2),
      fmt(r.commitLagP99, 2),
      r.duplicates,
    ]);
  }
}
const med = <T>(list: T[] | undefined, pick: (r: T) => number) => median((list ?? []).map(pick));
const rawDrain = med(drain.get("kafkajs producer (relay settings, from memory)"), (r) => r.rate);
const relayDrain = med(drain.get("OutboxRelay"), (r) => r.rate);
const direct = steady.get("publish after commit (no outbox)");
const relayed = steady.get("OutboxRelay");

console.log(`## Outbox relay\n\n${machineNote()}\n`);
console.log(`Runtime measured: ${codeAtStart}.\n`);
const codeAtEnd = codeState();
if (!sameCode(codeAtEnd, codeAtStart))
  console.log(`**The runtime changed during this run**; at the end: ${codeAtEnd}.\n`);
console.log(
  `Drain: ${ROWS} rows committed before the relay starts. Steady: ${ROWS} rows at ${RATE} rows/s, ${ROWS_PER_TX} per transaction. Target topic: 10 partitions, ${KEYS} keys. ${ROUNDS} rounds each, interleaved. Unpublished outbox rows of others at start: ${backlog}; ours left unpublished at the end: ${left?.n}.\n`,
);
console.log("### Drain throughput\n");
console.log(
  table(
    ["round", "contender", "rows", "ms to last published", "rows/s", "ms to last consumed", "duplicates"],
    drainRows,
  ),
);
console.log();
console.log(
  table(
    ["contender", "median rows/s", "relay / baseline"],
    [
      ["kafkajs producer (relay settings, from memory)", fmt(rawDrain), ratio(relayDrain, rawDrain)],
      ["OutboxRelay", fmt(relayDrain), ""],
    ],
  ),
);
console.log("\n### Steady-rate publish lag (ms)\n");
console.log(
  table(
    [
      "round",
      "contender",
      "rows",
      "written rows/s",
      "published rows/s",
      "lag p50",
      "lag p99",
      "lag max",
      "from commit p50",
      "from commit p99",
      "duplicates",
    ],
    steadyRows,
  ),
);
console.log();
console.log(
  table(
    ["contender", "median published rows/s", "median lag p50", "median lag p99"],
    [
      [
        "publish after commit (no outbox)",
        fmt(med(direct, (r) => r.publishRate)),
        fmt(
          med(direct, (r) => r.lagP50),
          2,
        ),
        fmt(
          med(direct, (r) => r.lagP99),
          2,
        ),
      ],
      [
        "OutboxRelay",
        fmt(med(relayed, (r) => r.publishRate)),
        fmt(
          med(relayed, (r) => r.lagP50),
          2,
        ),
        fmt(
          med(relayed, (r) => r.lagP99),
          2,
        ),
      ],
    ],
  ),
);
console.log(`\nwall time ${elapsed()}`);
process.exit(0);
