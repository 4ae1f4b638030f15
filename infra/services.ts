/**
 * Postgres, Redis and NATS: found by URL, checked, started when installed here but stopped, and otherwise
 * reported in one line that says what is missing and how to get it.
 *
 * We only ever start a local server on its loopback address and default-style command line (the same
 * commands this machine kind uses at boot); a remote URL that does not answer is an error, never a start.
 */
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { InfraError } from "./infra-error.ts";
import { isListening } from "./port.ts";

const ROOT = join(import.meta.dir, "..");

export interface ServiceSpec {
  name: "Postgres" | "Redis" | "NATS";
  host: string;
  port: number;
  /** The env var that points at it, for the error message. */
  envVar: string;
  /** How to get one, for the error message. */
  install: string;
  /** Starts a locally installed server; returns false when none is installed. */
  start(): boolean;
}

export function serviceSpecs(urls: { postgres: string; redis: string; nats: string[] }): ServiceSpec[] {
  const pg = new URL(urls.postgres);
  const redis = new URL(urls.redis);
  const natsFirst = urls.nats[0] ?? "nats://127.0.0.1:4222";
  const nats = new URL(natsFirst.includes("://") ? natsFirst : `nats://${natsFirst}`);
  return [
    {
      name: "Postgres",
      host: pg.hostname,
      port: Number(pg.port || 5432),
      envVar: "DATABASE_URL",
      install: "apt-get install postgresql",
      start: startPostgres,
    },
    {
      name: "Redis",
      host: redis.hostname,
      port: Number(redis.port || 6379),
      envVar: "REDIS_URL",
      install: "apt-get install redis-server",
      start: () => startRedis(Number(redis.port || 6379)),
    },
    {
      name: "NATS",
      host: nats.hostname,
      port: Number(nats.port || 4222),
      envVar: "NATS_URL",
      install: "apt-get install nats-server",
      start: () => startNats(Number(nats.port || 4222)),
    },
  ];
}

export interface ServiceStatus {
  name: string;
  address: string;
  /** What we did: it was up, we started it. */
  action: "up" | "started";
}

/** Makes sure each service answers, starting stopped local ones (unless `start` is false); throws one InfraError naming what is missing. */
export async function ensureServices(
  specs: ServiceSpec[],
  { start = true, timeoutMs = 30_000 } = {},
): Promise<ServiceStatus[]> {
  const results = await Promise.all(specs.map((spec) => ensureService(spec, start, timeoutMs)));
  const failures = results.filter((r): r is string => typeof r === "string");
  if (failures.length > 0) throw new InfraError(failures.join("; "));
  return results as ServiceStatus[];
}

async function ensureService(
  spec: ServiceSpec,
  start: boolean,
  timeoutMs: number,
): Promise<ServiceStatus | string> {
  const address = `${spec.host}:${spec.port}`;
  if (await isListening(spec.host, spec.port)) return { name: spec.name, address, action: "up" };
  const how = `install it (${spec.install}), set ${spec.envVar} to a running server, or run \`docker compose up -d\``;
  if (!start || !isLoopback(spec.host)) return `${spec.name} is not reachable at ${address}: ${how}`;
  if (!spec.start()) return `${spec.name} is not running at ${address} and is not installed here: ${how}`;
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await isListening(spec.host, spec.port)) return { name: spec.name, address, action: "started" };
    await Bun.sleep(200); // poll until the server accepts connections
  }
  return `${spec.name} was started but did not accept connections at ${address} within ${timeoutMs} ms`;
}

function isLoopback(host: string): boolean {
  return host === "localhost" || host === "::1" || host === "[::1]" || host.startsWith("127.");
}

function which(binary: string): string | undefined {
  const out = spawnSync("sh", ["-c", `command -v ${binary}`], { encoding: "utf8" });
  const path = out.stdout.trim();
  if (out.status === 0 && path) return path;
  return ["/usr/sbin", "/usr/local/sbin", "/usr/bin"]
    .map((dir) => join(dir, binary))
    .find((p) => existsSync(p));
}

function run(command: string, args: string[]): boolean {
  return spawnSync(command, args, { stdio: "ignore", timeout: 60_000 }).status === 0;
}

function startPostgres(): boolean {
  const ctl = which("pg_ctlcluster");
  if (!ctl || !existsSync("/etc/postgresql")) return false;
  // Debian's cluster layout: /etc/postgresql/<version>/<cluster>.
  for (const version of readdirSync("/etc/postgresql")) {
    for (const cluster of readdirSync(join("/etc/postgresql", version))) {
      run(ctl, ["--skip-systemctl-redirect", version, cluster, "start"]);
    }
  }
  return true;
}

function startRedis(port: number): boolean {
  const server = which("redis-server");
  if (!server) return false;
  const dir = existsSync("/var/lib/redis") ? "/var/lib/redis" : join(ROOT, ".cache", "redis");
  mkdirSync(dir, { recursive: true });
  return run(server, [
    "--daemonize",
    "yes",
    "--bind",
    "127.0.0.1",
    "--port",
    String(port),
    "--save",
    "",
    "--appendonly",
    "no",
    "--dir",
    dir,
    "--logfile",
    join(dir, "pitstop-redis.log"),
  ]);
}

function startNats(port: number): boolean {
  const server = which("nats-server");
  if (!server) return false;
  const dir = join(ROOT, ".cache", "nats");
  mkdirSync(dir, { recursive: true });
  // Spawned directly: start-stop-daemon would see the machine's own nats-server (same binary) and do nothing.
  const args = ["-a", "127.0.0.1", "-p", String(port), "-js", "-sd", dir, "-l", join(dir, "nats-server.log")];
  spawn(server, args, { detached: true, stdio: "ignore" }).unref();
  return true;
}
