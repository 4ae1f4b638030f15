/**
 * The whole service center for the service benchmarks (bench/booking-http.ts, bench/e2e-latency.ts), in process
 * and in a namespace of its own, as test/service/fixtures.ts runs it for the tests, but on the dev database
 * `pitstop` (no NODE_ENV=test) and with the production partition count: topics `<ns>.booking-events`...,
 * consumer groups and NATS subjects `pitstop-<ns>`, the real host with every actor and reactor, the real HTTP app
 * on a loopback port, tokens per role.
 *
 * `stop()` removes what the run left: the namespace's unpublished outbox rows first, THEN its topics (rows left
 * for deleted topics would wait forever in every relay), then its other rows (see `cleanUpNamespace`).
 */
import type { Kafka } from "kafkajs";
import pino from "pino";
import postgres from "postgres";
import { type Config, loadConfig } from "../config.ts";
import type { Host, Logger } from "../runtime/index.ts";
import { createSystem, type System } from "../system.ts";
import { provisionTopics, topicCatalogue } from "../topics/index.ts";
import { shortId, waitUntil } from "./support.ts";

/** Partitions per topic: 10 like production (topics/catalogue.ts DEFAULT_PARTITIONS); BENCH_PARTITIONS overrides. */
export const PARTITIONS = Number(process.env.BENCH_PARTITIONS ?? 10);

export const SERVICE_TYPES = [
  "OIL_CHANGE",
  "BRAKE_SERVICE",
  "TIRE_CHANGE",
  "INSPECTION",
  "GENERAL_REPAIR",
] as const;

const RELAY_LOCK = 7_150_002; // runtime/outbox-relay.ts

export interface BenchService {
  system: System;
  host: Host;
  namespace: string;
  /** Every customer id of the run starts with this (their rows are removed at the end). */
  customerPrefix: string;
  baseUrl: string;
  wsUrl: string;
  /** Who held the relay lock in the database just before the host started ("none" when nobody). */
  relayLockBefore: string;
  /** ms from creating the system to every consumer group owning its partitions. */
  startMs: number;
  token(role: "customer" | "technician" | "admin", sub: string): Promise<string>;
  stop(): Promise<CleanUpReport>;
}

/** Errors and warnings of the system go to stderr (stdout carries the markdown); BENCH_LOG_LEVEL overrides. */
export function benchLog(): Logger {
  return pino(
    { name: "pitstop-bench", level: process.env.BENCH_LOG_LEVEL ?? "warn", base: { pid: process.pid } },
    pino.destination(2),
  );
}

/** Who holds the outbox relay's advisory lock in this database, if anyone. */
export async function relayLockHolder(sql: postgres.Sql): Promise<string | undefined> {
  const rows = await sql<{ pid: number; application_name: string; backend_start: string }[]>`
    select a.pid, a.application_name, a.backend_start::text
    from pg_locks l join pg_stat_activity a on a.pid = l.pid
    where l.locktype = 'advisory' and l.granted and l.classid = 0 and l.objid = ${RELAY_LOCK} and l.objsubid = 1
      and l.database = (select oid from pg_database where datname = current_database())`;
  const row = rows[0];
  return row ? `pid ${row.pid} (${row.application_name}, session since ${row.backend_start})` : undefined;
}

export async function startBenchService(base: Config, kafka: Kafka, log: Logger): Promise<BenchService> {
  const namespace = `b${shortId()}`;
  const config = loadConfig({
    ...process.env,
    NODE_ENV: "development", // the dev database `pitstop`
    DATABASE_URL: base.postgres.url,
    PITSTOP_NAMESPACE: namespace,
  });
  const started = performance.now();
  const topics = topicCatalogue(PARTITIONS, namespace);
  await provisionTopics(kafka, topics);
  const cleanupSql = postgres(config.postgres.url, { max: 1, onnotice: () => {} });
  const relayLockBefore = (await relayLockHolder(cleanupSql)) ?? "none";
  const system = createSystem(config, log);
  const host = await system.startHost();
  // Every consumer group owns its partitions before the first request (a cold group would only be slower).
  await waitUntil(
    () =>
      Object.values(host.stats().consumers).every(
        (c) => c.partitions.length === PARTITIONS * c.topics.length,
      ),
    {
      timeoutMs: 90_000,
      intervalMs: 50,
      what: "every consumer group of the namespace to own its partitions",
    },
  );
  const startMs = performance.now() - started;
  const server = system.app.listen({ hostname: "127.0.0.1", port: 0 });
  const port = server.server?.port;
  return {
    system,
    host,
    namespace,
    customerPrefix: `bench-${namespace}-`,
    baseUrl: `http://127.0.0.1:${port}`,
    wsUrl: `ws://127.0.0.1:${port}/ws`,
    relayLockBefore,
    startMs,
    token: (role, sub) => system.routes.tokens.sign({ role, sub }),
    async stop() {
      await server.stop(true);
      await system.close();
      try {
        return await cleanUpNamespace(
          cleanupSql,
          kafka,
          namespace,
          topics.map((t) => t.name),
          `bench-${namespace}-`,
        );
      } finally {
        await cleanupSql.end();
      }
    },
  };
}

export interface CleanUpReport {
  unpublishedOutboxRows: number;
  topicsDeleted: number;
  rows: Record<string, number>;
}

/**
 * Removes a namespace: its unpublished outbox rows, THEN its topics, then the rows its run wrote that can be told
 * apart from others' (published outbox rows, leases, actor state and timers, dead letters, audit rows and the
 * reactors' inbox rows for the namespace's events, notifications to its customers). Left alone: audit_log rows
 * (append-only by design: a trigger refuses DELETE), the actors' inbox rows (consumer = the kind, not told apart
 * from other runs'; housekeeping deletes them after 8 days), the analytics reactor's daily_stat counters, and
 * Redis keys (cache entries expire).
 */
export async function cleanUpNamespace(
  sql: postgres.Sql,
  kafka: Kafka,
  namespace: string,
  topicNames: string[],
  customerPrefix: string,
): Promise<CleanUpReport> {
  const topicPattern = `${namespace}.%`;
  const unpublished = await sql`delete from outbox where published_at is null and topic like ${topicPattern}`;
  const admin = kafka.admin();
  await admin.connect();
  let topicsDeleted = 0;
  try {
    await admin.deleteTopics({ topics: topicNames });
    topicsDeleted = topicNames.length;
  } catch (error) {
    console.error(`[service] deleting the namespace's topics failed: ${String(error)}`);
  } finally {
    await admin.disconnect();
  }
  const customers = `${customerPrefix}%`;
  const rows: Record<string, number> = {};
  rows.outbox = (await sql`delete from outbox where topic like ${topicPattern}`).count;
  rows.partition_owner = (
    await sql`delete from partition_owner where group_id like ${`pitstop-${namespace}.%`}`
  ).count;
  rows.actor_state = (
    await sql`
      delete from actor_state
      where (kind = 'slot' and actor_key like ${`${namespace}/%`})
         or (kind in ('booking', 'repair', 'invoice', 'job-saga') and state->>'customerId' like ${customers})`
  ).count;
  rows.actor_timer = (await sql`delete from actor_timer where mailbox like ${topicPattern}`).count;
  rows.dead_letter = (await sql`delete from dead_letter where source_topic like ${topicPattern}`).count;
  rows.inbox = (
    await sql`delete from inbox where event_id in (select event_id from audit_log where topic like ${topicPattern})`
  ).count;
  rows.notification = (await sql`delete from notification where customer_id like ${customers}`).count;
  return { unpublishedOutboxRows: unpublished.count, topicsDeleted, rows };
}

/** A booking time: a random hour within the next 364 days (at least 2 hours ahead), random minute, UTC. */
export function randomBookingDate(): string {
  const hours = 2 + Math.floor(Math.random() * 364 * 24);
  const at = new Date(Date.now() + hours * 3600_000);
  at.setUTCMinutes(Math.floor(Math.random() * 60), 0, 0);
  return at.toISOString();
}

export function randomServiceType(): (typeof SERVICE_TYPES)[number] {
  return SERVICE_TYPES[Math.floor(Math.random() * SERVICE_TYPES.length)] as (typeof SERVICE_TYPES)[number];
}

/** Status codes counted as 201 / 409 / 202 / other (other: also network errors, counted as status 0). */
export class StatusCounts {
  readonly counts = new Map<number, number>();
  add(status: number): void {
    this.counts.set(status, (this.counts.get(status) ?? 0) + 1);
  }
  get(status: number): number {
    return this.counts.get(status) ?? 0;
  }
  other(known: number[]): number {
    let n = 0;
    for (const [status, count] of this.counts) if (!known.includes(status)) n += count;
    return n;
  }
  /** e.g. "503:2, 0:1" for the statuses not in `known`. */
  describeOther(known: number[]): string {
    return [...this.counts]
      .filter(([status]) => !known.includes(status))
      .map(([status, count]) => `${status}:${count}`)
      .join(", ");
  }
}

/**
 * Samples `pgrep -f "bun test"` every 2 s (spawned asynchronously: no pause of the event loop being measured);
 * returns a function describing what was seen.
 */
export function watchOtherTests(): () => string {
  let samples = 0;
  let seen = 0;
  const timer = setInterval(async () => {
    const child = Bun.spawn(["pgrep", "-f", "bun test"], { stdout: "pipe", stderr: "ignore" });
    const found = (await new Response(child.stdout).text()).trim();
    samples++;
    if (found) seen++;
  }, 2000);
  timer.unref();
  return () => (seen ? `yes, in ${seen} of ${samples} samples` : `none in ${samples} samples`);
}

export interface PoolUse {
  /** Mean sessions per sample, by state: running a statement, in a transaction waiting for the client, idle. */
  active: number;
  idleInTransaction: number;
  idle: number;
  /** Mean sessions per sample waiting for a lock (heavyweight: rows, transactions). */
  lockWait: number;
  samples: number;
}

/**
 * Samples pg_stat_activity every `intervalMs` for the sessions of one application_name in this database (the
 * system's pool is "pitstop", db/client.ts): how its connections spend their time. Call the result to stop.
 */
export function poolSampler(
  sql: postgres.Sql,
  applicationName: string,
  intervalMs = 100,
): () => Promise<PoolUse> {
  const totals = { active: 0, idleInTransaction: 0, idle: 0, lockWait: 0 };
  let samples = 0;
  let running = true;
  const loop = (async () => {
    while (running) {
      const rows = await sql<{ state: string | null; wait: string | null }[]>`
        select state, wait_event_type as wait from pg_stat_activity
        where datname = current_database() and application_name = ${applicationName} and pid <> pg_backend_pid()`;
      samples++;
      for (const row of rows) {
        if (row.state === "active") totals.active++;
        else if (row.state?.startsWith("idle in transaction")) totals.idleInTransaction++;
        else if (row.state === "idle") totals.idle++;
        if (row.wait === "Lock") totals.lockWait++;
      }
      await Bun.sleep(intervalMs); // sampling interval
    }
  })();
  return async () => {
    running = false;
    await loop;
    const mean = (n: number) => Math.round((n / Math.max(1, samples)) * 100) / 100;
    return {
      active: mean(totals.active),
      idleInTransaction: mean(totals.idleInTransaction),
      idle: mean(totals.idle),
      lockWait: mean(totals.lockWait),
      samples,
    };
  };
}

/**
 * Event-loop lag of this process: a 10 ms timer's lateness, sampled until the result is called (p50/p99/max ms).
 * Everything here (load generator, HTTP servers, the host) shares this one JavaScript thread.
 */
export function loopLag(): () => { p50: number; p99: number; max: number } {
  const lags: number[] = [];
  let expected = performance.now() + 10;
  const timer = setInterval(() => {
    const t = performance.now();
    lags.push(Math.max(0, t - expected));
    expected = t + 10;
  }, 10);
  return () => {
    clearInterval(timer);
    const sorted = lags.sort((a, b) => a - b);
    const at = (p: number) =>
      sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] ?? 0;
    return { p50: at(50), p99: at(99), max: at(100) };
  };
}
