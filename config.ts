/**
 * Pitstop's configuration: one documented type, defaults stated once, read from the environment here and
 * nowhere else, validated at start (every bad key is listed), then passed down as a value.
 *
 * | variable             | default                                        | meaning                                   |
 * | -------------------- | ---------------------------------------------- | ----------------------------------------- |
 * | NODE_ENV             | development                                    | development, test or production           |
 * | HOST / PORT          | 127.0.0.1 / 3000                               | where the HTTP server listens             |
 * | KAFKA_CLUSTER_SIZE   | 1                                              | 1 broker, or 3 (RF 3, min.insync 2)       |
 * | KAFKA_BROKERS        | the started cluster's brokers                  | comma-separated host:port list            |
 * | DATABASE_URL         | postgres://postgres@127.0.0.1:5432/pitstop     | `_test` appended to the name under test   |
 * | DATABASE_POOL_SIZE   | 20                                             | Postgres connections of the process       |
 * | REDIS_URL            | redis://127.0.0.1:6379/0 (db 1 under test)     |                                           |
 * | NATS_URL             | nats://127.0.0.1:4222                          | comma-separated server list               |
 * | PITSTOP_MANAGE_INFRA | true                                           | start Kafka and stopped local services    |
 * | LOG_LEVEL            | info (warn under test)                         | pino level                                |
 * | PITSTOP_RUN          | http,actors,reactors                           | what this process runs (scale by process) |
 * | PITSTOP_NAMESPACE    | (none)                                         | prefixes topics, groups and NATS subjects |
 * | PITSTOP_INSTANCE_ID  | (none)                                         | this host slot's stable name: a restart serves at once |
 * | JWT_SECRET           | a dev secret, refused in production            | HS256 key of bearer tokens (>= 32 chars)  |
 * | TOKEN_TTL_SECONDS    | 86400                                          | lifetime of minted tokens                 |
 * | ASK_TIMEOUT_MS       | 3000                                           | HTTP waits this long for an actor's reply |
 * | INVOICE_DUE_MS       | 86400000 (24 h)                                | unpaid invoice reminder after this        |
 * | PAYMENT_ATTEMPTS     | 3                                              | gateway calls per payment (the seed's 3)  |
 * | PAYMENT_RETRY_MS     | 1000                                           | between gateway attempts (the seed's 1 s) |
 * | ACTOR_ANSWER_TIMEOUT_MS | 30000                                       | a booking/job asks an actor again after   |
 * | JOB_CHECK_INTERVAL_MS | 600000 (10 min)                               | waiting jobs check with who they wait on  |
 * | NO_SHOW_GRACE_MS     | 86400000 (24 h)                                | unstarted booking cancelled this long after its time |
 * | READY_MAX_LAG        | 1000                                           | /readyz: 503 past this many records behind |
 * | OTEL_EXPORTER_OTLP_ENDPOINT | (none: tracing off)                     | OTLP/HTTP collector base URL; traces go to `<url>/v1/traces` |
 */

export type Env = "development" | "test" | "production";

export interface Config {
  env: Env;
  /** shutdownGraceMs: on SIGTERM, how long requests in flight get to finish before connections are closed. */
  http: { host: string; port: number; shutdownGraceMs: number; rateLimitPerMinute: number };
  /**
   * instanceId: the stable name of this process's slot (a pod's, a unit's), unique among live processes and the
   * same across restarts; it joins the Kafka clientId, and a restarted host removes the group members its
   * previous incarnation left instead of waiting out their sessions (HostOptions.instanceClientId).
   */
  kafka: { clusterSize: 1 | 3; brokers: string[]; clientId: string; instanceId?: string };
  postgres: { url: string; poolSize: number };
  redis: { url: string };
  nats: { servers: string[] };
  /** Start the project's own Kafka and any stopped local Postgres/Redis/NATS before running. */
  manageInfra: boolean;
  logLevel: "fatal" | "error" | "warn" | "info" | "debug" | "trace" | "silent";
  /** What this process runs: the HTTP server, the actor kinds, the reactors (any mix; several processes scale out). */
  run: { http: boolean; actors: boolean; reactors: boolean };
  /** Empty for the real deployment; tests run in a namespace of their own (topics, groups, NATS subjects). */
  namespace: string;
  /** otlpEndpoint: where spans are exported (OTLP over HTTP); unset, nothing is traced (docs/ops.md, "Traces"). */
  tracing: { otlpEndpoint?: string };
  auth: { jwtSecret: string; tokenTtlSeconds: number };
  service: {
    askTimeoutMs: number;
    /** A customer's bookings not yet finished (pending, confirmed, in service, awaiting payment) at most; 0: no cap. */
    maxOpenBookings: number;
    invoiceDueMs: number;
    paymentAttempts: number;
    paymentRetryMs: number;
    /** A booking or job waiting for another actor's answer (a slot's, an invoice's) asks again after this. */
    answerTimeoutMs: number;
    /** A waiting booking or job checks with the actor it waits on (saga, repair, invoice) this often. */
    checkIntervalMs: number;
    /** A confirmed booking whose repair has not started this long after its time is cancelled (no-show). */
    noShowGraceMs: number;
    /** `/readyz` answers 503 when a consumer group's partition is further behind than this (records). */
    readyMaxLag: number;
  };
}

/** The development secret: fine on a laptop, refused when NODE_ENV=production. */
export const DEV_JWT_SECRET = "pitstop-dev-secret-do-not-use-in-production";

/** Broker addresses of the clusters the project's scripts start (see infra/kafka-cluster.ts). */
export const clusterBrokers = {
  1: ["127.0.0.1:9092"],
  3: ["127.0.0.1:19092", "127.0.0.1:19102", "127.0.0.1:19112"],
} as const;

/** Raised when the environment holds bad values; lists every one of them. Not retryable. */
export class ConfigError extends Error {
  override name = "ConfigError";
  readonly retryable = false;
  constructor(readonly problems: string[]) {
    super(`invalid configuration: ${problems.join("; ")}`);
  }
}

const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;

export function loadConfig(env: Record<string, string | undefined> = process.env): Config {
  const problems: string[] = [];
  const read = (key: string) => {
    const value = env[key]?.trim();
    return value === undefined || value === "" ? undefined : value;
  };
  const oneOf = <T extends string>(key: string, allowed: readonly T[], fallback: T): T => {
    const value = read(key) ?? fallback;
    if ((allowed as readonly string[]).includes(value)) return value as T;
    problems.push(`${key} must be one of ${allowed.join(", ")} (got "${value}")`);
    return fallback;
  };
  const port = (key: string, fallback: number) => {
    const raw = read(key);
    if (raw === undefined) return fallback;
    const value = Number(raw);
    if (Number.isInteger(value) && value >= 0 && value <= 65535) return value;
    problems.push(`${key} must be a port number 0-65535 (got "${raw}")`);
    return fallback;
  };
  const url = (key: string, fallback: string, protocols: string[]) => {
    const value = read(key) ?? fallback;
    try {
      const parsed = new URL(value);
      if (!protocols.includes(parsed.protocol)) {
        problems.push(`${key} must use ${protocols.join(" or ")} (got "${parsed.protocol}")`);
      }
    } catch {
      problems.push(`${key} is not a URL (got "${value}")`);
    }
    return value;
  };
  const bool = (key: string, fallback: boolean) => {
    const raw = read(key);
    if (raw === undefined) return fallback;
    if (["1", "true", "yes"].includes(raw.toLowerCase())) return true;
    if (["0", "false", "no"].includes(raw.toLowerCase())) return false;
    problems.push(`${key} must be true or false (got "${raw}")`);
    return fallback;
  };
  const list = (key: string, fallback: readonly string[], check: (item: string) => boolean, what: string) => {
    const raw = read(key);
    if (raw === undefined) return [...fallback];
    const items = raw
      .split(",")
      .map((item) => item.trim())
      .filter(Boolean);
    const bad = items.filter((item) => !check(item));
    if (items.length === 0 || bad.length > 0)
      problems.push(`${key} must be a comma-separated list of ${what}`);
    return items;
  };

  const name = (key: string) => {
    const raw = read(key);
    // No ".": it joins the Kafka clientId after one, so that `<clientId>.<id>` names one instance only.
    if (raw === undefined || /^[A-Za-z0-9_-]{1,64}$/.test(raw)) return raw;
    problems.push(`${key} must be 1-64 letters, digits, "_" or "-" (got "${raw}")`);
    return undefined;
  };

  const int = (key: string, fallback: number, min: number, max: number) => {
    const raw = read(key);
    if (raw === undefined) return fallback;
    const value = Number(raw);
    if (Number.isInteger(value) && value >= min && value <= max) return value;
    problems.push(`${key} must be an integer ${min}-${max} (got "${raw}")`);
    return fallback;
  };

  const parts = (key: string, all: readonly ["http", "actors", "reactors"]) => {
    const raw = read(key);
    const items =
      raw === undefined
        ? [...all]
        : raw
            .split(",")
            .map((p) => p.trim())
            .filter(Boolean);
    const bad = items.filter((p) => !(all as readonly string[]).includes(p));
    if (items.length === 0 || bad.length > 0)
      problems.push(`${key} must list some of ${all.join(", ")} (got "${raw}")`);
    return {
      http: items.includes("http"),
      actors: items.includes("actors"),
      reactors: items.includes("reactors"),
    };
  };

  const mode = oneOf<Env>("NODE_ENV", ["development", "test", "production"], "development");
  const clusterSize = Number(oneOf("KAFKA_CLUSTER_SIZE", ["1", "3"], "1")) as 1 | 3;
  const databaseUrl = url("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/pitstop", [
    "postgres:",
    "postgresql:",
  ]);

  const config: Config = {
    env: mode,
    http: {
      host: read("HOST") ?? "127.0.0.1",
      port: port("PORT", 3000),
      shutdownGraceMs: int("SHUTDOWN_GRACE_MS", 10_000, 0, 120_000),
      rateLimitPerMinute: int("RATE_LIMIT_PER_MINUTE", 1200, 0, 100_000_000),
    },
    kafka: {
      clusterSize,
      brokers: list(
        "KAFKA_BROKERS",
        clusterBrokers[clusterSize],
        (b) => /^[^:\s]+:\d{1,5}$/.test(b),
        "host:port",
      ),
      clientId: read("KAFKA_CLIENT_ID") ?? "pitstop",
      instanceId: name("PITSTOP_INSTANCE_ID"),
    },
    postgres: {
      url: mode === "test" && !read("DATABASE_URL") ? withDatabaseSuffix(databaseUrl) : databaseUrl,
      poolSize: int("DATABASE_POOL_SIZE", 20, 2, 200),
    },
    redis: {
      url: url("REDIS_URL", mode === "test" ? "redis://127.0.0.1:6379/1" : "redis://127.0.0.1:6379/0", [
        "redis:",
        "rediss:",
      ]),
    },
    nats: {
      servers: list(
        "NATS_URL",
        ["nats://127.0.0.1:4222"],
        (s) => URL.canParse(s) || /^[^:\s]+:\d+$/.test(s),
        "URLs",
      ),
    },
    manageInfra: bool("PITSTOP_MANAGE_INFRA", true),
    logLevel: oneOf("LOG_LEVEL", LOG_LEVELS, mode === "test" ? "warn" : "info"),
    run: parts("PITSTOP_RUN", ["http", "actors", "reactors"]),
    namespace: read("PITSTOP_NAMESPACE") ?? "",
    tracing: {
      otlpEndpoint: read("OTEL_EXPORTER_OTLP_ENDPOINT")
        ? url("OTEL_EXPORTER_OTLP_ENDPOINT", "", ["http:", "https:"])
        : undefined,
    },
    auth: {
      jwtSecret: read("JWT_SECRET") ?? DEV_JWT_SECRET,
      tokenTtlSeconds: int("TOKEN_TTL_SECONDS", 86_400, 60, 31_536_000),
    },
    service: {
      askTimeoutMs: int("ASK_TIMEOUT_MS", 3000, 0, 60_000),
      maxOpenBookings: int("MAX_OPEN_BOOKINGS", 20, 0, 100_000),
      invoiceDueMs: int("INVOICE_DUE_MS", 86_400_000, 100, 90 * 86_400_000),
      paymentAttempts: int("PAYMENT_ATTEMPTS", 3, 1, 10),
      paymentRetryMs: int("PAYMENT_RETRY_MS", 1000, 0, 60_000),
      answerTimeoutMs: int("ACTOR_ANSWER_TIMEOUT_MS", 30_000, 100, 3_600_000),
      checkIntervalMs: int("JOB_CHECK_INTERVAL_MS", 600_000, 100, 86_400_000),
      noShowGraceMs: int("NO_SHOW_GRACE_MS", 86_400_000, 0, 30 * 86_400_000),
      readyMaxLag: int("READY_MAX_LAG", 1000, 0, 100_000_000),
    },
  };
  if (!/^([a-z0-9][a-z0-9-]{0,30})?$/.test(config.namespace)) {
    problems.push(
      `PITSTOP_NAMESPACE must be lower-case letters, digits and dashes (got "${config.namespace}")`,
    );
  }
  if (config.auth.jwtSecret.length < 32) problems.push("JWT_SECRET must be at least 32 characters");
  if (mode === "production" && config.auth.jwtSecret === DEV_JWT_SECRET) {
    problems.push("JWT_SECRET must be set in production (the development secret is refused)");
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return config;
}

/** The test database sits beside the dev one: `pitstop` -> `pitstop_test`. */
function withDatabaseSuffix(databaseUrl: string): string {
  const parsed = new URL(databaseUrl);
  parsed.pathname = `${parsed.pathname.replace(/\/$/, "") || "/pitstop"}_test`;
  return parsed.toString();
}
