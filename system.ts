/**
 * The composition root: opens the connections the configuration names and wires them into the HTTP app.
 * `main.ts` runs it as a server; tests build it in process with their own configuration.
 */

import { hostname } from "node:os";
import { createDomain, type Domain, natsPrefixOf, refsIn, topicsIn } from "./actors/index.ts";
import type { Config } from "./config.ts";
import { openDatabase, pingDatabase } from "./db/index.ts";
import {
  checkHealth,
  createApp,
  createEntities,
  createTokens,
  type Probe,
  type RouteDeps,
  rateLimiter,
} from "./http/index.ts";
import { createMetrics, type Metrics } from "./ops/metrics.ts";
import { processesOf, reportProcess } from "./ops/registry.ts";
import { otlpTracing } from "./ops/tracing.ts";
import {
  consumerGroupsOf,
  createActorClient,
  createHost,
  groupReadiness,
  type Host,
  type Logger,
  type NatsConnection,
  openNats,
  openRedis,
  pingNats,
  pingRedis,
  type Readiness,
  sessionName,
} from "./runtime/index.ts";
import { createKafka, pingKafka } from "./topics/index.ts";

export interface System {
  app: ReturnType<typeof createApp>;
  /** The process's metrics (`/metrics`): the host, the HTTP app and the WebSocket report into it. */
  metrics: Metrics;
  routes: RouteDeps;
  /** Built when the host starts (it needs the NATS connection). */
  domain(): Domain | undefined;
  /** Starts the actor host (consumer groups, outbox relay, timers). HTTP-only tests never call it. */
  startHost(): Promise<Host>;
  /**
   * Shutting down: `draining` — health says so, requests are still served; `closing` — new requests are refused
   * (503, retryable) while those in flight finish.
   */
  shutdown(phase: "draining" | "closing"): void;
  /** Drains and stops the host (if started), then closes the connections. */
  close(): Promise<void>;
}

export function createSystem(config: Config, log: Logger): System {
  // The host's id names its Postgres sessions: a host taking over one of its partitions can find (and end) a
  // transaction it left stuck (runtime/fence.ts).
  const hostId = `${hostname()}:${process.pid}:${Bun.randomUUIDv7().slice(-6)}`;
  // Registered before anything that traces is made; unset, nothing is registered and tracing costs nothing.
  const { otlpEndpoint } = config.tracing;
  const tracing = otlpEndpoint
    ? otlpTracing(otlpEndpoint, {
        "service.instance.id": hostId,
        "pitstop.run": runOf(config),
      })
    : undefined;
  const database = openDatabase(config.postgres.url, {
    connectTimeout: 2,
    max: config.postgres.poolSize,
    applicationName: sessionName(hostId),
  });
  const redis = openRedis(config.redis.url);
  // ioredis reports connection trouble as events; /healthz reports it to people, so keep it at debug here.
  redis.on("error", (error) => log.debug({ err: error }, "redis connection error"));
  const nats = lazyNats(config.nats.servers, log);
  // A client without retries: a health check answers now, it does not wait out a retry schedule.
  const probeKafka = createKafka({
    brokers: config.kafka.brokers,
    clientId: `${config.kafka.clientId}-health`,
    overrides: { retry: { retries: 0 }, connectionTimeout: 1000, requestTimeout: 2000 },
  });
  // One admin client kept connected for the health and readiness checks: connecting anew for each check costs
  // a TCP connection and an API-versions exchange, which on a busy broker alone outlasted the check's timeout.
  const probeAdmin = probeKafka.admin();
  const probes: Probe[] = [
    { name: "kafka", check: () => pingKafka(probeAdmin) },
    { name: "postgres", check: () => pingDatabase(database.sql) },
    { name: "redis", check: () => pingRedis(redis) },
    { name: "nats", check: async () => pingNats(await nats.get()) },
  ];
  const natsPrefix = natsPrefixOf(config.namespace);
  const metrics = createMetrics();
  const client = createActorClient({
    kafka: createKafka({ brokers: config.kafka.brokers, clientId: `${config.kafka.clientId}-http` }),
    nats: () => nats.get(),
    log,
  });
  const routes: RouteDeps = {
    tokens: createTokens(config.auth.jwtSecret, config.auth.tokenTtlSeconds),
    limiter: rateLimiter(redis, config.http.rateLimitPerMinute, log),
    entities: createEntities(database.sql, redis, log),
    client,
    refs: refsIn(topicsIn(config.namespace)),
    sql: database.sql,
    db: database.db,
    redis,
    log,
    askTimeoutMs: config.service.askTimeoutMs,
    maxOpenBookings: config.service.maxOpenBookings,
    nats: () => nats.get(),
    natsPrefix,
    namespace: config.namespace,
    metrics,
    groups: async () => (await readiness()).groups, // (readiness is defined below; called only later)
    processes: () => processesOf(database.sql, config.namespace),
    actorKinds: new Map(),
  };
  // The groups every host of this namespace joins, read from the definitions (a domain is not started here).
  const definitions = createDomain({
    namespace: config.namespace,
    sql: database.sql,
    redis,
    settings: config.service,
  });
  routes.actorKinds = new Map(definitions.actors.map((a) => [a.kind, a.lifecycle]));
  const groups = consumerGroupsOf({ ...definitions, groupPrefix: natsPrefix });
  const readiness = async () => {
    await probeAdmin.connect(); // idempotent; reconnects after an outage
    return groupReadiness(probeAdmin, groups, config.service.readyMaxLag);
  };
  /** This process's share of each group it is a member of: partitions handled, and assigned but not yet. */
  const ownership = () =>
    new Map(
      Object.entries(host?.stats().consumers ?? {}).map(([groupId, c]) => [
        groupId,
        {
          owned: c.partitions.length,
          unowned: c.unowned.length,
          fenced: c.unowned.filter((u) => u.fenced).length,
        },
      ]),
    );
  /**
   * `/readyz`: the groups' work flowing (every group has members, every partition an owner, lag bounded), and this
   * process able to do its part: its dependencies up, every partition assigned to it taken.
   */
  const processReadiness = async (): Promise<Readiness> => {
    const [groupsRead, health] = await Promise.all([readiness(), checkHealth(probes, 2000)]);
    const reasons = Object.entries(health.dependencies)
      .filter(([, d]) => d.status === "down")
      .map(([name, d]) => `${name} is down: ${d.error}`);
    for (const [groupId, share] of ownership()) {
      if (share.unowned > 0)
        reasons.push(
          `${groupId}: ${share.unowned} partition(s) assigned to this process not taken yet (${share.fenced} fenced)`,
        );
    }
    reasons.push(...groupsRead.reasons);
    return { ready: reasons.length === 0, reasons, groups: groupsRead.groups };
  };
  const groupHealth = async () => {
    const mine = ownership();
    return (await readiness()).groups.map((g) => ({
      groupId: g.groupId,
      lag: g.lag,
      maxPartitionLag: g.maxPartitionLag,
      owned: mine.get(g.groupId)?.owned ?? 0,
      unowned: mine.get(g.groupId)?.unowned ?? 0,
    }));
  };
  let phase: "running" | "draining" | "closing" = "running";
  // A process without the service's routes (PITSTOP_RUN without http) still answers the ops endpoints.
  const app = createApp({
    probes,
    log,
    routes: config.run.http ? routes : undefined,
    readiness: processReadiness,
    groupHealth,
    shutdown: () => phase,
    metrics,
  });
  let host: Host | undefined;
  metrics.watch({
    host: () => host,
    groups: routes.groups,
    sql: database.sql,
    probes,
  });
  let domain: Domain | undefined;
  let reporter: ReturnType<typeof reportProcess> | undefined;
  return {
    app,
    metrics,
    routes,
    domain: () => domain,
    async startHost() {
      const nc = await nats.get();
      domain = createDomain({
        namespace: config.namespace,
        sql: database.sql,
        redis,
        nats: nc,
        settings: config.service,
        log,
      });
      const { instanceId } = config.kafka;
      const clientId = instanceId ? `${config.kafka.clientId}.${instanceId}` : config.kafka.clientId;
      host = createHost({
        hostId,
        kafka: createKafka({ brokers: config.kafka.brokers, clientId, logger: log }),
        instanceClientId: instanceId ? clientId : undefined,
        database,
        databaseUrl: config.postgres.url,
        log,
        nats: nc,
        natsPrefix,
        groupPrefix: natsPrefix,
        actors: config.run.actors ? domain.actors : [],
        reactors: config.run.reactors ? domain.reactors : [],
        observer: metrics.observer,
      });
      await host.start();
      if (config.run.reactors) for (const job of domain.jobs) job.start();
      reporter = reportProcess({
        sql: database.sql,
        log,
        identity: {
          id: hostId,
          namespace: config.namespace,
          role: runOf(config),
        },
        host: () => host,
      });
      return host;
    },
    shutdown(next) {
      phase = next;
    },
    async close() {
      await reporter?.stop();
      await host?.stop();
      await Promise.all((config.run.reactors ? domain?.jobs : [])?.map((job) => job.stop()) ?? []);
      await client.close();
      await Promise.allSettled([database.close(), redis.quit(), nats.close(), probeAdmin.disconnect()]);
      // Last: the spans of the turns drained above are exported too.
      await tracing?.shutdown().catch((error: unknown) => log.warn({ err: error }, "spans not exported"));
    },
  };
}

/** The process's role, as PITSTOP_RUN names it (`http,actors,reactors`). */
function runOf(config: Config): string {
  return (["http", "actors", "reactors"] as const).filter((part) => config.run[part]).join(",");
}

/** A NATS connection made on first use and made again if it closed, so a late NATS is picked up. */
function lazyNats(servers: string[], log: Logger) {
  let connection: Promise<NatsConnection> | undefined;
  return {
    get(): Promise<NatsConnection> {
      if (!connection) {
        const attempt = openNats(servers);
        connection = attempt;
        attempt.then(
          (nc) =>
            nc.closed().then(() => {
              connection = undefined;
            }),
          (error) => {
            log.debug({ err: error }, "nats connection failed");
            connection = undefined;
          },
        );
      }
      return connection;
    },
    async close() {
      const nc = await connection?.catch(() => undefined);
      await nc?.drain().catch(() => {});
    },
  };
}
