/**
 * Shared pieces of the benchmarks: bringing the infrastructure up, unique names, producing the mailbox records
 * once, bounded waits, medians and percentiles, and markdown tables.
 *
 * Every benchmark measures its baseline in the same process run as the runtime, interleaved round by round
 * (baseline, runtime, baseline, runtime...), on the same topic data, and reports medians and their ratio.
 */
import { readFileSync } from "node:fs";
import { hostname } from "node:os";
import type { Kafka } from "kafkajs";
import { type Config, loadConfig } from "../config.ts";
import type { Database } from "../db/index.ts";
import { ensureInfra } from "../infra/index.ts";
import {
  type AnyActorDefinition,
  createHost,
  createLogger,
  type HostStats,
  type HostTuning,
} from "../runtime/index.ts";
import { createKafka, encodeEnvelope, newEnvelope, provisionTopics } from "../topics/index.ts";

/** Rounds of each contender (at least 3); BENCH_ROUNDS overrides. */
export const ROUNDS = Math.max(3, Number(process.env.BENCH_ROUNDS ?? 3) || 3);

/** Starts (or checks) Kafka, Postgres, Redis and NATS, migrates the dev database, provisions the catalogue. */
export async function setup(name: string): Promise<{ config: Config; kafka: Kafka }> {
  const config = loadConfig({ ...process.env, NODE_ENV: "development" }); // database "pitstop"
  await ensureInfra(config);
  const kafka = createKafka({ brokers: config.kafka.brokers, clientId: `bench-${name}-${shortId()}` });
  return { config, kafka };
}

/** 8 lower-case hex characters: unique enough per run, and valid in actor kinds, topics and groups. */
export function shortId(): string {
  return Bun.randomUUIDv7().replace(/-/g, "").slice(-8);
}

/** A fresh topic (partitions as given) that no other run uses. */
export async function freshTopic(kafka: Kafka, prefix: string, partitions = 10): Promise<string> {
  const name = `bench-${prefix}-${shortId()}`;
  await provisionTopics(kafka, [{ name, role: "mailbox", partitions }]);
  return name;
}

/** Writes STEP 1..perKey to each key (keys interleaved), `extra` adds payload fields; returns the record count. */
export async function produceSteps(
  kafka: Kafka,
  topic: string,
  keys: string[],
  perKey: number,
  extra: (key: string, seq: number) => Record<string, unknown> = () => ({}),
): Promise<number> {
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  let count = 0;
  try {
    for (let seq = 1; seq <= perKey; seq++) {
      const messages = keys.map((key) => ({
        key,
        value: encodeEnvelope(
          newEnvelope({ eventType: "STEP", entityId: key, payload: { seq, ...extra(key, seq) } }),
        ),
      }));
      for (let i = 0; i < messages.length; i += 2000) {
        await producer.send({ topic, acks: -1, messages: messages.slice(i, i + 2000) });
      }
      count += messages.length;
    }
  } finally {
    await producer.disconnect();
  }
  return count;
}

/** Polls `condition` until truthy or `timeoutMs` passes (then throws, naming `what`). */
export async function waitUntil<T>(
  condition: () => T | Promise<T>,
  { timeoutMs, intervalMs = 2, what }: { timeoutMs: number; intervalMs?: number; what: string },
): Promise<NonNullable<T>> {
  const deadline = performance.now() + timeoutMs;
  let last: T | undefined;
  while (performance.now() < deadline) {
    last = await condition();
    if (last) return last as NonNullable<T>;
    await Bun.sleep(intervalMs); // poll interval, not a race cover: the loop re-checks the condition
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (last: ${String(last)})`);
}

/**
 * Wraps `kafka.consumer` so that `onFirstRecord` runs when a consumer made from it first hands a non-empty batch
 * to its `eachBatch` (the runtime's GroupConsumer reads with eachBatch): the runtime's clock starts at the same
 * point as the baselines' (their first eachBatch / eachMessage call). Nothing else changes.
 */
export function onFirstBatch(kafka: Kafka, onFirstRecord: () => void): Kafka {
  const make = kafka.consumer.bind(kafka);
  let seen = false;
  kafka.consumer = (config) => {
    const consumer = make(config);
    const run = consumer.run.bind(consumer);
    consumer.run = (options) => {
      const eachBatch = options?.eachBatch;
      return run({
        ...options,
        eachBatch: eachBatch
          ? (payload) => {
              if (!seen && payload.batch.messages.length > 0) {
                seen = true;
                onFirstRecord();
              }
              return eachBatch(payload);
            }
          : undefined,
      });
    };
    return consumer;
  };
  return kafka;
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  if (sorted.length === 0) return Number.NaN;
  return sorted.length % 2
    ? (sorted[mid] as number)
    : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

/** Nearest-rank percentile (p in 0..100) of unsorted values. */
export function percentile(values: number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = Float64Array.from(values).sort();
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length)));
  return sorted[rank - 1] as number;
}

/** A rate with one decimal: figures are printed as measured, never rounded to a round number. */
export function perSecond(count: number, ms: number): number {
  return Math.round((count / (ms / 1000)) * 10) / 10;
}

export function fmt(value: number, decimals = 1): string {
  return value.toLocaleString("en-US", { minimumFractionDigits: decimals, maximumFractionDigits: decimals });
}

export function ratio(a: number, b: number): string {
  return `${(a / b).toFixed(3)}x`;
}

/** A markdown table. */
export function table(headers: string[], rows: (string | number)[][]): string {
  const line = (cells: (string | number)[]) => `| ${cells.map(String).join(" | ")} |`;
  return [line(headers), line(headers.map(() => "---")), ...rows.map(line)].join("\n");
}

/** One line saying where and when this ran, for the record. */
export function machineNote(): string {
  const cpus = navigator.hardwareConcurrency;
  return `${new Date().toISOString()} on ${hostname()} (${cpus} cores, shared), Bun ${Bun.version}`;
}

const ROOT = `${import.meta.dir}/..`;

/**
 * Which runtime was measured: the commit, the runtime/ files changed or added since it (the runtime is being
 * edited by others while benchmarks run), and a digest of runtime/*.ts (equal digests: the same code).
 * Read-only git commands only.
 */
export function codeState(): string {
  const git = (...args: string[]) =>
    new TextDecoder().decode(Bun.spawnSync(["git", ...args], { cwd: ROOT }).stdout).trim();
  const head = git("rev-parse", "--short", "HEAD");
  const changed = git("status", "--porcelain", "--", "runtime")
    .split("\n")
    .filter(Boolean)
    .map((line) => line.trim());
  const hasher = new Bun.CryptoHasher("sha256");
  const files = [...new Bun.Glob("runtime/*.ts").scanSync({ cwd: ROOT })].sort();
  for (const file of files) {
    hasher.update(file);
    hasher.update(readFileSync(`${ROOT}/${file}`));
  }
  const digest = hasher.digest("hex").slice(0, 12);
  return `HEAD ${head}; runtime/ vs HEAD: ${changed.length ? changed.join(", ") : "clean"}; runtime/*.ts digest ${digest}`;
}

/** Whether two codeState() lines describe the same runtime code (same digest; a new commit of it is the same). */
export function sameCode(a: string, b: string): boolean {
  return a.split("digest ")[1] === b.split("digest ")[1];
}

/** Extra host tuning from BENCH_TUNING (JSON), e.g. '{"groupCommit":false}'; empty when unset. */
export function tuningFromEnv(): Partial<HostTuning> {
  const raw = process.env.BENCH_TUNING;
  return raw ? (JSON.parse(raw) as Partial<HostTuning>) : {};
}

/** Runs the contenders round-robin `rounds` times: a, b, a, b... Returns each contender's results in order. */
export async function interleave<T>(
  rounds: number,
  contenders: { name: string; run: (round: number) => Promise<T> }[],
  report: (name: string, round: number, result: T) => void,
): Promise<Map<string, T[]>> {
  const results = new Map<string, T[]>(contenders.map((c) => [c.name, []]));
  for (let round = 1; round <= rounds; round++) {
    for (const contender of contenders) {
      const result = await contender.run(round);
      results.get(contender.name)?.push(result);
      report(contender.name, round, result);
    }
  }
  return results;
}

/** Elapsed wall time of the whole benchmark, for the record. */
export function stopwatch(): () => string {
  const started = performance.now();
  return () => `${((performance.now() - started) / 1000).toFixed(1)} s`;
}

/** One consumer's pass over a topic: records seen, ms from its first record to its last record handled. */
export interface PassResult {
  records: number;
  ms: number;
  rate: number;
  /** From connecting (group join, first fetch, lease taking included) to the last record handled. */
  msFromConnect: number;
  /** CPU over the same span (from connect): this process, and the whole machine (100 = every core busy). */
  cpu: CpuUse;
}

export interface CpuUse {
  /** This process's user + system time over wall time, in % of one core. */
  process: number;
  /** The machine's busy time (all processes: Postgres, Kafka, others' tests), in % of all cores. */
  machine: number;
}

function machineTicks(): { busy: number; total: number } {
  const line = readFileSync("/proc/stat", "utf8").split("\n")[0] as string;
  const ticks = line.trim().split(/\s+/).slice(1).map(Number);
  const idle = (ticks[3] ?? 0) + (ticks[4] ?? 0); // idle + iowait
  const total = ticks.reduce((a, b) => a + b, 0);
  return { busy: total - idle, total };
}

/** Starts measuring CPU use; call the returned function to read it. */
export function cpuMeter(): () => CpuUse {
  const wall = performance.now();
  const own = process.cpuUsage();
  const machine = machineTicks();
  return () => {
    const used = process.cpuUsage(own);
    const after = machineTicks();
    const ms = performance.now() - wall;
    return {
      process: Math.round(((used.user + used.system) / 1000 / ms) * 1000) / 10,
      machine:
        Math.round(((after.busy - machine.busy) / Math.max(1, after.total - machine.total)) * 1000) / 10,
    };
  };
}

/**
 * Raw kafkajs `eachBatch`, no work: resolve the batch's last offset and commit it (one commit per batch), then
 * count the batch as handled. A new consumer group reads the topic from the beginning.
 */
export async function eachBatchPass(kafka: Kafka, topic: string, expected: number): Promise<PassResult> {
  const consumer = kafka.consumer({ groupId: `bench-batch-${shortId()}`, maxWaitTimeInMs: 100 });
  let first = 0;
  let last = 0;
  let seen = 0;
  let used: CpuUse = { process: 0, machine: 0 };
  const connecting = performance.now();
  const cpu = cpuMeter();
  await consumer.connect();
  try {
    await consumer.subscribe({ topic, fromBeginning: true });
    await consumer.run({
      autoCommit: false,
      eachBatch: async ({ batch, resolveOffset, commitOffsetsIfNecessary }) => {
        if (batch.messages.length === 0) return;
        if (first === 0) first = performance.now();
        const lastOffset = batch.lastOffset();
        resolveOffset(lastOffset);
        await commitOffsetsIfNecessary({
          topics: [
            { topic, partitions: [{ partition: batch.partition, offset: String(BigInt(lastOffset) + 1n) }] },
          ],
        });
        seen += batch.messages.length;
        if (seen >= expected && last === 0) last = performance.now();
      },
    });
    await waitUntil(() => last > 0, { timeoutMs: 90_000, what: `eachBatch to see ${expected} records` });
    used = cpu();
  } finally {
    await consumer.disconnect();
  }
  return {
    records: seen,
    ms: last - first,
    rate: perSecond(seen, last - first),
    msFromConnect: last - connecting,
    cpu: used,
  };
}

/**
 * Raw kafkajs `eachMessage` (default auto-commit: kafkajs commits after each batch), running `work` per message,
 * `concurrency` partitions at once. A new consumer group reads the topic from the beginning.
 */
export async function eachMessagePass(
  kafka: Kafka,
  topic: string,
  expected: number,
  { concurrency = 1, work }: { concurrency?: number; work?: () => Promise<void> } = {},
): Promise<PassResult> {
  const consumer = kafka.consumer({ groupId: `bench-message-${shortId()}`, maxWaitTimeInMs: 100 });
  let first = 0;
  let last = 0;
  let seen = 0;
  let used: CpuUse = { process: 0, machine: 0 };
  const connecting = performance.now();
  const cpu = cpuMeter();
  await consumer.connect();
  try {
    await consumer.subscribe({ topic, fromBeginning: true });
    await consumer.run({
      partitionsConsumedConcurrently: concurrency,
      eachMessage: async () => {
        if (first === 0) first = performance.now();
        if (work) await work();
        seen++;
        if (seen >= expected && last === 0) last = performance.now();
      },
    });
    await waitUntil(() => last > 0, { timeoutMs: 90_000, what: `eachMessage to see ${expected} records` });
    used = cpu();
  } finally {
    await consumer.disconnect();
  }
  return {
    records: seen,
    ms: last - first,
    rate: perSecond(seen, last - first),
    msFromConnect: last - connecting,
    cpu: used,
  };
}

export interface RuntimePassResult extends PassResult {
  stats: HostStats["actors"][string];
  /** The host's group-commit stats, when its runtime has them (batches, turns, largest batch). */
  groupCommit?: { batches: number; items: number; largestBatch: number };
  /** The consumer group the host used (its partition_owner rows are cleaned up afterwards). */
  groupId: string;
}

/**
 * A Pitstop host with one actor kind reads the topic from the beginning (a new group, and a new kind, so no
 * state, offsets or inbox rows of an earlier round apply). Clock: from the first record kafkajs hands the host
 * to the moment the host's turn count reaches `expected` (polled every 2 ms).
 */
export async function runtimePass(
  config: Config,
  database: Database,
  actor: AnyActorDefinition,
  expected: number,
  tuning: Partial<HostTuning> = {},
): Promise<RuntimePassResult> {
  let first = 0;
  const groupPrefix = `bench-${shortId()}`;
  const kafka = onFirstBatch(
    createKafka({ brokers: config.kafka.brokers, clientId: `bench-host-${shortId()}` }),
    () => {
      first = performance.now();
    },
  );
  const host = createHost({
    kafka,
    database,
    databaseUrl: config.postgres.url,
    log: createLogger("silent"),
    actors: [actor],
    groupPrefix,
    relay: false, // these actors write no outbox rows
    tuning,
  });
  // Turns handled: committed ones, plus no-op turns a `noopTurns: "skip"` kind does not commit.
  const turns = () => {
    const a = host.stats().actors[actor.kind];
    return a ? a.turns + a.noops : 0;
  };
  const connecting = performance.now();
  const cpu = cpuMeter();
  await host.start();
  let last = 0;
  let used: CpuUse = { process: 0, machine: 0 };
  try {
    last = await waitUntil(() => (turns() >= expected ? performance.now() : 0), {
      timeoutMs: 90_000,
      what: `the host to commit ${expected} turns`,
    });
    used = cpu();
  } finally {
    await host.stop();
  }
  const all = host.stats();
  const stats = all.actors[actor.kind] as RuntimePassResult["stats"];
  const groupCommit = (all as { groupCommit?: RuntimePassResult["groupCommit"] }).groupCommit;
  const handled = stats.turns + stats.noops;
  return {
    records: handled,
    ms: last - first,
    rate: perSecond(handled, last - first),
    msFromConnect: last - connecting,
    cpu: used,
    stats,
    groupCommit,
    groupId: `${groupPrefix}.actor.${actor.kind}`,
  };
}

/** Deletes the Postgres rows the benchmark wrote for these kinds and groups (the dev database stays clean). */
export async function cleanUp(database: Database, kinds: string[], groupIds: string[]): Promise<void> {
  const { sql } = database;
  if (kinds.length > 0) {
    await sql`delete from actor_state where kind in ${sql(kinds)}`;
    await sql`delete from inbox where consumer in ${sql(kinds)}`;
  }
  if (groupIds.length > 0) await sql`delete from partition_owner where group_id in ${sql(groupIds)}`;
}

/** Deletes the benchmark's own topics. */
export async function deleteTopics(kafka: Kafka, topics: string[]): Promise<void> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    await admin.deleteTopics({ topics });
  } finally {
    await admin.disconnect();
  }
}
