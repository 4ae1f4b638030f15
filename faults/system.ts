/**
 * The system under fault: real processes of Pitstop (`bun main.ts`), one HTTP process and several actor hosts
 * (`PITSTOP_RUN=actors,reactors`), in a namespace and a database of the run's own, reaching Postgres, Redis and
 * NATS through TCP proxies the harness can cut. Processes are killed, frozen and restarted for real.
 */

import { mkdirSync, openSync } from "node:fs";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { clusterBrokers } from "../config.ts";
import { ensureDatabase, migrateDatabase } from "../db/index.ts";
import { BUN_SERVE_FLAGS } from "../http/index.ts";
import { startKafka } from "../infra/kafka-cluster.ts";
import { createKafka, provisionTopics, topicCatalogue } from "../topics/index.ts";
import { tcpProxy } from "./tcp-proxy.ts";

const ROOT = join(import.meta.dir, "..");
/** Redis database of the fault runs (npm start uses 0, the tests 1): flushed at each run's start. */
export const FAULTS_REDIS_DB = 2;

export interface SystemOptions {
  runId: string;
  hosts: number;
  clusterSize: 1 | 3;
  logDir: string;
  /** Extra environment for every process. */
  env?: Record<string, string>;
}

type Proxy = Awaited<ReturnType<typeof tcpProxy>>;

export interface Proc {
  name: string;
  logPath: string;
  child: Subprocess;
  startedAt: number;
  /** When it logged "pitstop is serving". */
  servingAt?: number;
  frozen: boolean;
}

/** Every process the harness started and has not seen exit: killed if the harness itself is stopped (Ctrl-C). */
const spawned = new Set<Subprocess>();

/** SIGKILLs (after a SIGCONT, for frozen ones) every process the harness started; for its SIGINT/SIGTERM. */
export function killEverythingStarted(): void {
  for (const child of spawned) {
    child.kill("SIGCONT");
    child.kill("SIGKILL");
  }
}

export class SystemUnderTest {
  readonly namespace: string;
  readonly databaseUrl: string;
  readonly redisUrl: string;
  readonly brokers: string[];
  readonly hosts: (Proc | undefined)[] = [];
  http: Proc | undefined;
  httpPort = 0;
  proxies!: { postgres: Proxy; redis: Proxy; nats: Proxy };
  private generation = 0;

  constructor(readonly options: SystemOptions) {
    this.namespace = `f${options.runId}`;
    this.databaseUrl = `postgres://postgres@127.0.0.1:5432/pitstop_faults_${options.runId}`;
    this.redisUrl = `redis://127.0.0.1:6379/${FAULTS_REDIS_DB}`;
    this.brokers = [...clusterBrokers[options.clusterSize]];
  }

  get baseUrl(): string {
    return `http://127.0.0.1:${this.httpPort}`;
  }

  /** NATS subject and consumer-group prefix of the run's namespace (actors/index.ts natsPrefixOf). */
  get groupPrefix(): string {
    return `pitstop-${this.namespace}`;
  }

  /** Kafka, the database, topics, proxies; then the HTTP process and the hosts, each waited for. */
  async start(): Promise<void> {
    mkdirSync(this.options.logDir, { recursive: true });
    await startKafka(this.options.clusterSize, { timeoutMs: 180_000 });
    await ensureDatabase(this.databaseUrl);
    await migrateDatabase(this.databaseUrl);
    await provisionTopics(
      createKafka({ brokers: this.brokers, clientId: `faults-${this.options.runId}` }),
      topicCatalogue(undefined, this.namespace),
    );
    this.proxies = {
      postgres: await tcpProxy({ host: "127.0.0.1", port: 5432 }),
      redis: await tcpProxy({ host: "127.0.0.1", port: 6379 }),
      nats: await tcpProxy({ host: "127.0.0.1", port: 4222 }),
    };
    this.httpPort = await freePort();
    this.http = this.spawn("http", { PITSTOP_RUN: "http", PORT: String(this.httpPort) });
    await Promise.all([
      this.waitServing(this.http),
      ...Array.from({ length: this.options.hosts }, (_, i) => this.startHost(i)),
    ]);
  }

  /** Starts host `i` (again) and resolves once it serves; `run` is its PITSTOP_RUN (both parts by default). */
  async startHost(i: number, run = "actors,reactors"): Promise<Proc> {
    // Each host slot keeps its name across restarts (as a StatefulSet's pods do): a restarted host removes the
    // group members its killed incarnation left, instead of every group waiting out their sessions.
    const host = this.spawn(`host-${i}`, {
      PITSTOP_RUN: run,
      PORT: String(await freePort()), // its ops endpoints (/metrics, /livez, /readyz, /healthz)
      PITSTOP_INSTANCE_ID: `host-${i}`,
    });
    this.hosts[i] = host;
    await this.waitServing(host);
    return host;
  }

  kill(proc: Proc, signal: NodeJS.Signals = "SIGKILL"): void {
    if (signal === "SIGSTOP") proc.frozen = true;
    if (signal === "SIGCONT") proc.frozen = false;
    proc.child.kill(signal);
  }

  /** The hosts alive now (not killed; frozen ones count). */
  liveHosts(): Proc[] {
    return this.hosts.filter(
      (h): h is Proc => h !== undefined && h.child.exitCode === null && !h.child.killed,
    );
  }

  /** Stops every process (SIGTERM, then SIGKILL after 15 s) and the proxies. */
  async stop(): Promise<void> {
    const procs = [this.http, ...this.hosts].filter((p): p is Proc => p !== undefined);
    for (const p of procs) {
      if (p.frozen) p.child.kill("SIGCONT");
      p.child.kill("SIGTERM");
    }
    await Promise.all(
      procs.map((p) => Promise.race([p.child.exited, Bun.sleep(15_000).then(() => p.child.kill("SIGKILL"))])),
    );
    await Promise.all(Object.values(this.proxies ?? {}).map((proxy) => proxy.close()));
  }

  private spawn(name: string, env: Record<string, string>): Proc {
    const logPath = join(this.options.logDir, `${name}.${++this.generation}.log`);
    const log = openSync(logPath, "a");
    const child = Bun.spawn([process.execPath, ...BUN_SERVE_FLAGS, join(ROOT, "main.ts")], {
      cwd: ROOT,
      env: {
        ...process.env,
        NODE_ENV: "development",
        LOG_LEVEL: process.env.FAULTS_LOG_LEVEL ?? "info",
        PITSTOP_MANAGE_INFRA: "false",
        PITSTOP_NAMESPACE: this.namespace,
        KAFKA_CLUSTER_SIZE: String(this.options.clusterSize),
        KAFKA_BROKERS: this.brokers.join(","),
        DATABASE_URL: `postgres://postgres@127.0.0.1:${this.proxies.postgres.port}/pitstop_faults_${this.options.runId}`,
        DATABASE_POOL_SIZE: "10",
        REDIS_URL: `redis://127.0.0.1:${this.proxies.redis.port}/${FAULTS_REDIS_DB}`,
        NATS_URL: `nats://127.0.0.1:${this.proxies.nats.port}`,
        PAYMENT_RETRY_MS: "100",
        ACTOR_ANSWER_TIMEOUT_MS: "5000",
        JOB_CHECK_INTERVAL_MS: "5000",
        ...this.options.env,
        ...env,
      },
      stdout: log,
      stderr: log,
    });
    spawned.add(child);
    void child.exited.then(() => spawned.delete(child));
    return { name, logPath, child, startedAt: Date.now(), frozen: false };
  }

  private async waitServing(proc: Proc, timeoutMs = 120_000): Promise<void> {
    const path = proc.logPath;
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (proc.child.exitCode !== null)
        throw new Error(`${proc.name} exited with ${proc.child.exitCode}; see ${path}`);
      const text = await Bun.file(path)
        .text()
        .catch(() => "");
      if (text.includes('"msg":"pitstop is serving"')) {
        proc.servingAt = Date.now();
        return;
      }
      await Bun.sleep(100);
    }
    throw new Error(`${proc.name} did not serve within ${timeoutMs} ms; see ${path}`);
  }
}

async function freePort(): Promise<number> {
  const server = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const { port } = server;
  server.stop(true);
  return port;
}
