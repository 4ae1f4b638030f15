/**
 * `POST /api/v1/bookings` side by side, every contender a server process of its own started by this script, the
 * load generator a process of its own too (wrk, or bench/open-loop.ts):
 *
 * - plain: bench/plain-route.ts, a plain Elysia route validating the body with `t.Object` and inserting one row
 *   with postgres.js (pool 10). No auth, no slot check: the floor of "HTTP + one insert" on Bun.
 * - spring peer (racy): ../shared/peers/spring-seed (its README.md), the seed's Flow 1 on Spring Boot: count the
 *   slot, insert (no transaction around the two), Redis set, Kafka send not waited for; three listeners.
 * - spring peer (race-free): the same with `?slotCheck=atomic` (the slot counter raised in the insert's
 *   transaction).
 * - pitstop: the all-in-one service as `npm start` runs it (`bun --max-http-header-size=262144 main.ts`), bearer
 *   JWTs of a pool of distinct customers (BENCH_CUSTOMERS), rate limit and open-bookings cap at their defaults.
 *
 * The peer is built in a temporary copy (`mvn -q -DskipTests package`), never copied into the project. Every
 * measured round starts its contender fresh: a new database (pitstop_bench_<id>, peer_bench_<id>,
 * plain_bench_<id>), a new namespace (PITSTOP_NAMESPACE=bench<id>) or topic prefix (PEER_TOPIC_PREFIX), so slots
 * never fill over rounds; each start is followed by a closed-loop wrk warm-up (BENCH_WARMUP_S, not counted) and a
 * wait until the contender's consumer groups have caught up. Contenders are interleaved round by round
 * (plain, peer racy, peer race-free, pitstop, then again).
 *
 * 1. Closed loop: wrk -t2 -c20 and -c64 (BENCH_CONNECTIONS) for BENCH_DURATION_S, bench/booking-wrk.lua building a
 *    random body per request (a random service type, a random whole hour 2 h to 364 days ahead) and picking a
 *    random customer of the pool; statuses counted per thread. Per round: 201/s, other statuses, p50/p99 (wrk,
 *    over every response), the server process's CPU (utime + stime of its process tree from /proc, % of one core
 *    and ms per 201). After each round of pitstop and the peers: the consumer groups' lag at load stop (and, for
 *    pitstop, its unpublished outbox rows) and the ms until it is 0 ("reactors keep up", goal for pitstop's
 *    highest-rate round: <= 5,000 ms).
 * 2. Open loop: BENCH_OPEN_RATE (20) bookings/s for BENCH_DURATION_S from bench/open-loop.ts, sent at fixed
 *    intended times whatever the answers, latency measured from the intended send time.
 * 3. Pitstop, freshly started: BENCH_BURST (200) bookings at once, distinct customers, all to the same 3 slots;
 *    every answer must be 201 or 409 within ASK_TIMEOUT_MS (3,000 ms), 201s per slot <= its capacity.
 * 4. Over the whole run: lines with "deadlock detected" appended to the Postgres server log (whole server), and
 *    pg_stat_database.deadlocks of each round's own database.
 *
 *   node_modules/.bin/bun bench/booking-vs-peer.ts
 *
 * Knobs (environment): BENCH_ROUNDS (3), BENCH_DURATION_S (20), BENCH_WARMUP_S (5), BENCH_CONNECTIONS ("20,64"),
 * BENCH_OPEN_RATE (20), BENCH_CUSTOMERS (5000), BENCH_BURST (200), BENCH_KEEPUP_TIMEOUT_S (60), BENCH_PEER_DIR
 * (../shared/peers/spring-seed), BENCH_CONTENDERS (all: "plain,peer-racy,peer-atomic,pitstop"; fewer for a
 * partial check), BENCH_KEEP_LOGS (set: keep the temporary directory with the servers' logs). A full run with
 * the defaults starts 37 server processes and takes about 25 minutes.
 *
 * Markdown tables go to stdout, progress to stderr; the servers' own logs go to files in a temporary directory
 * (named on stderr, removed at the end). At the end (also on SIGINT/SIGTERM or an error) every process it started
 * is stopped, the bench databases dropped, the bench topics and consumer groups deleted, the peer's Redis keys
 * for its bookings deleted and its daily counters (`daily:bookings:<day>`) put back as they were.
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import Redis from "ioredis";
import { type Admin, AssignerProtocol } from "kafkajs";
import postgres from "postgres";
import { SERVICE_TYPES, type ServiceType } from "../actors/service-catalogue.ts";
import { loadConfig } from "../config.ts";
import { createTokens } from "../http/index.ts";
import { createKafka, pingKafka } from "../topics/index.ts";
import { codeState, fmt, machineNote, median, sameCode, shortId, stopwatch, table } from "./support.ts";

// ---------------------------------------------------------------------------------------------------- knobs

const ROOT = resolve(import.meta.dir, "..");
const BUN = process.execPath;
const ROUNDS = Math.max(1, Number(process.env.BENCH_ROUNDS ?? 3) || 3);
const DURATION_S = Math.max(1, Number(process.env.BENCH_DURATION_S ?? 20) || 20);
const WARMUP_S = Math.max(0, Number(process.env.BENCH_WARMUP_S ?? 5) || 0);
const CONNECTIONS = (process.env.BENCH_CONNECTIONS ?? "20,64")
  .split(",")
  .map((c) => Number(c.trim()))
  .filter((c) => Number.isInteger(c) && c > 0);
const OPEN_RATE = Math.max(1, Number(process.env.BENCH_OPEN_RATE ?? 20) || 20);
const CUSTOMERS = Math.max(10, Number(process.env.BENCH_CUSTOMERS ?? 5000) || 5000);
const BURST = Math.max(3, Number(process.env.BENCH_BURST ?? 200) || 200);
const KEEPUP_TIMEOUT_MS = 1000 * Math.max(1, Number(process.env.BENCH_KEEPUP_TIMEOUT_S ?? 60) || 60);
const PEER_DIR = resolve(ROOT, process.env.BENCH_PEER_DIR ?? "../shared/peers/spring-seed");
const WRK_THREADS = 2;
const WRK_TIMEOUT_S = 10;
const LUA = join(import.meta.dir, "booking-wrk.lua");
const SETTLE_TIMEOUT_MS = 30_000;
/** Goals of this comparison. */
const GOAL = {
  vsPeer: 1.0,
  vsPlain: 0.5,
  p99VsPlain: 2,
  openP50Ms: 10,
  openP99Ms: 50,
  cpuVsPeer: 2,
  keepUpMs: 5000,
};

const elapsed = stopwatch();
const startedAt = new Date();
const codeAtStart = codeState();
const otherCodeAtStart = otherCodeState();
const config = loadConfig({ ...process.env, NODE_ENV: "development" });
const ASK_TIMEOUT_MS = config.service.askTimeoutMs;
const progress = (line: string) => console.error(`[booking-vs-peer] ${line}`);

// ------------------------------------------------------------------------------------ processes we started

interface Child {
  pid: number;
  exited: Promise<number>;
  exitCode: number | null;
  signalCode: string | null;
  kill(signal?: NodeJS.Signals | number): void;
}
const children = new Set<Child>();

/** Set by SIGINT/SIGTERM: nothing new starts, the run unwinds (each round stops and removes what it started). */
let stopping: string | undefined;
function checkStop(): void {
  if (stopping) throw new Error(`stopped by ${stopping}`);
}

function spawnTracked(cmd: string[], options: Parameters<typeof Bun.spawn>[1]): Child {
  checkStop();
  const child = Bun.spawn(cmd, options) as unknown as Child;
  children.add(child);
  void child.exited.then(() => children.delete(child));
  return child;
}

async function stopChild(child: Child, graceMs = 15_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || !children.has(child)) return;
  child.kill("SIGTERM");
  let timer: Timer | undefined;
  const done = await Promise.race([
    child.exited.then(() => true),
    new Promise<boolean>((r) => {
      timer = setTimeout(() => r(false), graceMs);
    }),
  ]);
  clearTimeout(timer);
  if (!done) {
    child.kill("SIGKILL");
    await child.exited;
  }
}

// -------------------------------------------------------------------------------- resources to clean up

const RUN = shortId();
const work = mkdtempSync(join(tmpdir(), `booking-vs-peer-${RUN}-`));
const databases = new Set<string>(); // created (or to be created by a contender) and not yet dropped
const topicPrefixes = new Set<string>(); // topics and consumer groups of these prefixes are deleted
const adminUrl = (() => {
  const url = new URL(config.postgres.url);
  url.pathname = "/postgres";
  return url.toString();
})();
const dbUrl = (name: string) => {
  const url = new URL(config.postgres.url);
  url.pathname = `/${name}`;
  return url.toString();
};
const pg = postgres(adminUrl, {
  max: 2,
  onnotice: () => {},
  connection: { application_name: "bench-admin" },
});
const kafka = createKafka({ brokers: config.kafka.brokers, clientId: `bench-vs-peer-${RUN}` });
let kafkaAdmin: Admin | undefined;
const peerRedisDb = Number(process.env.PEER_REDIS_DB ?? 8);

async function admin(): Promise<Admin> {
  if (!kafkaAdmin) {
    kafkaAdmin = kafka.admin();
    await kafkaAdmin.connect();
  }
  return kafkaAdmin;
}

/** Deletes the peer's Redis keys of its bookings (booking:<id>), then drops the database. Returns its deadlocks. */
async function dropDatabase(name: string): Promise<number | undefined> {
  const [stat] = await pg<{ deadlocks: string }[]>`
    select deadlocks::text from pg_stat_database where datname = ${name}`;
  if (name.startsWith("peer_bench_") && stat) {
    const sql = postgres(dbUrl(name), { max: 1, onnotice: () => {} });
    const redis = new Redis({ host: "127.0.0.1", port: 6379, db: peerRedisDb, lazyConnect: true });
    try {
      const ids = await sql<{ id: string }[]>`select id::text from booking`.catch(() => []);
      await redis.connect();
      for (let i = 0; i < ids.length; i += 1000) {
        const keys = ids.slice(i, i + 1000).map((r) => `booking:${r.id}`);
        if (keys.length > 0) await redis.del(...keys);
      }
    } catch (error) {
      progress(`deleting the peer's Redis keys of ${name} failed: ${String(error)}`);
    } finally {
      await sql.end({ timeout: 5 });
      redis.disconnect();
    }
  }
  await pg.unsafe(`drop database if exists "${name}" with (force)`);
  databases.delete(name);
  return stat ? Number(stat.deadlocks) : undefined;
}

/** Deletes the topics and the consumer groups whose names start with `prefix`. */
async function deleteKafkaPrefix(prefix: string): Promise<void> {
  const a = await admin();
  const topics = (await a.listTopics()).filter((t) => t.startsWith(prefix));
  if (topics.length > 0) await a.deleteTopics({ topics, timeout: 30_000 });
  // A group whose last member has only just left may still count as not empty: a few tries, a second apart.
  let left: string[] = [];
  for (let attempt = 0; attempt < 10; attempt++) {
    left = (await a.listGroups()).groups.map((g) => g.groupId).filter((g) => g.startsWith(prefix));
    if (left.length === 0) break;
    await a.deleteGroups(left).catch(() => {});
    left = (await a.listGroups()).groups.map((g) => g.groupId).filter((g) => g.startsWith(prefix));
    if (left.length === 0) break;
    await Bun.sleep(1000); // retry interval
  }
  if (left.length > 0) throw new Error(`consumer groups not deleted: ${left.join(", ")}`);
  topicPrefixes.delete(prefix);
}

/**
 * The peer's analytics listener counts bookings a day in its Redis database (`daily:bookings:<day>`): their
 * values before the run, put back at the end (a key that did not exist is deleted).
 */
let peerDailyBefore: Map<string, string> | undefined;
async function peerDailyCounters(): Promise<Map<string, string>> {
  const redis = new Redis({ host: "127.0.0.1", port: 6379, db: peerRedisDb, lazyConnect: true });
  try {
    await redis.connect();
    const keys = await redis.keys("daily:bookings:*");
    const values = keys.length > 0 ? await redis.mget(...keys) : [];
    return new Map(keys.map((k, i) => [k, values[i] ?? "0"]));
  } finally {
    redis.disconnect();
  }
}
async function restorePeerDailyCounters(): Promise<void> {
  if (!peerDailyBefore) return;
  const before = peerDailyBefore;
  const now = await peerDailyCounters();
  const redis = new Redis({ host: "127.0.0.1", port: 6379, db: peerRedisDb, lazyConnect: true });
  try {
    await redis.connect();
    for (const key of now.keys()) {
      const value = before.get(key);
      if (value === undefined) await redis.del(key);
      else await redis.set(key, value);
    }
  } finally {
    redis.disconnect();
  }
}

let cleaning: Promise<void> | undefined;
function cleanUpAll(): Promise<void> {
  cleaning ??= (async () => {
    await Promise.all([...children].map((c) => stopChild(c, 10_000).catch(() => {})));
    for (const prefix of [...topicPrefixes]) {
      await deleteKafkaPrefix(prefix).catch((e) => progress(`deleting ${prefix}* failed: ${String(e)}`));
    }
    for (const name of [...databases]) {
      await dropDatabase(name).catch((e) => progress(`dropping ${name} failed: ${String(e)}`));
    }
    await restorePeerDailyCounters().catch((e) =>
      progress(`restoring the peer's daily counters: ${String(e)}`),
    );
    await kafkaAdmin?.disconnect().catch(() => {});
    await pg.end({ timeout: 5 }).catch(() => {});
    if (process.env.BENCH_KEEP_LOGS) progress(`servers' logs kept in ${work}`);
    else rmSync(work, { recursive: true, force: true });
  })();
  return cleaning;
}

for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, () => {
    if (stopping) {
      progress(`${signal} again: killing what was started and exiting without cleaning up`);
      for (const child of children) child.kill("SIGKILL");
      process.exit(130);
    }
    stopping = signal;
    progress(`${signal}: stopping what was started, then cleaning up`);
    // The round running now sees its server and load generator end, stops and removes what it started; main()
    // then sees `stopping`, and the clean-up below removes anything left.
    for (const child of children) child.kill("SIGTERM");
    setTimeout(() => {
      progress("the clean-up did not finish within 120 s; exiting");
      for (const child of children) child.kill("SIGKILL");
      process.exit(130);
    }, 120_000).unref();
  });
}

// ---------------------------------------------------------------------------------------------- helpers

function freePort(): number {
  const server = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response("") });
  const port = server.port as number;
  server.stop(true);
  return port;
}

/** The last lines of a server's stdout and stderr (`<base>.out`, `<base>.err`). */
function tail(base: string, lines = 12): string {
  const last = (path: string) => {
    try {
      return readFileSync(path, "utf8").trimEnd().split("\n").slice(-lines).join("\n") || "(empty)";
    } catch {
      return "(no log)";
    }
  };
  return `${base}.out:\n${last(`${base}.out`)}\n${base}.err:\n${last(`${base}.err`)}`;
}

/** Polls `check` every `intervalMs` until it gives a truthy value; throws on timeout or when `child` exits. */
async function until<T>(
  check: () => Promise<T>,
  options: {
    timeoutMs: number;
    what: string | (() => string);
    child?: Child;
    log?: string;
    intervalMs?: number;
  },
): Promise<NonNullable<T>> {
  const { timeoutMs, child, log, intervalMs = 200 } = options;
  const what = () => (typeof options.what === "function" ? options.what() : options.what);
  const deadline = performance.now() + timeoutMs;
  while (performance.now() < deadline) {
    checkStop();
    if (child && (child.exitCode !== null || child.signalCode !== null)) {
      throw new Error(
        `${what()}: the process exited (${child.exitCode ?? child.signalCode}); its log:\n${log ? tail(log) : ""}`,
      );
    }
    const value = await check().catch(() => undefined);
    if (value) return value as NonNullable<T>;
    await Bun.sleep(intervalMs); // poll interval
  }
  throw new Error(
    `timed out after ${timeoutMs} ms waiting for ${what()}${log ? `; log:\n${tail(log)}` : ""}`,
  );
}

const CLK_TCK = Number(new TextDecoder().decode(Bun.spawnSync(["getconf", "CLK_TCK"]).stdout).trim()) || 100;

/** CPU time (ms) of a process and its live descendants, plus its reaped children's. */
function treeCpuMs(root: number): number {
  const parent = new Map<number, number>();
  const ticks = new Map<number, number>();
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, "utf8");
      const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      const pid = Number(name);
      parent.set(pid, Number(rest[1]));
      const own = Number(rest[11]) + Number(rest[12]);
      ticks.set(pid, pid === root ? own + Number(rest[13]) + Number(rest[14]) : own);
    } catch {
      // the process ended while we read /proc
    }
  }
  let total = 0;
  for (const [pid, t] of ticks) {
    let p: number | undefined = pid;
    for (let depth = 0; p !== undefined && p > 1 && depth < 64; depth++) {
      if (p === root) {
        total += t;
        break;
      }
      p = parent.get(p);
    }
  }
  return (total * 1000) / CLK_TCK;
}

function machineTicks(): { busy: number; total: number } {
  const ticks = (readFileSync("/proc/stat", "utf8").split("\n")[0] as string)
    .trim()
    .split(/\s+/)
    .slice(1)
    .map(Number);
  const idle = (ticks[3] ?? 0) + (ticks[4] ?? 0);
  const total = ticks.reduce((a, b) => a + b, 0);
  return { busy: total - idle, total };
}

/** Measures a server's CPU (its process tree) and the machine's over a span; call the result to end it. */
/** The Kafka broker(s) and the Postgres postmaster of this machine (their process trees hold the backends). */
function infraPids(): { kafka: number[]; postgres: number[] } {
  const comm = new Map<number, string>();
  const parent = new Map<number, number>();
  const kafka: number[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    const pid = Number(name);
    try {
      const stat = readFileSync(`/proc/${name}/stat`, "utf8");
      comm.set(pid, stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")")));
      parent.set(pid, Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]));
      const cmdline = readFileSync(`/proc/${name}/cmdline`, "utf8");
      if (cmdline.includes("kafka.Kafka")) kafka.push(pid);
    } catch {
      // the process ended while we read /proc
    }
  }
  const postgres = [...comm]
    .filter(([pid, c]) => c === "postgres" && comm.get(parent.get(pid) ?? 0) !== "postgres")
    .map(([pid]) => pid);
  return { kafka, postgres };
}
const INFRA = infraPids();

interface CpuUsed {
  serverMs: number;
  wallMs: number;
  serverPct: number;
  /** The Kafka broker's and Postgres' (every backend, every database) CPU, % of one core. */
  kafkaPct: number;
  postgresPct: number;
  machinePct: number;
}

/** Measures a server's CPU (its process tree), Kafka's, Postgres' and the machine's over a span. */
function cpuSpan(pid: number): () => CpuUsed {
  const sum = (pids: number[]) => pids.reduce((acc, p) => acc + treeCpuMs(p), 0);
  const wall = performance.now();
  const server = treeCpuMs(pid);
  const kafkaMs = sum(INFRA.kafka);
  const postgresMs = sum(INFRA.postgres);
  const machine = machineTicks();
  return () => {
    const serverMs = treeCpuMs(pid) - server;
    const wallMs = performance.now() - wall;
    const after = machineTicks();
    return {
      serverMs,
      wallMs,
      serverPct: (serverMs / wallMs) * 100,
      kafkaPct: ((sum(INFRA.kafka) - kafkaMs) / wallMs) * 100,
      postgresPct: ((sum(INFRA.postgres) - postgresMs) / wallMs) * 100,
      machinePct: ((after.busy - machine.busy) / Math.max(1, after.total - machine.total)) * 100,
    };
  };
}

class Statuses {
  readonly counts = new Map<string, number>();
  add(status: string | number, n = 1): void {
    const key = String(status);
    this.counts.set(key, (this.counts.get(key) ?? 0) + n);
  }
  get(status: string | number): number {
    return this.counts.get(String(status)) ?? 0;
  }
  total(): number {
    let n = 0;
    for (const v of this.counts.values()) n += v;
    return n;
  }
  /** e.g. "409:3, 202:1" for the statuses not in `except`; "none" when there are none. */
  describe(except: string[] = ["201"]): string {
    const parts = [...this.counts]
      .filter(([s]) => !except.includes(s))
      .sort(([a], [b]) => Number(a) - Number(b))
      .map(([s, n]) => `${s === "0" ? "no answer" : s}:${n}`);
    return parts.length ? parts.join(", ") : "none";
  }
}

/**
 * Others' work on this machine, sampled every 2 s (asynchronously): `bun test` runs and pitstop processes
 * (`main.ts`) this script did not start. `othersDuring` describes the samples of a span.
 */
const othersSamples: { at: number; tests: boolean; mains: boolean }[] = [];
const othersTimer = setInterval(async () => {
  const pgrep = async (pattern: string) => {
    const child = Bun.spawn(["pgrep", "-f", pattern], { stdout: "pipe", stderr: "ignore" });
    return (await new Response(child.stdout).text()).split("\n").filter(Boolean).map(Number);
  };
  const ours = new Set([...children].map((c) => c.pid));
  const [tests, mains] = await Promise.all([pgrep("bun(\\.exe)? test"), pgrep("main\\.ts")]);
  othersSamples.push({
    at: performance.now(),
    tests: tests.length > 0,
    mains: mains.some((pid) => !ours.has(pid)),
  });
}, 2000);
othersTimer.unref();
function othersDuring(from: number, to: number): string {
  const samples = othersSamples.filter((x) => x.at >= from && x.at <= to);
  const tests = samples.filter((x) => x.tests).length;
  const mains = samples.filter((x) => x.mains).length;
  return `${tests} / ${mains} of ${samples.length}`;
}

// ---------------------------------------------------------------------------------------- set-up checks

async function ensureTools(): Promise<{ wrk: string; java: string }> {
  if (!Bun.which("wrk")) {
    progress("wrk is missing: apt-get install -y wrk");
    let r = Bun.spawnSync(["apt-get", "install", "-y", "wrk"], { stdout: "inherit", stderr: "inherit" });
    if (r.exitCode !== 0) {
      Bun.spawnSync(["apt-get", "update"], { stdout: "inherit", stderr: "inherit" });
      r = Bun.spawnSync(["apt-get", "install", "-y", "wrk"], { stdout: "inherit", stderr: "inherit" });
    }
    if (!Bun.which("wrk")) throw new Error("wrk is not installed and apt-get install -y wrk failed");
  }
  for (const tool of ["java", "mvn"]) {
    if (!Bun.which(tool)) throw new Error(`${tool} is needed for the Spring peer (Java 17 and Maven)`);
  }
  const wrk = new TextDecoder()
    .decode(Bun.spawnSync(["wrk", "-v"]).stdout)
    .split("\n")[0]
    ?.replace(/ Copyright.*/, "")
    .trim();
  const java = new TextDecoder()
    .decode(Bun.spawnSync(["java", "-version"]).stderr)
    .split("\n")[0]
    ?.trim();
  return { wrk: wrk ?? "wrk", java: java ?? "java" };
}

async function ensureKafka(): Promise<void> {
  const probe = createKafka({
    brokers: config.kafka.brokers,
    clientId: `bench-probe-${RUN}`,
    overrides: { retry: { retries: 0 } },
  });
  const up = await pingKafka(probe).then(
    () => true,
    () => false,
  );
  if (up) return;
  progress("Kafka is not answering: npm run kafka -- start");
  const r = Bun.spawnSync([BUN, "scripts/kafka.ts", "start"], {
    cwd: ROOT,
    stdout: "inherit",
    stderr: "inherit",
  });
  if (r.exitCode !== 0) throw new Error("starting Kafka (npm run kafka -- start) failed");
}

function buildPeer(): { jar: string; dir: string; digest: string } {
  if (!existsSync(join(PEER_DIR, "pom.xml"))) throw new Error(`no Spring peer at ${PEER_DIR}`);
  const copy = join(work, "peer");
  Bun.spawnSync(["mkdir", "-p", copy]);
  const cp = Bun.spawnSync(["cp", "-r", PEER_DIR, copy], { stderr: "pipe" });
  if (cp.exitCode !== 0) throw new Error(`copying the peer failed: ${new TextDecoder().decode(cp.stderr)}`);
  const dir = join(copy, "spring-seed");
  progress(`building the peer in ${dir} (mvn -q -DskipTests package)`);
  const build = Bun.spawnSync(["mvn", "-q", "-DskipTests", "package"], {
    cwd: dir,
    stdout: "pipe",
    stderr: "pipe",
  });
  const jar = join(dir, "target", "spring-seed-peer.jar");
  if (build.exitCode !== 0 || !existsSync(jar)) {
    throw new Error(
      `building the peer failed:\n${new TextDecoder().decode(build.stdout)}${new TextDecoder().decode(build.stderr)}`,
    );
  }
  // A digest of the peer's sources, for the record (its folder is not a git repository).
  const hasher = new Bun.CryptoHasher("sha256");
  const files = ["pom.xml", ...new Bun.Glob("src/**/*").scanSync({ cwd: PEER_DIR })].sort();
  for (const file of files) {
    hasher.update(file);
    hasher.update(readFileSync(join(PEER_DIR, file)));
  }
  return { jar, dir, digest: hasher.digest("hex").slice(0, 12) };
}

/** Which actors/, http/ and top-level service files changed since HEAD (runtime/ is in codeState()). */
function otherCodeState(): string {
  const out = new TextDecoder()
    .decode(
      Bun.spawnSync(
        ["git", "status", "--porcelain", "--", "actors", "http", "main.ts", "system.ts", "config.ts", "db"],
        { cwd: ROOT },
      ).stdout,
    )
    .split("\n")
    .filter(Boolean)
    .map((l) => l.trim());
  const hasher = new Bun.CryptoHasher("sha256");
  const files = [...new Bun.Glob("{actors,http,db}/**/*.ts").scanSync({ cwd: ROOT })]
    .concat(["main.ts", "system.ts", "config.ts"])
    .sort();
  for (const file of files) {
    hasher.update(file);
    hasher.update(readFileSync(join(ROOT, file)));
  }
  return `actors/, http/, db/, main.ts, system.ts, config.ts vs HEAD: ${out.length ? out.join(", ") : "clean"}; digest ${hasher.digest("hex").slice(0, 12)}`;
}

function postgresLog(): string | undefined {
  const dir = "/var/log/postgresql";
  try {
    const logs = readdirSync(dir)
      .filter((f) => f.endsWith(".log"))
      .map((f) => ({ path: join(dir, f), mtime: statSync(join(dir, f)).mtimeMs }))
      .sort((a, b) => b.mtime - a.mtime);
    return logs[0]?.path;
  } catch {
    return undefined;
  }
}

// ----------------------------------------------------------------------------------------- customers

const tokens = createTokens(config.auth.jwtSecret, 12 * 3600);
const customersFile = join(work, "customers.txt");
async function writeCustomers(): Promise<{ id: string; token: string }[]> {
  const list: { id: string; token: string }[] = [];
  for (let i = 0; i < CUSTOMERS; i += 500) {
    const chunk = await Promise.all(
      Array.from({ length: Math.min(500, CUSTOMERS - i) }, async (_, j) => {
        const id = `bench-${RUN}-c${i + j}`;
        return { id, token: await tokens.sign({ sub: id, role: "customer" }) };
      }),
    );
    list.push(...chunk);
  }
  writeFileSync(customersFile, `${list.map((c) => `${c.id} ${c.token}`).join("\n")}\n`);
  return list;
}

/** A whole hour 2 h to 364 days ahead, ISO with Z, as the load generators send. */
function randomHour(): string {
  const hour0 = Math.floor(Date.now() / 3_600_000) * 3_600_000;
  return new Date(hour0 + 3_600_000 * (2 + Math.floor(Math.random() * (364 * 24 - 1))))
    .toISOString()
    .replace(".000Z", "Z");
}

// --------------------------------------------------------------------------------------------- contenders

type Key = "plain" | "peer-racy" | "peer-atomic" | "pitstop";
const NAMES: Record<Key, string> = {
  plain: "plain Elysia + postgres.js insert",
  "peer-racy": "spring peer (racy)",
  "peer-atomic": "spring peer (race-free, ?slotCheck=atomic)",
  pitstop: "pitstop (bun main.ts)",
};
const ALL: Key[] = ["plain", "peer-racy", "peer-atomic", "pitstop"];
/** The contenders measured, in this order (BENCH_CONTENDERS narrows it, e.g. "plain,pitstop"). */
const ORDER: Key[] = process.env.BENCH_CONTENDERS
  ? ALL.filter((k) =>
      (process.env.BENCH_CONTENDERS ?? "")
        .split(",")
        .map((c) => c.trim())
        .includes(k),
    )
  : ALL;

interface Running {
  key: Key;
  pid: number;
  baseUrl: string;
  path: string;
  body: "token" | "customer";
  database: string;
  /** Consumer groups (and topics) of this start begin with this; none for plain. */
  groupPrefix?: string;
  /** Pitstop: unpublished outbox rows. */
  outbox?: () => Promise<number>;
  startMs: number;
  /** Stops the process and removes its database, topics and groups; gives the database's deadlock count. */
  stop(): Promise<{ deadlocks?: number }>;
}

/** A started contender before it is known to be ready (what the probes need). */
type Contender = Omit<Running, "stop" | "startMs">;

let peerJar = "";
let peerDir = "";

async function probeBooking(running: Contender, sub: string): Promise<number> {
  const body: Record<string, string> = {
    vehicleId: "car-1",
    serviceType: "INSPECTION",
    bookingDate: randomHour(),
  };
  const headers: Record<string, string> = { "content-type": "application/json" };
  if (running.body === "token") {
    headers.authorization = `Bearer ${await tokens.sign({ sub, role: "customer" })}`;
  } else {
    body.customerId = sub;
  }
  const response = await fetch(`${running.baseUrl}${running.path}`, {
    method: "POST",
    headers,
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(10_000),
  });
  await response.arrayBuffer();
  return response.status;
}

/** Waits until a booking round-trips 201 (a new probe customer per attempt). */
async function untilBooks(r: Contender, child: Child, log: string): Promise<void> {
  let attempt = 0;
  let last = "no answer yet";
  await until(
    async () => {
      const status = await probeBooking(r, `probe-${RUN}-${shortId()}-${attempt++}`).catch((e: unknown) => {
        last = String(e);
        return 0;
      });
      if (status !== 0) last = `HTTP ${status}`;
      return status === 201;
    },
    {
      timeoutMs: 90_000,
      intervalMs: 300,
      what: () => `${NAMES[r.key]} to answer a booking with 201 (last: ${last}${lastLoggedError(log)})`,
      child,
      log,
    },
  );
}

/** The last error the server logged (pino JSON, level >= 50), as "; last logged error: <msg>: <err.message>". */
function lastLoggedError(base: string): string {
  try {
    const lines = readFileSync(`${base}.out`, "utf8").trimEnd().split("\n").reverse();
    for (const line of lines) {
      if (!line.startsWith("{")) continue;
      const entry = JSON.parse(line) as { level?: number; msg?: string; err?: { message?: string } };
      if ((entry.level ?? 0) >= 50) {
        return `; last logged error: ${entry.msg ?? ""}${entry.err?.message ? `: ${entry.err.message}` : ""}`;
      }
    }
  } catch {
    // no log, or not JSON
  }
  return "";
}

const childEnv = (extra: Record<string, string>): Record<string, string> => {
  const env: Record<string, string> = {};
  // The system's limits stay at their defaults; nothing of the caller's environment changes what is measured.
  const drop = new Set([
    "RATE_LIMIT_PER_MINUTE",
    "MAX_OPEN_BOOKINGS",
    "ASK_TIMEOUT_MS",
    "PITSTOP_RUN",
    "DATABASE_POOL_SIZE",
    "LOG_LEVEL",
    "NODE_ENV",
    "PORT",
    "HOST",
  ]);
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !drop.has(k)) env[k] = v;
  return { ...env, ...extra };
};

/**
 * Starts a contender's server process (`cmd`, its stdout and stderr in `<work>/<logName>-<id>.out` and `.err`),
 * waits until `ready`, and gives it with its `stop`: the process stopped, then `cleanUp` (its topics and groups),
 * then its database dropped. A start that does not get ready is stopped the same way before the error is thrown.
 */
async function launch(spec: {
  key: Key;
  id: string;
  logName: string;
  database: string;
  port: number;
  cmd: string[];
  cwd: string;
  env: Record<string, string>;
  path: string;
  body: Running["body"];
  groupPrefix?: string;
  outbox?: () => Promise<number>;
  cleanUp?: () => Promise<void>;
  ready: (base: Contender, child: Child, log: string) => Promise<void>;
}): Promise<Running> {
  const log = join(work, `${spec.logName}-${spec.id}`);
  const started = performance.now();
  const child = spawnTracked(spec.cmd, {
    cwd: spec.cwd,
    env: childEnv(spec.env),
    stdout: Bun.file(`${log}.out`),
    stderr: Bun.file(`${log}.err`),
  });
  const base: Contender = {
    key: spec.key,
    pid: child.pid,
    baseUrl: `http://127.0.0.1:${spec.port}`,
    path: spec.path,
    body: spec.body,
    database: spec.database,
    ...(spec.groupPrefix ? { groupPrefix: spec.groupPrefix } : {}),
  };
  const stop = async () => {
    await stopChild(child);
    await spec.cleanUp?.();
    return { deadlocks: await dropDatabase(spec.database) };
  };
  try {
    await spec.ready(base, child, log);
  } catch (error) {
    await stop().catch(() => {});
    throw error;
  }
  return {
    ...base,
    startMs: performance.now() - started,
    ...(spec.outbox ? { outbox: spec.outbox } : {}),
    stop,
  };
}

/** Polls `GET <baseUrl><path>` until it answers 200. */
function until200(base: Contender, path: string, timeoutMs: number, what: string, child: Child, log: string) {
  return until(
    async () => (await fetch(`${base.baseUrl}${path}`, { signal: AbortSignal.timeout(3000) })).status === 200,
    { timeoutMs, what, child, log },
  );
}

async function startPitstop(): Promise<Running> {
  const id = shortId();
  const database = `pitstop_bench_${id}`;
  const namespace = `bench${id}`;
  const port = freePort();
  databases.add(database);
  topicPrefixes.add(`${namespace}.`);
  topicPrefixes.add(`pitstop-${namespace}.`);
  // Connects on its first query (the database exists by then): reads the unpublished outbox rows.
  const sql = postgres(dbUrl(database), { max: 1, onnotice: () => {} });
  return launch({
    key: "pitstop",
    id,
    logName: "pitstop",
    database,
    port,
    cmd: [BUN, "--max-http-header-size=262144", "main.ts"],
    cwd: ROOT,
    env: {
      NODE_ENV: "development",
      DATABASE_URL: dbUrl(database),
      PITSTOP_NAMESPACE: namespace,
      LOG_LEVEL: "warn",
      PORT: String(port),
    },
    path: "/api/v1/bookings",
    body: "token",
    groupPrefix: `pitstop-${namespace}.`,
    outbox: async () =>
      Number((await sql<{ n: string }[]>`select count(*) as n from outbox where published_at is null`)[0]?.n),
    cleanUp: async () => {
      await deleteKafkaPrefix(`${namespace}.`).catch((e) => progress(`topics of ${namespace}: ${String(e)}`));
      await deleteKafkaPrefix(`pitstop-${namespace}.`).catch((e) =>
        progress(`groups of ${namespace}: ${String(e)}`),
      );
      await sql.end({ timeout: 5 }).catch(() => {});
    },
    ready: async (base, child, log) => {
      await until200(base, "/healthz", 120_000, "pitstop /healthz 200", child, log);
      await until200(base, "/readyz", 90_000, "pitstop /readyz 200", child, log);
      await untilBooks(base, child, log);
    },
  });
}

async function startPeer(atomic: boolean): Promise<Running> {
  const id = shortId();
  const database = `peer_bench_${id}`;
  const prefix = `peerbench${id}.`;
  const port = freePort();
  databases.add(database);
  topicPrefixes.add(prefix);
  return launch({
    key: atomic ? "peer-atomic" : "peer-racy",
    id,
    logName: "peer",
    database,
    port,
    cmd: ["java", "-jar", peerJar],
    cwd: peerDir,
    env: { PORT: String(port), PEER_DATABASE: database, PEER_TOPIC_PREFIX: prefix },
    path: atomic ? "/api/v1/bookings?slotCheck=atomic" : "/api/v1/bookings",
    body: "customer",
    groupPrefix: prefix,
    cleanUp: async () => {
      await deleteKafkaPrefix(prefix).catch((e) => progress(`topics of ${prefix}: ${String(e)}`));
    },
    ready: async (base, child, log) => {
      await until200(base, "/healthz", 120_000, "the peer's /healthz 200", child, log);
      await untilBooks(base, child, log);
    },
  });
}

async function startPlain(): Promise<Running> {
  const id = shortId();
  const database = `plain_bench_${id}`;
  const port = freePort();
  databases.add(database);
  await pg.unsafe(`create database "${database}"`);
  return launch({
    key: "plain",
    id,
    logName: "plain",
    database,
    port,
    cmd: [BUN, "bench/plain-route.ts"],
    cwd: ROOT,
    env: { PORT: String(port), DATABASE_URL: dbUrl(database) },
    path: "/bookings",
    body: "customer",
    ready: (base, child, log) => untilBooks(base, child, log),
  });
}

const START: Record<Key, () => Promise<Running>> = {
  plain: startPlain,
  "peer-racy": () => startPeer(false),
  "peer-atomic": () => startPeer(true),
  pitstop: startPitstop,
};

// ------------------------------------------------------------------------------------------ measurements

interface Backlog {
  lag: number;
  outbox: number;
  groups: number;
  behind: string[];
}

/** Total lag of every consumer group starting with `prefix`: committed offsets vs the partitions' ends. */
async function groupLag(prefix: string): Promise<{ lag: number; groups: number; behind: string[] }> {
  const a = await admin();
  const ids = (await a.listGroups()).groups.map((g) => g.groupId).filter((g) => g.startsWith(prefix));
  if (ids.length === 0) return { lag: 0, groups: 0, behind: [] };
  const described = await a.describeGroups(ids);
  const ends = new Map<string, Promise<Map<number, bigint>>>();
  const endsOf = (topic: string) => {
    let e = ends.get(topic);
    if (!e) {
      e = a.fetchTopicOffsets(topic).then((os) => new Map(os.map((o) => [o.partition, BigInt(o.high)])));
      ends.set(topic, e);
    }
    return e;
  };
  let lag = 0;
  const behind: string[] = [];
  await Promise.all(
    ids.map(async (groupId) => {
      const committed = await a.fetchOffsets({ groupId });
      // The group's topics: what its members subscribe to, and what it has committed offsets for.
      const topics = new Set(committed.map((c) => c.topic));
      for (const member of described.groups.find((g) => g.groupId === groupId)?.members ?? []) {
        try {
          for (const t of AssignerProtocol.MemberMetadata.decode(member.memberMetadata)?.topics ?? [])
            topics.add(t);
        } catch {
          // not the classic consumer protocol's metadata: the committed topics are all we know
        }
      }
      let groupLagSum = 0;
      const topicLags: string[] = [];
      for (const topic of topics) {
        const partitions = committed.find((c) => c.topic === topic)?.partitions ?? [];
        let topicLag = 0;
        let behindPartitions = 0;
        for (const [partition, end] of await endsOf(topic)) {
          const at = BigInt(partitions.find((p) => p.partition === partition)?.offset ?? "-1");
          const behindBy = Number(end - (at < 0n ? 0n : at));
          topicLag += behindBy;
          if (behindBy > 0) behindPartitions++;
        }
        groupLagSum += topicLag;
        if (topicLag > 0) topicLags.push(`${topic}=${topicLag} in ${behindPartitions} partitions`);
      }
      lag += groupLagSum;
      if (groupLagSum > 0) behind.push(`${groupId.slice(prefix.length)}: ${topicLags.join(" + ")}`);
    }),
  );
  return { lag, groups: ids.length, behind };
}

async function backlog(r: Running): Promise<Backlog> {
  if (!r.groupPrefix) return { lag: 0, outbox: 0, groups: 0, behind: [] };
  const [g, outbox] = await Promise.all([groupLag(r.groupPrefix), r.outbox ? r.outbox() : 0]);
  return { ...g, outbox };
}

interface KeepUp {
  lagAtStop: number;
  outboxAtStop: number;
  groups: number;
  /** ms from load stop until a poll saw lag 0 (and no unpublished outbox row); NaN when it did not within the timeout. */
  msToZero: number;
  polls: number;
  behindAtEnd: string[];
}

/** From the moment the load stopped: backlog now, then polled until it is 0 (bounded). */
async function keepUp(r: Running, timeoutMs: number): Promise<KeepUp> {
  const t0 = performance.now();
  const first = await backlog(r);
  let last = first;
  let polls = 1;
  while (last.lag + last.outbox > 0 && performance.now() - t0 < timeoutMs && !stopping) {
    await Bun.sleep(50); // poll interval
    last = await backlog(r);
    polls++;
  }
  const zero = last.lag + last.outbox === 0;
  return {
    lagAtStop: first.lag,
    outboxAtStop: first.outbox,
    groups: first.groups,
    msToZero: zero ? (first.lag + first.outbox === 0 ? 0 : performance.now() - t0) : Number.NaN,
    polls,
    behindAtEnd: last.behind,
  };
}

interface WrkResult {
  durationUs: number;
  requests: number;
  p50Us: number;
  p99Us: number;
  maxUs: number;
  errors: { connect: number; read: number; write: number; status: number; timeout: number };
  statuses: Record<string, number>;
}

/**
 * Runs a load generator (`what`, for errors) as a process of ours (stopped with the rest on SIGINT/SIGTERM) and
 * gives the JSON of its stdout's `BENCH_RESULT <json>` line.
 */
async function runForResult<T>(
  what: string,
  cmd: string[],
  options: { cwd?: string; env?: Record<string, string | undefined> },
): Promise<T> {
  checkStop();
  const child = Bun.spawn(cmd, { ...options, stdout: "pipe", stderr: "pipe" });
  const tracked = child as unknown as Child;
  children.add(tracked);
  const [out, err] = await Promise.all([
    new Response(child.stdout).text(),
    new Response(child.stderr).text(),
  ]);
  await child.exited;
  children.delete(tracked);
  const line = out.split("\n").find((l) => l.startsWith("BENCH_RESULT "));
  if (!line) throw new Error(`${what} printed no result (exit ${child.exitCode}):\n${out}\n${err}`);
  return JSON.parse(line.slice("BENCH_RESULT ".length)) as T;
}

function runWrk(r: Running, connections: number, seconds: number): Promise<WrkResult> {
  return runForResult<WrkResult>(
    "wrk",
    [
      "wrk",
      `-t${WRK_THREADS}`,
      `-c${connections}`,
      `-d${seconds}s`,
      "--timeout",
      `${WRK_TIMEOUT_S}s`,
      "-s",
      LUA,
      `${r.baseUrl}${r.path}`,
    ],
    {
      env: {
        ...process.env,
        BENCH_WRK_CUSTOMERS: customersFile,
        BENCH_WRK_BODY: r.body,
        BENCH_WRK_PATH: r.path,
      },
    },
  );
}

function runGenerator<T>(spec: object): Promise<T> {
  return runForResult<T>("bench/open-loop.ts", [BUN, "bench/open-loop.ts", JSON.stringify(spec)], {
    cwd: ROOT,
  });
}

/** After a start: the wrk warm-up (discarded), then until the contender's backlog is 0 (bounded), then 1 s. */
async function warmUp(r: Running, connections: number): Promise<{ requests: number; settleMs: number }> {
  const w = WARMUP_S > 0 ? await runWrk(r, connections, WARMUP_S) : undefined;
  const t0 = performance.now();
  const settled = await keepUp(r, SETTLE_TIMEOUT_MS);
  if (Number.isNaN(settled.msToZero)) {
    progress(
      `  ${NAMES[r.key]}: backlog not 0 ${SETTLE_TIMEOUT_MS} ms after the warm-up (${settled.behindAtEnd})`,
    );
  }
  await Bun.sleep(1000); // let the servers' background work (flushes, GC) of the warm-up pass
  return { requests: w?.requests ?? 0, settleMs: performance.now() - t0 };
}

/**
 * One round with a freshly started contender: `measure` fills `result`; an error (of the start too) is recorded in
 * `result.error` and logged as "<what> failed"; the contender is always stopped, its database's deadlocks kept in
 * `result.deadlocks` (a failing stop is logged unless `quietStop`).
 */
async function withContender<R extends { error?: string; deadlocks?: number }>(
  result: R,
  start: () => Promise<Running>,
  what: string,
  measure: (running: Running) => Promise<void>,
  quietStop = false,
): Promise<R> {
  let running: Running | undefined;
  try {
    running = await start();
    await measure(running);
  } catch (error) {
    result.error = error instanceof Error ? error.message : String(error);
    progress(`  ${what} failed: ${result.error}`);
  } finally {
    if (running) {
      const name = NAMES[running.key];
      const stopped = await running.stop().catch((e) => {
        if (!quietStop) progress(`  stopping ${name} failed: ${String(e)}`);
        return { deadlocks: undefined };
      });
      result.deadlocks = stopped.deadlocks;
    }
  }
  return result;
}

/** Counts of a load generator's `{ status: count }`. */
function statusesOf(counts: Record<string, number>): Statuses {
  const statuses = new Statuses();
  for (const [s, n] of Object.entries(counts)) statuses.add(s, n);
  return statuses;
}

/** The CPU figures of a measured span that every round reports besides the server's CPU per 201. */
function cpuFigures(used: CpuUsed): Pick<CpuUsed, "serverPct" | "machinePct" | "kafkaPct" | "postgresPct"> {
  return {
    serverPct: used.serverPct,
    machinePct: used.machinePct,
    kafkaPct: used.kafkaPct,
    postgresPct: used.postgresPct,
  };
}

interface ClosedResult {
  key: Key;
  /** Samples in the measured span with others' `bun test` / others' main.ts running, of all samples. */
  others?: string;
  round: number;
  connections: number;
  error?: string;
  startMs?: number;
  warmupRequests?: number;
  requests?: number;
  seconds?: number;
  statuses?: Statuses;
  rate201?: number;
  p50Ms?: number;
  p99Ms?: number;
  maxMs?: number;
  socketErrors?: string;
  serverPct?: number;
  cpuMsPer201?: number;
  /** Server CPU from the load's start until its consumer groups caught up, per 201 (contenders with groups). */
  cpuMsPer201WithCatchUp?: number;
  machinePct?: number;
  kafkaPct?: number;
  postgresPct?: number;
  keepUp?: KeepUp;
  deadlocks?: number;
}

function closedRound(key: Key, round: number, connections: number): Promise<ClosedResult> {
  const result: ClosedResult = { key, round, connections };
  return withContender(result, START[key], `${NAMES[key]} round ${round}`, async (running) => {
    result.startMs = running.startMs;
    result.warmupRequests = (await warmUp(running, connections)).requests;
    const cpu = cpuSpan(running.pid);
    const from = performance.now();
    const w = await runWrk(running, connections, DURATION_S);
    const used = cpu();
    result.others = othersDuring(from, performance.now());
    if (running.groupPrefix) result.keepUp = await keepUp(running, KEEPUP_TIMEOUT_MS);
    const withCatchUp = cpu(); // the same span, on until the consumer groups caught up
    const statuses = statusesOf(w.statuses);
    const seconds = w.durationUs / 1e6;
    const e = w.errors;
    Object.assign(result, {
      requests: w.requests,
      seconds,
      statuses,
      rate201: statuses.get(201) / seconds,
      p50Ms: w.p50Us / 1000,
      p99Ms: w.p99Us / 1000,
      maxMs: w.maxUs / 1000,
      socketErrors:
        e.connect + e.read + e.write + e.timeout
          ? `connect ${e.connect}, read ${e.read}, write ${e.write}, timeout ${e.timeout}`
          : "0",
      ...cpuFigures(used),
      cpuMsPer201: used.serverMs / Math.max(1, statuses.get(201)),
      cpuMsPer201WithCatchUp: running.groupPrefix
        ? withCatchUp.serverMs / Math.max(1, statuses.get(201))
        : undefined,
    });
  });
}

interface OpenResult {
  key: Key;
  others?: string;
  round: number;
  error?: string;
  sent?: number;
  statuses?: Statuses;
  p50Ms?: number;
  p99Ms?: number;
  maxMs?: number;
  sendLagP99Ms?: number;
  sendLagMaxMs?: number;
  serverPct?: number;
  cpuMsPerBooking?: number;
  machinePct?: number;
  kafkaPct?: number;
  postgresPct?: number;
  deadlocks?: number;
}

interface OpenOutput {
  sent: number;
  sentMs: number;
  statuses: Record<string, number>;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  sendLagP99Ms: number;
  sendLagMaxMs: number;
}

function openRound(key: Key, round: number): Promise<OpenResult> {
  const result: OpenResult = { key, round };
  return withContender(result, START[key], `${NAMES[key]} open-loop round ${round}`, async (running) => {
    await warmUp(running, CONNECTIONS[0] ?? 20);
    const cpu = cpuSpan(running.pid);
    const from = performance.now();
    const o = await runGenerator<OpenOutput>({
      mode: "open",
      url: `${running.baseUrl}${running.path}`,
      body: running.body,
      customersFile,
      rate: OPEN_RATE,
      durationS: DURATION_S,
      timeoutMs: 10_000,
    });
    const used = cpu();
    result.others = othersDuring(from, performance.now());
    const statuses = statusesOf(o.statuses);
    Object.assign(result, {
      sent: o.sent,
      statuses,
      p50Ms: o.p50Ms,
      p99Ms: o.p99Ms,
      maxMs: o.maxMs,
      sendLagP99Ms: o.sendLagP99Ms,
      sendLagMaxMs: o.sendLagMaxMs,
      ...cpuFigures(used),
      cpuMsPerBooking: used.serverMs / Math.max(1, statuses.get(201)),
    });
  });
}

interface BurstSlot {
  slot: string;
  requests: number;
  statuses: Statuses;
  confirmedInDb: number;
  holdsInDb: number;
  capacity: number;
}

interface BurstResult {
  error?: string;
  startMs?: number;
  statuses?: Statuses;
  slowestMs?: number;
  p50Ms?: number;
  slots?: BurstSlot[];
  deadlocks?: number;
  sample202?: string;
}

function burstRound(customers: { id: string; token: string }[]): Promise<BurstResult> {
  const result: BurstResult = {};
  const measure = async (running: Running) => {
    result.startMs = running.startMs;
    const hour =
      Math.floor(Date.now() / 3_600_000) * 3_600_000 +
      3_600_000 * (24 * (7 + Math.floor(Math.random() * 300)));
    const slotDefs: { type: ServiceType; at: string }[] = [
      { type: "OIL_CHANGE", at: new Date(hour).toISOString() },
      { type: "BRAKE_SERVICE", at: new Date(hour).toISOString() },
      { type: "OIL_CHANGE", at: new Date(hour + 3_600_000).toISOString() },
    ];
    const requests = Array.from({ length: BURST }, (_, i) => {
      const slot = slotDefs[i % slotDefs.length] as (typeof slotDefs)[number];
      const customer = customers[i % customers.length] as { id: string; token: string };
      return {
        token: customer.token,
        body: JSON.stringify({ vehicleId: "car-1", serviceType: slot.type, bookingDate: slot.at }),
      };
    });
    const requestsFile = join(work, "burst.json");
    writeFileSync(requestsFile, JSON.stringify(requests));
    const out = await runGenerator<{
      answers: { index: number; status: number; ms: number; text: string }[];
    }>({
      mode: "burst",
      url: `${running.baseUrl}${running.path}`,
      requestsFile,
      timeoutMs: 30_000,
    });
    const statuses = new Statuses();
    for (const a of out.answers) statuses.add(a.status);
    result.statuses = statuses;
    result.slowestMs = Math.max(...out.answers.map((a) => a.ms));
    result.p50Ms = median(out.answers.map((a) => a.ms));
    result.sample202 = out.answers.find((a) => a.status !== 201 && a.status !== 409)?.text;
    // What the database holds once the actors are done: confirmed bookings per slot and the slots' holds.
    await Bun.sleep(3000); // a 202 still deciding would decide by now (the ask timeout has passed)
    const sql = postgres(dbUrl(running.database), { max: 1, onnotice: () => {} });
    try {
      const confirmed = await sql<{ slot: string; n: number }[]>`
        select state->>'slotId' as slot, count(*)::int as n from actor_state
        where kind = 'booking' and state->>'status' = 'CONFIRMED' group by 1`;
      const holds = await sql<{ key: string; n: number }[]>`
        select actor_key as key, (select count(*) from jsonb_object_keys(coalesce(state->'holds', '{}'::jsonb)))::int as n
        from actor_state where kind = 'slot'`;
      result.slots = slotDefs.map((s, i) => {
        const slotStatuses = new Statuses();
        for (const a of out.answers) if (a.index % slotDefs.length === i) slotStatuses.add(a.status);
        const suffix = `${s.type}@${s.at}`;
        return {
          slot: suffix,
          requests: slotStatuses.total(),
          statuses: slotStatuses,
          confirmedInDb: confirmed.find((c) => c.slot?.endsWith(`/${suffix}`))?.n ?? 0,
          holdsInDb: holds.find((h) => h.key.endsWith(`/${suffix}`))?.n ?? 0,
          capacity: SERVICE_TYPES[s.type].capacityPerSlot,
        };
      });
    } finally {
      await sql.end({ timeout: 5 });
    }
  };
  return withContender(result, startPitstop, "burst", measure, true);
}

// ------------------------------------------------------------------------------------------------ the run

async function main(): Promise<void> {
  const tools = await ensureTools();
  await ensureKafka();
  const needsPeer = ORDER.some((k) => k.startsWith("peer"));
  const peer = needsPeer ? buildPeer() : { jar: "", dir: "", digest: "(not run)" };
  peerJar = peer.jar;
  peerDir = peer.dir;
  peerDailyBefore = await peerDailyCounters();
  const pgLog = postgresLog();
  const pgLogStart = pgLog ? statSync(pgLog).size : 0;
  const customers = await writeCustomers();
  progress(
    `run ${RUN}: ${CUSTOMERS} customers, ${ROUNDS} round(s), ${DURATION_S} s measured, warm-up ${WARMUP_S} s, connections ${CONNECTIONS.join("/")}; logs in ${work}`,
  );

  // 1. closed loop
  const closed: ClosedResult[] = [];
  for (let round = 1; round <= ROUNDS; round++) {
    for (const connections of CONNECTIONS) {
      for (const key of ORDER) {
        checkStop();
        progress(`closed loop round ${round}, ${connections} connections: ${NAMES[key]}`);
        const r = await closedRound(key, round, connections);
        closed.push(r);
        if (!r.error) {
          progress(
            `  ${fmt(r.rate201 ?? 0)} 201/s, others ${r.statuses?.describe()}, p50 ${fmt(r.p50Ms ?? 0, 2)} p99 ${fmt(r.p99Ms ?? 0, 2)} ms, CPU ${fmt(r.serverPct ?? 0)} % (${fmt(r.cpuMsPer201 ?? 0, 2)} ms/201)${r.keepUp ? `, lag at stop ${r.keepUp.lagAtStop} + outbox ${r.keepUp.outboxAtStop}, 0 after ${fmt(r.keepUp.msToZero, 0)} ms` : ""}`,
          );
        }
      }
    }
  }

  // 2. open loop
  const open: OpenResult[] = [];
  for (let round = 1; round <= ROUNDS; round++) {
    for (const key of ORDER) {
      checkStop();
      progress(`open loop round ${round}, ${OPEN_RATE}/s: ${NAMES[key]}`);
      const r = await openRound(key, round);
      open.push(r);
      if (!r.error) {
        progress(
          `  ${r.sent} sent, ${r.statuses?.describe([])}, p50 ${fmt(r.p50Ms ?? 0, 2)} p99 ${fmt(r.p99Ms ?? 0, 2)} ms, CPU ${fmt(r.serverPct ?? 0)} % (${fmt(r.cpuMsPerBooking ?? 0, 2)} ms/booking)`,
        );
      }
    }
  }

  // 3. burst over 3 slots
  progress(`${BURST} concurrent bookings over 3 slots (pitstop, fresh start)`);
  checkStop();
  const burst = ORDER.includes("pitstop") ? await burstRound(customers) : { error: "pitstop not run" };
  checkStop();
  if (!burst.error) {
    progress(`  ${burst.statuses?.describe([])}, slowest ${fmt(burst.slowestMs ?? 0)} ms`);
  }

  // 4. deadlocks in the server log
  let logDeadlocks: number | undefined;
  if (pgLog) {
    const size = statSync(pgLog).size;
    const from = size >= pgLogStart ? pgLogStart : 0;
    const added = readFileSync(pgLog).subarray(from).toString("utf8");
    logDeadlocks = added.split("\n").filter((l) => l.includes("deadlock detected")).length;
  }

  await cleanUpAll();
  const codeAtEnd = codeState();
  const otherCodeAtEnd = otherCodeState();
  report({ tools, peer, pgLog, logDeadlocks, closed, open, burst, codeAtEnd, otherCodeAtEnd });
}

// ----------------------------------------------------------------------------------------------- report

function report(r: {
  tools: { wrk: string; java: string };
  peer: { digest: string };
  pgLog?: string;
  logDeadlocks?: number;
  closed: ClosedResult[];
  open: OpenResult[];
  burst: BurstResult;
  codeAtEnd: string;
  otherCodeAtEnd: string;
}): void {
  const out: string[] = [];
  const n = (v: number | undefined, d = 1) => (v === undefined || Number.isNaN(v) ? "n/a" : fmt(v, d));
  const verdict = (ok: boolean | undefined) => (ok === undefined ? "n/a" : ok ? "**met**" : "missed");
  /** A round's latency and CPU cells: p50, p99, max ms, server CPU %, CPU ms per 201, Kafka / Postgres / machine. */
  const latencyAndCpu = (x: ClosedResult | OpenResult, cpuMsPer201: number | undefined) => [
    n(x.p50Ms, 2),
    n(x.p99Ms, 2),
    n(x.maxMs, 2),
    n(x.serverPct),
    n(cpuMsPer201, 2),
    `${n(x.kafkaPct)} / ${n(x.postgresPct)} / ${n(x.machinePct)}`,
  ];
  out.push("## POST /api/v1/bookings: pitstop vs the Spring peer vs a plain route, each its own process");
  out.push("");
  out.push(machineNote());
  out.push("");
  out.push(
    `Runtime measured: ${r.codeAtEnd}${sameCode(codeAtStart, r.codeAtEnd) ? "" : ` — CHANGED during the run (at start: ${codeAtStart})`}.`,
  );
  out.push("");
  out.push(
    `Service code: ${r.otherCodeAtEnd}${otherCodeAtStart.split("digest ")[1] === r.otherCodeAtEnd.split("digest ")[1] ? "" : ` — CHANGED during the run (at start: ${otherCodeAtStart})`}. Spring peer: ${PEER_DIR}, sources digest ${r.peer.digest}, ${r.tools.java}.`,
  );
  out.push("");
  out.push(
    `Run ${startedAt.toISOString()} to ${new Date().toISOString()} (UTC), ${elapsed()}. Load: ${r.tools.wrk}, \`-t${WRK_THREADS} -c<connections> -d${DURATION_S}s --timeout ${WRK_TIMEOUT_S}s\` with bench/booking-wrk.lua (a new random body per request, a random customer of ${CUSTOMERS}); open loop: bench/open-loop.ts at ${OPEN_RATE}/s for ${DURATION_S} s. Every round starts its contender fresh (new database, namespace / topic prefix), then a ${WARMUP_S} s wrk warm-up at the round's connections (the first count for the open loop), then waits until its consumer groups caught up, then 1 s. ${ROUNDS} round(s), contenders interleaved.${ROUNDS < 3 ? " **Fewer than 3 rounds: a short check, not a measurement.**" : ""} Pitstop: \`bun --max-http-header-size=262144 main.ts\`, LOG_LEVEL=warn, rate limit and open-bookings cap at their defaults (${config.http.rateLimitPerMinute}/min per token, ${config.service.maxOpenBookings} open per customer), ask timeout ${ASK_TIMEOUT_MS} ms. Server CPU: utime + stime of the server's process tree (/proc) over the measured span, in % of one core; Kafka / Postgres: the broker's and the postmaster's process trees the same way (Postgres: every database's backends, others' too); machine: all cores busy %. Latencies over every response (201 and others). "Others' bun test / main.ts": samples (every 2 s) of the measured span in which a \`bun test\` run, or a pitstop main.ts this script did not start, was running.`,
  );
  out.push("");

  // closed loop rounds
  out.push("### Closed loop, per round");
  out.push("");
  const closedRows = r.closed.map((c) =>
    c.error
      ? [
          c.round,
          c.connections,
          NAMES[c.key],
          `failed: ${c.error.split("\n")[0]}`,
          ...Array<string>(11).fill(""),
        ]
      : [
          c.round,
          c.connections,
          NAMES[c.key],
          c.requests ?? 0,
          c.statuses?.get(201) ?? 0,
          c.statuses?.describe() ?? "",
          n(c.rate201),
          ...latencyAndCpu(c, c.cpuMsPer201),
          `${c.socketErrors}; deadlocks ${c.deadlocks ?? "n/a"}; start ${n(c.startMs, 0)} ms; warm-up ${c.warmupRequests}`,
          c.others ?? "",
        ],
  );
  out.push(
    table(
      [
        "round",
        "conns",
        "contender",
        "responses",
        "201",
        "other statuses",
        "201/s",
        "p50 ms",
        "p99 ms",
        "max ms",
        "server CPU % of a core",
        "CPU ms per 201",
        "Kafka / Postgres CPU % of a core / machine CPU % (all cores)",
        "socket errors; db deadlocks; start; warm-up responses",
        "others' bun test / main.ts seen (samples)",
      ],
      closedRows,
    ),
  );
  out.push("");

  const totals = ORDER.map((key) => {
    const all = new Statuses();
    for (const c of r.closed.filter((x) => x.key === key)) {
      for (const [s, count] of c.statuses?.counts ?? []) all.add(s, count);
    }
    return `${NAMES[key]}: ${all.get(201)} x 201, others ${all.describe()}`;
  });
  out.push(`Statuses over every closed-loop round: ${totals.join("; ")}.`);
  out.push("");

  // keep-up
  out.push("### Consumer groups keep up (after each closed-loop round, from load stop)");
  out.push("");
  const keepRows = r.closed
    .filter((c) => c.keepUp)
    .map((c) => {
      const k = c.keepUp as KeepUp;
      return [
        c.round,
        c.connections,
        NAMES[c.key],
        n(c.rate201),
        k.groups,
        k.lagAtStop,
        c.key === "pitstop" ? k.outboxAtStop : "",
        Number.isNaN(k.msToZero)
          ? `not 0 after ${KEEPUP_TIMEOUT_MS} ms (${k.behindAtEnd.join(", ")})`
          : fmt(k.msToZero, 0),
        k.polls,
        n(c.cpuMsPer201, 2),
        n(c.cpuMsPer201WithCatchUp, 2),
      ];
    });
  out.push(
    table(
      [
        "round",
        "conns",
        "contender",
        "201/s",
        "groups",
        "lag at load stop",
        "unpublished outbox rows at load stop",
        "ms to 0",
        "polls",
        "server CPU ms per 201 (load only)",
        "server CPU ms per 201 (load + catch-up)",
      ],
      keepRows,
    ),
  );
  out.push("");

  // open loop
  out.push(`### Open loop, ${OPEN_RATE} bookings/s (latency from the intended send time), per round`);
  out.push("");
  const openRows = r.open.map((o) =>
    o.error
      ? [o.round, NAMES[o.key], `failed: ${o.error.split("\n")[0]}`, ...Array<string>(10).fill("")]
      : [
          o.round,
          NAMES[o.key],
          o.sent ?? 0,
          o.statuses?.describe([]) ?? "",
          ...latencyAndCpu(o, o.cpuMsPerBooking),
          `${n(o.sendLagP99Ms, 2)} / ${n(o.sendLagMaxMs, 2)}`,
          o.deadlocks ?? "n/a",
          o.others ?? "",
        ],
  );
  out.push(
    table(
      [
        "round",
        "contender",
        "sent",
        "statuses",
        "p50 ms",
        "p99 ms",
        "max ms",
        "server CPU % of a core",
        "CPU ms per booking (201)",
        "Kafka / Postgres CPU % of a core / machine CPU % (all cores)",
        "generator send lag p99 / max ms",
        "db deadlocks",
        "others' bun test / main.ts seen (samples)",
      ],
      openRows,
    ),
  );
  out.push("");

  // burst
  const b = r.burst;
  out.push(`### ${BURST} concurrent bookings over 3 slots (pitstop, fresh start, distinct customers)`);
  out.push("");
  let burstOk: boolean | undefined;
  if (b.error) {
    out.push(`failed: ${b.error}`);
  } else {
    const slots = b.slots ?? [];
    const counted = b.statuses ?? new Statuses();
    const allAnswered = counted.total() === counted.get(201) + counted.get(409);
    const inTime = (b.slowestMs ?? Number.POSITIVE_INFINITY) <= ASK_TIMEOUT_MS;
    const noOverbooking = slots.every(
      (s) => s.statuses.get(201) <= s.capacity && s.confirmedInDb <= s.capacity,
    );
    burstOk = allAnswered && inTime && noOverbooking;
    out.push(
      `Statuses: ${b.statuses?.describe([])}; slowest answer ${n(b.slowestMs)} ms, median ${n(b.p50Ms)} ms (from the common send time); pitstop ready ${n(b.startMs, 0)} ms after start; db deadlocks ${b.deadlocks ?? "n/a"}.${b.sample202 ? ` First answer neither 201 nor 409: \`${b.sample202.replace(/`/g, "'")}\`` : ""}`,
    );
    out.push("");
    out.push(
      table(
        [
          "slot",
          "requests",
          "201",
          "other statuses",
          "CONFIRMED bookings in the db",
          "holds in the slot's state",
          "capacity",
        ],
        slots.map((s) => [
          s.slot,
          s.requests,
          s.statuses.get(201),
          s.statuses.describe(),
          s.confirmedInDb,
          s.holdsInDb,
          s.capacity,
        ]),
      ),
    );
    out.push("");
    out.push(
      `Goal: every answer 201 or 409 (${allAnswered ? "yes" : "no"}) within ${ASK_TIMEOUT_MS} ms (${inTime ? "yes" : "no"}), 201s per slot <= capacity, also in the db (${noOverbooking ? "yes" : "no"}): ${verdict(burstOk)}.`,
    );
  }
  out.push("");

  // deadlocks
  const dbDeadlocks = [...r.closed, ...r.open]
    .filter((x) => x.deadlocks !== undefined)
    .reduce((acc, x) => acc + (x.deadlocks ?? 0), b.deadlocks ?? 0);
  const pitstopDbDeadlocks = [...r.closed, ...r.open]
    .filter((x) => x.key === "pitstop")
    .reduce((acc, x) => acc + (x.deadlocks ?? 0), b.deadlocks ?? 0);
  out.push("### Deadlocks");
  out.push("");
  out.push(
    r.pgLog
      ? `Lines with "deadlock detected" appended to ${r.pgLog} during the run: ${r.logDeadlocks} (the whole server: other databases' too). pg_stat_database.deadlocks of the bench databases, summed: ${dbDeadlocks} (pitstop's: ${pitstopDbDeadlocks}).`
      : `No Postgres log found in /var/log/postgresql. pg_stat_database.deadlocks of the bench databases, summed: ${dbDeadlocks} (pitstop's: ${pitstopDbDeadlocks}).`,
  );
  out.push("");

  // summary
  const ok = (x: { error?: string }) => !x.error;
  const closedMed = (key: Key, conns: number, pick: (c: ClosedResult) => number | undefined) =>
    median(
      r.closed
        .filter((c) => c.key === key && c.connections === conns && ok(c))
        .map(pick)
        .filter((v): v is number => v !== undefined),
    );
  const openMed = (key: Key, pick: (o: OpenResult) => number | undefined) =>
    median(
      r.open
        .filter((o) => o.key === key && ok(o))
        .map(pick)
        .filter((v): v is number => v !== undefined),
    );
  const ratioOf = (a: number, c: number) => a / c;
  const rx = (v: number) => (Number.isFinite(v) ? `${v.toFixed(3)}x` : "n/a");
  const rows: (string | number)[][] = [];
  /**
   * A summary row of a measure: its median per contender, pitstop's ratio to the race-free peer and (unless
   * `vsPlain` is false) to plain, the goal and the verdict.
   */
  const measureRow = (
    label: string,
    pick: (k: Key) => number,
    decimals: number,
    goal = "(none)",
    met = "",
    vsPlain = true,
  ): (string | number)[] => [
    label,
    ...ALL.map((k) => n(pick(k), decimals)),
    rx(ratioOf(pick("pitstop"), pick("peer-atomic"))),
    vsPlain ? rx(ratioOf(pick("pitstop"), pick("plain"))) : "",
    goal,
    met,
  ];
  for (const conns of CONNECTIONS) {
    const rate = (k: Key) => closedMed(k, conns, (c) => c.rate201);
    const vPeer = ratioOf(rate("pitstop"), rate("peer-atomic"));
    const vPlain = ratioOf(rate("pitstop"), rate("plain"));
    rows.push(
      measureRow(
        `closed loop ${conns} conns: 201/s`,
        rate,
        1,
        `>= ${GOAL.vsPeer.toFixed(1)}x peer race-free, >= ${GOAL.vsPlain}x plain`,
        Number.isFinite(vPeer) && Number.isFinite(vPlain)
          ? `peer ${verdict(vPeer >= GOAL.vsPeer)}, plain ${verdict(vPlain >= GOAL.vsPlain)}`
          : "n/a",
      ),
    );
  }
  for (const conns of CONNECTIONS) {
    const p99 = (k: Key) => closedMed(k, conns, (c) => c.p99Ms);
    const v = ratioOf(p99("pitstop"), p99("plain"));
    rows.push(
      measureRow(
        `closed loop ${conns} conns: p99 ms`,
        p99,
        2,
        `<= ${GOAL.p99VsPlain}x plain`,
        Number.isFinite(v) ? verdict(v <= GOAL.p99VsPlain) : "n/a",
      ),
    );
  }
  const closedMeasures: [string, (c: ClosedResult) => number | undefined, boolean][] = [
    ["p50 ms", (c) => c.p50Ms, true],
    ["server CPU ms per 201", (c) => c.cpuMsPer201, true],
    ["server CPU ms per 201, load + catch-up", (c) => c.cpuMsPer201WithCatchUp, false],
  ];
  for (const [what, pick, vsPlain] of closedMeasures) {
    for (const conns of CONNECTIONS) {
      const med = (k: Key) => closedMed(k, conns, pick);
      rows.push(measureRow(`closed loop ${conns} conns: ${what}`, med, 2, "(none)", "", vsPlain));
    }
  }
  const openLatencies: [string, (o: OpenResult) => number | undefined, number][] = [
    ["p50 ms", (o) => o.p50Ms, GOAL.openP50Ms],
    ["p99 ms", (o) => o.p99Ms, GOAL.openP99Ms],
  ];
  for (const [what, pick, goalMs] of openLatencies) {
    const med = (k: Key) => openMed(k, pick);
    const pitstop = med("pitstop");
    rows.push(
      measureRow(
        `open loop ${OPEN_RATE}/s: ${what}`,
        med,
        2,
        `<= ${goalMs} ms`,
        Number.isNaN(pitstop) ? "n/a" : verdict(pitstop <= goalMs),
      ),
    );
  }
  const ocpu = (k: Key) => openMed(k, (o) => o.cpuMsPerBooking);
  const cpuRatio = ratioOf(ocpu("pitstop"), ocpu("peer-atomic"));
  rows.push(
    measureRow(
      `open loop ${OPEN_RATE}/s: server CPU ms per booking`,
      ocpu,
      2,
      `<= ${GOAL.cpuVsPeer}x peer race-free`,
      Number.isFinite(cpuRatio) ? verdict(cpuRatio <= GOAL.cpuVsPeer) : "n/a",
    ),
  );
  rows.push(
    measureRow(`open loop ${OPEN_RATE}/s: server CPU % of a core`, (k) => openMed(k, (o) => o.serverPct), 1),
  );
  const best = r.closed
    .filter((c) => c.key === "pitstop" && ok(c) && c.keepUp)
    .sort((a, c) => (c.rate201 ?? 0) - (a.rate201 ?? 0))[0];
  if (best?.keepUp) {
    const k = best.keepUp;
    rows.push([
      `pitstop reactors keep up: ms to lag 0 after its highest-rate round (round ${best.round}, ${best.connections} conns, ${n(best.rate201)} 201/s; lag at stop ${k.lagAtStop}, outbox ${k.outboxAtStop})`,
      "",
      "",
      "",
      Number.isNaN(k.msToZero) ? `> ${KEEPUP_TIMEOUT_MS}` : fmt(k.msToZero, 0),
      "",
      "",
      `<= ${fmt(GOAL.keepUpMs, 0)} ms`,
      verdict(!Number.isNaN(k.msToZero) && k.msToZero <= GOAL.keepUpMs),
    ]);
  }
  rows.push([
    `pitstop: ${BURST} concurrent over 3 slots`,
    "",
    "",
    "",
    b.error ? "failed" : `${b.statuses?.describe([])}; slowest ${n(b.slowestMs, 0)} ms`,
    "",
    "",
    `all 201/409 within ${ASK_TIMEOUT_MS} ms, 201s per slot <= capacity`,
    verdict(burstOk),
  ]);
  rows.push([
    '"deadlock detected" lines in the Postgres log (whole server, whole run)',
    "",
    "",
    "",
    r.logDeadlocks ?? "n/a",
    "",
    "",
    "(none)",
    "",
  ]);
  out.push("### Summary (medians of the rounds)");
  out.push("");
  out.push(
    table(
      [
        "measure",
        "plain",
        "peer racy",
        "peer race-free",
        "pitstop",
        "pitstop / peer race-free",
        "pitstop / plain",
        "goal",
        "verdict",
      ],
      rows,
    ),
  );
  out.push("");
  out.push(`Wall time: ${elapsed()}.`);
  console.log(out.join("\n"));
}

try {
  await main();
  process.exit(0);
} catch (error) {
  progress(
    stopping
      ? `stopped by ${stopping}`
      : `failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`,
  );
  await cleanUpAll().catch((e) => progress(`clean-up failed: ${String(e)}`));
  process.exit(stopping ? 130 : 1);
}
