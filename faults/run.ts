/**
 * One fault run: start the system, drive it, inject the scenario's fault and heal it, wait until every group's
 * lag is zero and nothing is in flight, read everything back, report. `npm run faults` runs these in turn.
 */
import { join } from "node:path";
import { DEV_JWT_SECRET } from "../config.ts";
import { createTokens } from "../http/auth.ts";
import { openRedis } from "../runtime/index.ts";
import { createKafka, encodeEnvelope, newEnvelope, topicIn } from "../topics/index.ts";
import { Load, type LoadReport } from "./load.ts";
import type { Scenario } from "./scenarios.ts";
import { SystemUnderTest } from "./system.ts";
import {
  behindOf,
  inFlight,
  lagOf,
  type PoisonSent,
  positionsOf,
  readAll,
  type Verification,
  verify,
} from "./verify.ts";

export interface RunReport {
  scenario: string;
  description: string;
  long: boolean;
  startedAt: string;
  durationMs: number;
  topology: { hosts: number; brokers: number; clients: number; namespace: string };
  requests: LoadReport["requests"];
  chains: {
    total: number;
    paid: number;
    declined: number;
    rejected: number;
    unfinished: number;
    poison: number;
  };
  faults: { name: string; atMs: number; healedAtMs: number }[];
  throughput: { beforeFaultPerS: number; duringFaultPerS: number; afterHealPerS: number };
  /** From the last heal until every record on Kafka at the heal was handled and committed (load still on). */
  healToCaughtUpMs: number | null;
  /** From the load's stop until every group's lag was zero and nothing was in flight. */
  quiesceMs: number;
  /** From a host's loss until live hosts served all its partitions. */
  takeoverMs: number[];
  /** The same, where another host was lost before it completed (what moved to that one waited for it too). */
  overlappedTakeoverMs: { ms: number; otherHostsLost: number }[];
  restartServeMs: number[];
  poisonRecords: number;
  verification: Verification;
  logDir: string;
  /** Every violation count is zero and the dead letters are exactly the poison. */
  passed: boolean;
}

export interface RunOptions {
  long: boolean;
  clients?: number;
  log?: (line: string) => void;
  keep?: boolean;
}

export async function runScenario(scenario: Scenario, options: RunOptions): Promise<RunReport> {
  const log = options.log ?? ((line: string) => console.log(`[faults ${scenario.name}] ${line}`));
  const runId = `${scenario.name.replaceAll("-", "")}${Bun.randomUUIDv7().replaceAll("-", "").slice(-8)}`;
  const logDir = join(import.meta.dir, "..", ".cache", "faults", runId);
  const sut = new SystemUnderTest({
    runId,
    hosts: scenario.hosts,
    clusterSize: scenario.clusterSize,
    logDir,
  });
  const started = Date.now();
  const redis = openRedis(sut.redisUrl);
  await redis.connect();
  await redis.flushdb(); // the run's own Redis database
  redis.disconnect();
  log(`starting ${scenario.hosts} host(s) on ${scenario.clusterSize} broker(s), namespace ${sut.namespace}`);
  try {
    await sut.start();
  } catch (error) {
    // A host that did not serve in time leaves the others running: take them all down before giving up.
    await sut.stop().catch(() => {});
    throw error;
  }
  const restartServeMs: number[] = [];
  const startHost = sut.startHost.bind(sut);
  sut.startHost = async (i) => {
    const proc = await startHost(i);
    restartServeMs.push((proc.servingAt ?? Date.now()) - proc.startedAt);
    return proc;
  };
  log(`serving at ${sut.baseUrl}`);

  const clients = options.clients ?? 12;
  const load = new Load({
    baseUrl: sut.baseUrl,
    clients,
    poisonRate: scenario.poisonRate?.(options.long) ?? 0,
  });
  const kafka = createKafka({ brokers: sut.brokers, clientId: `faults-${runId}` });
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  const poisonSent: PoisonSent[] = [];
  const faults: RunReport["faults"] = [];
  const takeoverMs: number[] = [];
  const overlappedTakeoverMs: { ms: number; otherHostsLost: number }[] = [];
  const measurements: Promise<void>[] = [];
  let report: RunReport | undefined;
  try {
    load.start();
    const loadStart = Date.now();
    await Bun.sleep(options.long ? 30_000 : 10_000);
    await scenario.inject({
      sut,
      long: options.long,
      log,
      fault(name) {
        const entry = { name, atMs: Date.now() - started, healedAtMs: -1 };
        faults.push(entry);
        log(`fault: ${name}`);
        return () => {
          entry.healedAtMs = Date.now() - started;
          log(`healed: ${name}`);
        };
      },
      measuring(done) {
        measurements.push(done);
      },
      takeover(ms, overlapped) {
        if (overlapped > 0) overlappedTakeoverMs.push({ ms, otherHostsLost: overlapped });
        else takeoverMs.push(ms);
        log(
          `partitions of the lost host served again in ${ms} ms (other hosts lost meanwhile: ${overlapped})`,
        );
      },
      async poison() {
        const kinds = ["booking", "slot", "repair", "invoice", "job-saga"];
        const kind = kinds[Math.floor(Math.random() * kinds.length)] as string;
        const topic = topicIn(sut.namespace, `${kind}-mailbox`);
        const shapes = [
          { what: "not JSON", value: Buffer.from("{not json") },
          {
            what: "unknown type",
            value: encodeEnvelope(newEnvelope({ eventType: "SELF_DESTRUCT", entityId: "x", payload: {} })),
          },
          {
            what: "payload off-schema",
            value: encodeEnvelope(
              newEnvelope({ eventType: "CREATE", entityId: "x", payload: { nonsense: 1 } }),
            ),
          },
        ];
        const shape = shapes[Math.floor(Math.random() * shapes.length)] as (typeof shapes)[number];
        await producer.send({
          topic,
          acks: -1,
          messages: [{ key: `poison-${Bun.randomUUIDv7()}`, value: shape.value }],
        });
        poisonSent.push({ topic, kind, what: shape.what });
      },
    });
    const healedAt = Date.now();
    // Recovery, with the load still on: how long after the last heal until every record that was on Kafka at
    // the heal has been handled and committed by every group that reads it.
    let healToCaughtUpMs: number | null = null;
    const atHeal = await positionsOf(kafka, sut.namespace).catch(() => undefined);
    const recoverBy = healedAt + (options.long ? 180_000 : 60_000);
    let stillBehind: string[] = [];
    let nextLookMs = 10_000;
    while (atHeal && Date.now() < recoverBy) {
      const now = await positionsOf(kafka, sut.namespace).catch(() => undefined);
      stillBehind = now ? behindOf(now, atHeal.ends).behind : ["(positions unreadable)"];
      if (stillBehind.length === 0) {
        healToCaughtUpMs = Date.now() - healedAt;
        break;
      }
      if (Date.now() - healedAt > nextLookMs) {
        // Slow: say which partitions hold it up and what each host's consumer knows of them, once in a while.
        nextLookMs *= 2;
        log(
          `not caught up ${Date.now() - healedAt} ms after the heal; behind: ${stillBehind.slice(0, 8).join("; ")}`,
        );
        for (const line of await hostViews(sut, stillBehind)) log(`  ${line}`);
      }
      await Bun.sleep(250);
    }
    log(
      `caught up ${healToCaughtUpMs === null ? `not in time (behind: ${stillBehind.slice(0, 5).join("; ")})` : `${healToCaughtUpMs} ms`} after the heal`,
    );
    await Bun.sleep(options.long ? 30_000 : 5000); // load after the heal
    const loadEnd = Date.now();
    await load.stop(60_000);
    const quiesceStart = Date.now();
    log("load stopped; waiting for zero lag and nothing in flight");
    let quiet = false;
    let last = "";
    // Quiet twice in a row, a second apart: the lag and the outbox are read at slightly different moments, and a
    // turn committing between the two reads can look like nothing in flight once (an event then published and
    // handled after the read-back began).
    let quietLooks = 0;
    while (Date.now() - quiesceStart < 180_000) {
      const [lag, flight] = await Promise.all([
        lagOf(kafka, sut.namespace).catch(() => ({ total: -1, behind: ["(lag unreadable)"] })),
        inFlight(sut.databaseUrl),
      ]);
      last = `lag ${lag.total} (${lag.behind.slice(0, 3).join("; ")}), outbox ${flight.outbox}, due timers ${flight.dueTimers}`;
      quietLooks = lag.total === 0 && flight.outbox === 0 && flight.dueTimers === 0 ? quietLooks + 1 : 0;
      if (quietLooks >= 2) {
        quiet = true;
        break;
      }
      await Bun.sleep(quietLooks > 0 ? 1000 : 500);
    }
    if (!quiet) {
      log(`not quiet after 180 s: ${last}`);
      // Each host logs its runtime stats (owned partitions, backlogs, positions) into the run's logs.
      for (const host of [sut.http, ...sut.liveHosts()]) host?.child.kill("SIGUSR2");
      await Bun.sleep(1000);
    }
    const quiesceMs = Date.now() - quiesceStart;
    await Promise.all(measurements); // takeovers still being measured (each gives up after 120 s)
    const records = await readAll(kafka, sut.namespace);
    const adminToken = await createTokens(DEV_JWT_SECRET, 3600).sign({ role: "admin", sub: "faults" });
    const verification = await verify(
      {
        kafka,
        databaseUrl: sut.databaseUrl,
        redisUrl: sut.redisUrl,
        namespace: sut.namespace,
        baseUrl: sut.baseUrl,
        adminToken,
      },
      load.report,
      poisonSent,
      records,
    );
    if (!quiet) {
      verification.lost.count++;
      verification.lost.examples.push(`never quiet: ${last}`);
    }
    const windows = faults.filter((f) => f.healedAtMs >= 0);
    const firstFault = (windows[0]?.atMs ?? 0) + started;
    const lastHeal = (windows.at(-1)?.healedAtMs ?? 0) + started;
    const rate = (from: number, to: number) => {
      const n = load.report.okAt.filter((t) => t >= from && t < to).length;
      return to > from ? Math.round((n / ((to - from) / 1000)) * 10) / 10 : 0;
    };
    const chains = load.report.chains;
    const v = verification;
    report = {
      scenario: scenario.name,
      description: scenario.description,
      long: options.long,
      startedAt: new Date(started).toISOString(),
      durationMs: Date.now() - started,
      topology: { hosts: scenario.hosts, brokers: scenario.clusterSize, clients, namespace: sut.namespace },
      requests: load.report.requests,
      chains: {
        total: chains.length,
        paid: chains.filter((c) => c.payment === "PAID").length,
        declined: chains.filter((c) => c.payment === "DECLINED").length,
        rejected: chains.filter((c) => c.rejected).length,
        unfinished: chains.filter((c) => c.unfinished).length,
        poison: chains.filter((c) => c.poison).length,
      },
      faults,
      throughput: {
        beforeFaultPerS: rate(loadStart, firstFault),
        duringFaultPerS: rate(firstFault, lastHeal),
        afterHealPerS: rate(lastHeal, loadEnd),
      },
      healToCaughtUpMs,
      quiesceMs,
      takeoverMs,
      overlappedTakeoverMs,
      restartServeMs,
      poisonRecords: poisonSent.length,
      verification,
      logDir,
      passed:
        v.lost.count === 0 &&
        v.duplicateEffects.count === 0 &&
        v.orderViolations.count === 0 &&
        v.staleWrites.count === 0 &&
        v.sagaViolations.count === 0 &&
        v.staleCacheReads.count === 0 &&
        v.deadLetters.found === v.deadLetters.expected,
    };
    return report;
  } finally {
    await producer.disconnect().catch(() => {});
    await sut.stop();
    if (!options.keep && report?.passed) await dropRun(sut, kafka);
  }
}

/** Removes a passed run's database and topics (a failed one is kept for reading, with its logs). */
async function dropRun(sut: SystemUnderTest, kafka: ReturnType<typeof createKafka>): Promise<void> {
  const { default: postgres } = await import("postgres");
  const sql = postgres("postgres://postgres@127.0.0.1:5432/postgres", { max: 1, onnotice: () => {} });
  await sql
    .unsafe(`drop database if exists "pitstop_faults_${sut.options.runId}" with (force)`)
    .catch(() => {});
  await sql.end();
  const admin = kafka.admin();
  await admin.connect();
  const topics = (await admin.listTopics()).filter((t) => t.startsWith(`${sut.namespace}.`));
  await admin.deleteTopics({ topics }).catch(() => {});
  await admin.disconnect();
}

/** The report as the lines `npm run faults` prints and docs/reliability.md keeps. */
export function formatReport(r: RunReport): string {
  const v = r.verification;
  const list = (examples: string[]) => (examples.length ? `: ${examples.slice(0, 5).join("; ")}` : "");
  return [
    `### ${r.scenario}${r.long ? " (long)" : ""}: ${r.passed ? "PASSED" : "FAILED"}`,
    "",
    `${r.description}. ${r.topology.hosts} host(s), ${r.topology.brokers} broker(s), ${r.topology.clients} clients; ${Math.round(r.durationMs / 1000)} s from ${r.startedAt}.`,
    "",
    `- requests: ${r.requests.ok} ok, ${r.requests.failed} failed, ${r.requests.unknown} unknown (${r.requests.retried} attempts retried with their key)`,
    `- chains: ${r.chains.total} (${r.chains.paid} paid, ${r.chains.declined} declined, ${r.chains.rejected} refused a full slot, ${r.chains.poison} poison, ${r.chains.unfinished} cut short at the end)`,
    `- faults: ${r.faults.map((f) => `${f.name} at ${(f.atMs / 1000).toFixed(1)} s, healed ${(f.healedAtMs / 1000).toFixed(1)} s`).join("; ") || "none"}`,
    `- lost: ${v.lost.count}${list(v.lost.examples)}`,
    `- duplicate side effects: ${v.duplicateEffects.count}${list(v.duplicateEffects.examples)} (events published more than once, deduped by consumers: ${v.facts.publishedTwice ?? 0})`,
    `- per-entity order violations: ${v.orderViolations.count}${list(v.orderViolations.examples)}`,
    `- stale writes accepted (outbox rows of an older epoch after a newer one, per partition): ${v.staleWrites.count}${list(v.staleWrites.examples)}`,
    `- saga violations (waiting without a timer, slot over capacity or leaked, money): ${v.sagaViolations.count}${list(v.sagaViolations.examples)}`,
    `- dead letters: ${v.deadLetters.found} for ${v.deadLetters.expected} poison injected (${r.poisonRecords} records on mailboxes, ${r.chains.poison} bookings)${v.deadLetters.unexpected.length ? `: ${v.deadLetters.unexpected.join("; ")}` : ""}`,
    `- stale cache reads after quiesce: ${v.staleCacheReads.count}${list(v.staleCacheReads.examples)}`,
    `- heal to caught up (every record on Kafka at the heal handled and committed by every group, load on): ${r.healToCaughtUpMs === null ? "not in time" : `${r.healToCaughtUpMs} ms`}; zero lag with nothing in flight (outbox empty, no due timer) ${r.quiesceMs} ms after the load stopped`,
    `- a lost host's partitions served again by live hosts in: ${r.takeoverMs.length ? r.takeoverMs.map((ms) => `${ms} ms`).join(", ") : "n/a"}${r.overlappedTakeoverMs.length ? `; with other hosts lost meanwhile: ${r.overlappedTakeoverMs.map((o) => `${o.ms} ms (${o.otherHostsLost} more lost)`).join(", ")}` : ""}; restarted hosts serving in: ${r.restartServeMs.length ? r.restartServeMs.map((ms) => `${ms} ms`).join(", ") : "n/a"}`,
    `- throughput (ok requests/s): ${r.throughput.beforeFaultPerS} before the fault, ${r.throughput.duringFaultPerS} during, ${r.throughput.afterHealPerS} after the heal`,
    `- read back: ${v.facts.records} records, ${v.facts.events} distinct events, ${v.facts.bookings} bookings, ${v.facts.paidInvoices} paid invoices, ${v.facts.outboxRows} outbox rows`,
    "",
  ].join("\n");
}

/**
 * What each live host's consumers say of the partitions in `behind` ("group topic[p] n"): owner, backlog, running
 * turns, next and committed offsets, paused; or assigned but unowned (fenced, being taken). Read from the
 * "host stats" line a host logs on SIGUSR2.
 */
async function hostViews(sut: SystemUnderTest, behind: string[]): Promise<string[]> {
  const wanted = new Set(behind.map((b) => b.split(" ").slice(0, 2).join(" ")));
  const hosts = sut.liveHosts().filter((h) => !h.frozen);
  const sizes = new Map(hosts.map((h) => [h, Bun.file(h.logPath).size]));
  for (const h of hosts) h.child.kill("SIGUSR2");
  await Bun.sleep(500);
  const lines: string[] = [];
  for (const h of hosts) {
    const text = await Bun.file(h.logPath)
      .slice(sizes.get(h) ?? 0)
      .text();
    const statLine = text.split("\n").find((l) => l.includes('"host stats"'));
    if (!statLine) {
      lines.push(`${h.name}: no stats logged`);
      continue;
    }
    type View = { topic?: string; partition: number | string; [k: string]: unknown };
    const stats = (
      JSON.parse(statLine) as {
        stats: {
          consumers: Record<string, { partitions: View[]; unowned: View[] }>;
          reactorGroup?: { batches: unknown; oldest: unknown[] };
        };
      }
    ).stats;
    const consumers = stats.consumers;
    if (stats.reactorGroup)
      lines.push(
        `${h.name} reactor batches ${JSON.stringify(stats.reactorGroup.batches)}; oldest in flight ${JSON.stringify(stats.reactorGroup.oldest)}`,
      );
    for (const [name, c] of Object.entries(consumers)) {
      for (const p of c.partitions) {
        const id = [...wanted].find(
          (w) => w.endsWith(` ${p.topic}[${p.partition}]`) && w.startsWith(`${name} `),
        );
        if (id) lines.push(`${h.name} ${name} owns ${p.topic}[${p.partition}]: ${JSON.stringify(p)}`);
      }
      for (const u of c.unowned) {
        const [topic, partition] = String(u.partition).split("/");
        const id = [...wanted].find((w) => w.endsWith(` ${topic}[${partition}]`) && w.startsWith(`${name} `));
        if (id) lines.push(`${h.name} ${name} assigned, not owned: ${JSON.stringify(u)}`);
      }
    }
  }
  return lines;
}
