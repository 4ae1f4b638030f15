/**
 * The process's metrics in Prometheus' text format (`GET /metrics`, prom-client). Three kinds of source:
 *
 * - as it happens: the runtime's observer (turns, reactor events, batch sizes, rebalances), the HTTP app
 *   (requests by route and status) and the status WebSocket (open sockets, frames) call in;
 * - at scrape time, this process: the host's counters and gauges (`host.stats()`: partitions owned, active
 *   actors, retries, dead letters, fenced turns, passivations...), read when Prometheus asks;
 * - at scrape time, the system as a whole: consumer lag per group and partition (Kafka's committed offsets
 *   against the partitions' ends), the outbox backlog and its oldest row, parked keys (Postgres), and each
 *   dependency's health. Each bounded by a timeout: a source that does not answer leaves its series out and sets
 *   `pitstop_scrape_source_up{source}` to 0 instead of holding the scrape.
 *
 * @example
 * const metrics = createMetrics();
 * const host = createHost({ ..., observer: metrics.observer });
 * metrics.watch({ host: () => host, positions, sql, probes });
 * const text = await metrics.text();
 */
import type postgres from "postgres";
import client from "prom-client";
import type { Probe } from "../http/health.ts";
import { checkHealth } from "../http/health.ts";
import type { GroupReadiness, Host, RuntimeObserver } from "../runtime/index.ts";

/** What the scrape-time series are read from; each optional (a process without a host has no host series). */
export interface MetricSources {
  host?: () => Host | undefined;
  /** Every consumer group's committed offsets against the partitions' ends (runtime groupReadiness). */
  groups?: () => Promise<GroupReadiness[]>;
  /** For the outbox backlog and parked keys. */
  sql?: postgres.Sql;
  probes?: Probe[];
}

export interface Metrics {
  readonly registry: client.Registry;
  readonly contentType: string;
  /** Give this to createHost. */
  readonly observer: RuntimeObserver;
  /** One HTTP request answered (route: the matched pattern, e.g. /api/v1/bookings/:id). */
  request(method: string, route: string, status: number, ms: number): void;
  socketOpened(): void;
  socketClosed(): void;
  frameSent(type: string): void;
  /** Adds the scrape-time sources. */
  watch(sources: MetricSources): void;
  /** The exposition, as `GET /metrics` answers it. */
  text(): Promise<string>;
}

/** A scrape-time source gets this long before its series are left out of the scrape. */
const SOURCE_TIMEOUT_MS = 2000;

const SECONDS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const SIZES = [1, 2, 4, 8, 16, 32, 64, 128];

export function createMetrics(): Metrics {
  const registry = new client.Registry();
  client.collectDefaultMetrics({ register: registry, prefix: "pitstop_" }); // pitstop_process_cpu_seconds_total...
  const sources: MetricSources = {};
  const sourceUp = new client.Gauge({
    name: "pitstop_scrape_source_up",
    help: "Whether a scrape-time source (host, kafka, postgres, dependencies) answered this scrape",
    labelNames: ["source"],
    registers: [registry],
  });

  // ------------------------------------------------------------------------------------ as it happens
  const histogram = (name: string, help: string, labelNames: string[], buckets: number[]) =>
    new client.Histogram({ name, help, labelNames, buckets, registers: [registry] });
  const turnSeconds = histogram(
    "pitstop_turn_duration_seconds",
    "An actor's message from its first attempt to its commit, retries included, by kind and outcome",
    ["kind", "outcome"],
    SECONDS,
  );
  const reactorSeconds = histogram(
    "pitstop_reactor_event_duration_seconds",
    "A reactor's event from its first attempt to its commit, retries included, by reactor and outcome",
    ["reactor", "outcome"],
    SECONDS,
  );
  const batchSize = histogram(
    "pitstop_commit_batch_size",
    "Items per committed transaction of a batcher (actors: group commit; otherwise the reactor's)",
    ["of"],
    SIZES,
  );
  const rebalanceSeconds = new client.Histogram({
    name: "pitstop_rebalance_duration_seconds",
    help: "How long a consumer group's join took (kafkajs' measure), per group",
    labelNames: ["group"],
    buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30],
    registers: [registry],
  });
  const httpSeconds = histogram(
    "pitstop_http_request_duration_seconds",
    "HTTP requests by method, route pattern and status, with their latency",
    ["method", "route", "status"],
    SECONDS,
  );
  const httpRequests = new client.Counter({
    name: "pitstop_http_requests_total",
    help: "HTTP requests answered, by method, route pattern and status",
    labelNames: ["method", "route", "status"],
    registers: [registry],
  });
  const socketsOpen = new client.Gauge({
    name: "pitstop_websockets_open",
    help: "Status WebSockets open now",
    registers: [registry],
  });
  const frames = new client.Counter({
    name: "pitstop_websocket_frames_total",
    help: "Frames sent on status WebSockets, by frame type",
    labelNames: ["type"],
    registers: [registry],
  });

  // ------------------------------------------------------------------------- at scrape time: the host
  // (declarations, one per series; the read functions below fill them)
  const gauge = (name: string, help: string, labelNames: string[]) =>
    new client.Gauge({ name, help, labelNames, registers: [registry] });
  const counter = (name: string, help: string, labelNames: string[]) =>
    new client.Counter({ name, help, labelNames, registers: [registry] });
  const owned = gauge("pitstop_partitions_owned", "Partitions this process owns, per group", ["group"]);
  const inFlight = gauge("pitstop_turns_in_flight", "Turns running now in this process, per group", [
    "group",
  ]);
  const backlog = gauge(
    "pitstop_partition_backlog",
    "Records fetched and not finished in this process, per group",
    ["group"],
  );
  const activeActors = gauge("pitstop_actors_active", "Actors in memory, per kind", ["kind"]);
  const passivations = counter("pitstop_passivations_total", "Actors passivated, per kind", ["kind"]);
  const handled = counter(
    "pitstop_messages_handled_total",
    "Messages handled to completion (turns committed, reactor events handled), per consumer",
    ["role", "consumer"],
  );
  const retries = counter("pitstop_retries_total", "Attempts retried, per consumer", ["role", "consumer"]);
  const deadLetters = counter("pitstop_dead_letters_total", "Records dead-lettered, per consumer", [
    "role",
    "consumer",
  ]);
  const fenced = counter(
    "pitstop_fenced_turns_total",
    "Turns refused because another host took the partition, per consumer",
    ["role", "consumer"],
  );
  const parkedMessages = counter(
    "pitstop_parked_messages_total",
    "Messages held because their key is parked, per kind",
    ["kind"],
  );
  const rebalances = counter("pitstop_rebalances_total", "Rebalances seen by this process, per group", [
    "group",
  ]);
  const published = counter("pitstop_outbox_published_total", "Outbox rows this process published", []);

  // ---------------------------------------------------------------------- at scrape time: the system
  const lag = gauge("pitstop_consumer_lag", "Records behind (end offset - committed offset)", [
    "group",
    "topic",
    "partition",
  ]);
  const groupLag = gauge("pitstop_consumer_group_lag", "Records behind, summed over a group's partitions", [
    "group",
  ]);
  const outboxBacklog = gauge("pitstop_outbox_backlog", "Outbox rows not published yet", []);
  const outboxOldest = gauge(
    "pitstop_outbox_oldest_unpublished_seconds",
    "Age of the oldest outbox row not published yet (0 when none): the publish lag",
    [],
  );
  const parkedKeys = gauge("pitstop_parked_keys", "Keys parked now, waiting for an operator, per kind", [
    "kind",
  ]);
  const dependencyUp = gauge("pitstop_dependency_up", "Whether a dependency answered its health check", [
    "dependency",
  ]);
  const dependencySeconds = gauge(
    "pitstop_dependency_check_seconds",
    "How long a dependency's health check took",
    ["dependency"],
  );

  const readHost = () => {
    const host = sources.host?.();
    if (!host) return;
    const stats = host.stats();
    for (const m of [owned, inFlight, backlog, activeActors, passivations, handled, retries]) m.reset();
    for (const m of [deadLetters, fenced, parkedMessages, rebalances, published]) m.reset();
    for (const [group, c] of Object.entries(stats.consumers)) {
      owned.set({ group }, c.partitions.length);
      inFlight.set(
        { group },
        c.partitions.reduce((n, p) => n + p.active, 0),
      );
      backlog.set(
        { group },
        c.partitions.reduce((n, p) => n + p.backlog, 0),
      );
      rebalances.inc({ group }, c.rebalances);
    }
    for (const [kind, a] of Object.entries(stats.actors)) {
      const labels = { role: "actor", consumer: kind };
      activeActors.set({ kind }, a.active);
      passivations.inc({ kind }, a.passivated);
      handled.inc(labels, a.turns + a.noops);
      retries.inc(labels, a.retries);
      deadLetters.inc(labels, a.deadLetters);
      fenced.inc(labels, a.fenced);
      parkedMessages.inc({ kind }, a.parked);
    }
    for (const [name, r] of Object.entries(stats.reactors)) {
      const labels = { role: "reactor", consumer: name };
      handled.inc(labels, r.handled);
      retries.inc(labels, r.retries);
      deadLetters.inc(labels, r.deadLetters);
      fenced.inc(labels, r.fenced);
    }
    published.inc(stats.publisher.published + (stats.relay?.published ?? 0));
  };

  const readGroups = async () => {
    if (!sources.groups) return;
    const groups = await sources.groups();
    lag.reset();
    groupLag.reset();
    for (const g of groups) {
      groupLag.set({ group: g.groupId }, g.lag);
      for (const p of g.positions)
        lag.set({ group: g.groupId, topic: p.topic, partition: String(p.partition) }, p.lag);
    }
  };

  const readDatabase = async () => {
    const sql = sources.sql;
    if (!sql) return;
    const [[outbox], parked] = await Promise.all([
      sql<{ backlog: number; oldest: number | null }[]>`
        select count(*)::int as backlog,
          extract(epoch from now() - min(created_at))::float8 as oldest
        from outbox where published_at is null`,
      sql<{ kind: string; keys: number }[]>`
        select kind, count(*)::int as keys from actor_state where parked_at is not null group by kind`,
    ]);
    outboxBacklog.set(outbox?.backlog ?? 0);
    outboxOldest.set(Math.max(0, outbox?.oldest ?? 0));
    parkedKeys.reset();
    for (const p of parked) parkedKeys.set({ kind: p.kind }, p.keys);
  };

  const readDependencies = async () => {
    if (!sources.probes?.length) return;
    const report = await checkHealth(sources.probes, SOURCE_TIMEOUT_MS);
    for (const [name, d] of Object.entries(report.dependencies)) {
      dependencyUp.set({ dependency: name }, d.status === "up" ? 1 : 0);
      dependencySeconds.set({ dependency: name }, d.latencyMs / 1000);
    }
  };

  /** Runs one scrape-time source, bounded; its series stay out of this scrape if it fails. */
  const read = async (source: string, run: () => unknown, clear: client.Metric[]) => {
    let timer: Timer | undefined;
    try {
      await Promise.race([
        Promise.resolve().then(run),
        new Promise((_, reject) => {
          timer = setTimeout(() => reject(new Error("timed out")), SOURCE_TIMEOUT_MS);
        }),
      ]);
      sourceUp.set({ source }, 1);
    } catch {
      for (const m of clear) m.reset();
      sourceUp.set({ source }, 0);
    } finally {
      clearTimeout(timer);
    }
  };

  return {
    registry,
    contentType: registry.contentType,
    observer: {
      turn: (kind, outcome, ms) => turnSeconds.observe({ kind, outcome }, ms / 1000),
      reactor: (reactor, outcome, ms) => reactorSeconds.observe({ reactor, outcome }, ms / 1000),
      batch: (of, size) => batchSize.observe({ of }, size),
      rebalance: (group, ms) => rebalanceSeconds.observe({ group }, ms / 1000),
    },
    request(method, route, status, ms) {
      const labels = { method, route, status: String(status) };
      httpSeconds.observe(labels, ms / 1000);
      httpRequests.inc(labels);
    },
    socketOpened: () => socketsOpen.inc(),
    socketClosed: () => socketsOpen.dec(),
    frameSent: (type) => frames.inc({ type }),
    watch(more) {
      Object.assign(sources, more);
    },
    async text() {
      await Promise.all([
        sources.host ? read("host", readHost, []) : undefined,
        sources.groups ? read("kafka", readGroups, [lag, groupLag]) : undefined,
        sources.sql ? read("postgres", readDatabase, [outboxBacklog, outboxOldest, parkedKeys]) : undefined,
        sources.probes?.length
          ? read("dependencies", readDependencies, [dependencyUp, dependencySeconds])
          : undefined,
      ]);
      return registry.metrics();
    },
  };
}
