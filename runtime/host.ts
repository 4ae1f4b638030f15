/**
 * An actor host: one process's share of the actor kinds and reactors. For each kind it is one member of the
 * kind's consumer group (`<groupPrefix>.actor.<kind>`), for each reactor one member of its group; more hosts
 * share the partitions. It publishes the outbox rows of the partitions it owns (outbox-relay.ts), runs the relay
 * of rows written outside any turn (one host at a time), fires the durable timers of its partitions and
 * passivates idle actors. `stop()` (call it on SIGTERM) drains running turns, commits, and leaves the groups.
 *
 * @example
 * const host = createHost({ kafka, database, databaseUrl, log, actors: [counter], reactors: [audit] });
 * await host.start();
 * process.on("SIGTERM", () => host.stop().then(() => process.exit(0)));
 */
import { hostname } from "node:os";
import type { NatsConnection, Subscription } from "@nats-io/transport-node";
import type { Kafka } from "kafkajs";
import type { Database } from "../db/index.ts";
import type { AnyActorDefinition } from "./actor.ts";
import { ActorRunner } from "./actor-runner.ts";
import { loadActor } from "./actor-store.ts";
import { type LiveState, natsFabric, partitionOf, stateSubject } from "./fabric.ts";
import type { PartitionLease } from "./fence.ts";
import { GroupCommitter } from "./group-commit.ts";
import { GroupConsumer } from "./group-consumer.ts";
import type { GroupSpec } from "./group-readiness.ts";
import type { RuntimeDeps } from "./host-deps.ts";
import type { Logger } from "./logger.ts";
import { NO_OBSERVER, type RuntimeObserver } from "./observer.ts";
import { OutboxRelay } from "./outbox-relay.ts";
import { PauseWatcher } from "./partition-pauses.ts";
import { type ReactorDefinition, ReactorGroup, type ReactorRunner } from "./reactor.ts";
import { TimerPoller } from "./timers.ts";

export interface HostOptions {
  kafka: Kafka;
  database: Database;
  /** For the publishers' own sessions (one holds an advisory lock). */
  databaseUrl: string;
  log: Logger;
  actors?: AnyActorDefinition[];
  reactors?: ReactorDefinition[];
  /** NATS: status fan-out, replies to `ask`, and answering live-state requests. Optional. */
  nats?: NatsConnection;
  /** Subject prefix on NATS (default "pitstop"). */
  natsPrefix?: string;
  hostId?: string;
  groupPrefix?: string;
  clock?: () => Date;
  /**
   * Run the relay of rows written outside any turn (operators' replays) in this host (default true). The rows
   * of this host's own partitions are always published by it.
   */
  relay?: boolean;
  /**
   * `kafka`'s clientId, when it names this host's slot and stays the same across its restarts (like Kafka's
   * group.instance.id: a StatefulSet pod's name, a systemd unit's). A starting host then removes the group members
   * its previous incarnation left: after a crash they would stay until their session timed out, and every
   * rebalance waits for them — the restarted host would serve only then. Two live hosts must never share it (each
   * start would push the other out of its groups for a rebalance). Unset, nothing is removed.
   */
  instanceClientId?: string;
  tuning?: Partial<HostTuning>;
  /** Told of turns, reactor events, batches and rebalances as they happen (metrics); default: nobody. */
  observer?: RuntimeObserver;
}

export interface HostTuning {
  /** Turns running at once per partition (different keys). */
  maxConcurrencyPerPartition: number;
  /** Unfinished records per partition above which fetching pauses. */
  maxBufferedPerPartition: number;
  commitIntervalMs: number;
  /** How long a revoked partition (or a stopping host) waits for running turns. */
  drainTimeoutMs: number;
  sessionTimeoutMs: number;
  heartbeatIntervalMs: number;
  /** In-memory actors per kind at most. */
  maxActors: number;
  passivateAfterMs: number;
  /** How often the publishers look for rows when nothing woke them (a safety net: writers wake them). */
  relayPollIntervalMs: number;
  /** How often due durable timers are looked for. */
  timerPollIntervalMs: number;
  /** How often operators' partition pauses are read (how soon a pause or resume takes effect). */
  pausePollIntervalMs: number;
  /** Commit turns in batches (see group-commit.ts); `false` for one transaction per turn. */
  groupCommit: false | { maxBatch: number; maxInFlight: number };
  /** kafkajs' retries inside a consumer before it crashes; the host then re-creates it, with backoff. */
  consumerRetry: { retries: number; initialRetryTime: number; maxRetryTime: number };
}

export const DEFAULT_TUNING: HostTuning = {
  maxConcurrencyPerPartition: 64,
  maxBufferedPerPartition: 2000,
  commitIntervalMs: 200,
  drainTimeoutMs: 10_000,
  sessionTimeoutMs: 10_000,
  heartbeatIntervalMs: 1000,
  maxActors: 10_000,
  passivateAfterMs: 5 * 60_000,
  relayPollIntervalMs: 1000,
  timerPollIntervalMs: 250,
  pausePollIntervalMs: 1000,
  groupCommit: { maxBatch: 128, maxInFlight: 4 },
  consumerRetry: { retries: 10, initialRetryTime: 300, maxRetryTime: 5000 },
};

export interface Host {
  readonly hostId: string;
  start(): Promise<void>;
  stop(): Promise<void>;
  stats(): HostStats;
  /** The live state of an actor if this host holds it in memory. */
  liveState(kind: string, key: string): { state: unknown; version: number } | undefined;
}

export interface HostStats {
  hostId: string;
  actors: Record<string, ActorRunner<unknown, never>["stats"] & { active: number }>;
  reactors: Record<string, ReactorRunner["stats"]>;
  consumers: Record<
    string,
    GroupConsumer["stats"] & {
      topics: string[];
      partitions: ReturnType<GroupConsumer["partitions"]>;
      unowned: ReturnType<GroupConsumer["unowned"]>;
    }
  >;
  relay?: OutboxRelay["stats"];
  publisher: OutboxRelay["stats"];
  timers: TimerPoller["stats"];
  groupCommit?: GroupCommitter["stats"];
}

/** The consumer groups hosts of these kinds and reactors join, and the topics each reads. */
export function consumerGroupsOf(
  options: Pick<HostOptions, "actors" | "reactors" | "groupPrefix">,
): GroupSpec[] {
  const prefix = options.groupPrefix ?? "pitstop";
  return [
    ...(options.actors ?? []).map((a) => ({ groupId: `${prefix}.actor.${a.kind}`, topics: [a.mailbox] })),
    ...(options.reactors?.length
      ? [{ groupId: reactorGroupId(prefix), topics: [...new Set(options.reactors.flatMap((r) => r.topics))] }]
      : []),
  ];
}

/** The one consumer group of a host's reactors. */
function reactorGroupId(prefix: string): string {
  return `${prefix}.reactors`;
}

export function createHost(options: HostOptions): Host {
  const tuning = { ...DEFAULT_TUNING, ...options.tuning };
  const hostId = options.hostId ?? `${hostname()}:${process.pid}:${Bun.randomUUIDv7().slice(-6)}`;
  const prefix = options.groupPrefix ?? "pitstop";
  const relay =
    options.relay === false
      ? undefined
      : new OutboxRelay({
          kafka: options.kafka,
          databaseUrl: options.databaseUrl,
          log: options.log,
          pollIntervalMs: tuning.relayPollIntervalMs,
        });
  const consumers = new Map<string, GroupConsumer>();
  const publisher = new OutboxRelay({
    kafka: options.kafka,
    databaseUrl: options.databaseUrl,
    log: options.log,
    pollIntervalMs: tuning.relayPollIntervalMs,
    leases: () => [...consumers.values()].flatMap((c) => c.leases()),
  });
  const observer = options.observer ?? NO_OBSERVER;
  const deps: RuntimeDeps = {
    observer,
    db: options.database.db,
    sql: options.database.sql,
    hostId,
    clock: options.clock ?? (() => new Date()),
    log: options.log,
    groupCommit: tuning.groupCommit
      ? new GroupCommitter(options.database.sql, {
          ...tuning.groupCommit,
          onCommitted: (rows) => publisher.offer(rows),
          onBatch: (size) => observer.batch("actors", size),
        })
      : undefined,
    fabric: options.nats
      ? natsFabric(options.nats, options.natsPrefix ?? "pitstop", options.clock)
      : undefined,
    outboxWritten: (lease) => publisher.notify(lease),
  };
  const common = {
    kafka: options.kafka,
    db: options.database.db,
    log: options.log,
    hostId,
    maxConcurrency: tuning.maxConcurrencyPerPartition,
    maxBuffered: tuning.maxBufferedPerPartition,
    commitIntervalMs: tuning.commitIntervalMs,
    drainTimeoutMs: tuning.drainTimeoutMs,
    sessionTimeoutMs: tuning.sessionTimeoutMs,
    heartbeatIntervalMs: tuning.heartbeatIntervalMs,
    retry: tuning.consumerRetry,
    instanceClientId: options.instanceClientId,
    // A partition taken may hold rows its lost owner did not publish: publish them now.
    taken: (lease: PartitionLease) => publisher.notify(lease),
    rebalanced: (groupId: string, ms: number) => observer.rebalance(groupId, ms),
  };

  const actorRunners = new Map<string, ActorRunner<unknown, never>>();
  const kindConsumers = new Map<string, GroupConsumer>();
  for (const definition of options.actors ?? []) {
    const runner = new ActorRunner(definition, deps, {
      maxActors: tuning.maxActors,
      passivateAfterMs: tuning.passivateAfterMs,
    }) as unknown as ActorRunner<unknown, never>;
    actorRunners.set(definition.kind, runner);
    const groupId = `${prefix}.actor.${definition.kind}`; // as consumerGroupsOf
    const consumer = new GroupConsumer({
      ...common,
      groupId,
      topics: [definition.mailbox],
      handle: (lease, record) => runner.handle(lease, record),
      prefetch: (records) => runner.prefetch(records),
      release: (_topic, partition) => runner.dropPartition(partition),
    });
    consumers.set(groupId, consumer);
    kindConsumers.set(definition.kind, consumer);
  }
  // Every reactor in one consumer group (reactor.ts ReactorGroup); as consumerGroupsOf.
  const reactorGroup = options.reactors?.length ? new ReactorGroup(options.reactors, deps) : undefined;
  const reactorRunners = new Map((reactorGroup?.runners ?? []).map((r) => [r.definition.name, r]));
  if (reactorGroup) {
    const groupId = reactorGroupId(prefix);
    consumers.set(
      groupId,
      new GroupConsumer({
        ...common,
        groupId,
        topics: reactorGroup.topics,
        handle: (lease, record) => reactorGroup.handle(lease, record),
        release: () => {},
      }),
    );
  }

  /** Answers live-state requests for keys whose mailbox partition this host owns; others stay silent. */
  const serveState = async (): Promise<Subscription[]> => {
    const nc = options.nats;
    if (!nc || actorRunners.size === 0) return [];
    const admin = options.kafka.admin();
    await admin.connect();
    const definitions = options.actors ?? [];
    const metadata = await admin
      .fetchTopicMetadata({ topics: definitions.map((d) => d.mailbox) })
      .finally(() => admin.disconnect());
    const counts = new Map(metadata.topics.map((t) => [t.name, t.partitions.length]));
    return definitions.map((definition) =>
      nc.subscribe(stateSubject(options.natsPrefix ?? "pitstop", definition.kind), {
        callback: (error, message) => {
          if (error) return;
          void (async () => {
            const { key } = message.json<{ key: string }>();
            const partitions = counts.get(definition.mailbox) ?? 1;
            const consumer = kindConsumers.get(definition.kind);
            if (typeof key !== "string" || !consumer?.owns(definition.mailbox, partitionOf(key, partitions)))
              return;
            const live =
              actorRunners.get(definition.kind)?.liveState(key) ??
              (await loadActor(options.database.sql, definition.kind, key, () =>
                definition.initialState(key),
              ));
            const answer: LiveState = { key, state: live.state, version: live.version, owner: hostId };
            message.respond(JSON.stringify(answer));
          })().catch((err) => options.log.warn({ err }, "state request failed"));
        },
      }),
    );
  };

  const timers = new TimerPoller({
    sql: options.database.sql,
    log: options.log,
    clock: deps.clock,
    intervalMs: tuning.timerPollIntervalMs,
    owned: () => [...kindConsumers].map(([kind, consumer]) => ({ kind, leases: consumer.leases() })),
    fired: (lease) => publisher.notify(lease),
  });

  const pauses = new PauseWatcher({
    sql: options.database.sql,
    log: options.log,
    intervalMs: tuning.pausePollIntervalMs,
    groups: consumers,
  });

  let sweeper: Timer | undefined;
  let stateSubscriptions: Subscription[] = [];
  return {
    hostId,
    async start() {
      relay?.start();
      publisher.start();
      // Read before joining, so a partition paused by an operator is held from its first take.
      await pauses.refresh();
      pauses.start();
      await Promise.all([...consumers.values()].map((c) => c.start()));
      stateSubscriptions = await serveState();
      timers.start();
      sweeper = setInterval(
        () => {
          for (const runner of actorRunners.values()) runner.passivateIdle();
        },
        Math.max(1000, tuning.passivateAfterMs / 4),
      );
    },
    async stop() {
      clearInterval(sweeper);
      pauses.stop();
      for (const subscription of stateSubscriptions) subscription.unsubscribe();
      await timers.stop();
      await Promise.all([...consumers.values()].map((c) => c.stop()));
      await Promise.all([publisher.stop(), relay?.stop()]);
    },
    stats() {
      return {
        hostId,
        actors: Object.fromEntries(
          [...actorRunners].map(([k, r]) => [k, { ...r.stats, active: r.activeActors }]),
        ),
        reactors: Object.fromEntries([...reactorRunners].map(([k, r]) => [k, { ...r.stats }])),
        reactorGroup: reactorGroup
          ? { batches: reactorGroup.stats, oldest: reactorGroup.oldest() }
          : undefined,
        consumers: Object.fromEntries(
          [...consumers].map(([k, c]) => [
            k,
            { ...c.stats, topics: c.topics, partitions: c.partitions(), unowned: c.unowned() },
          ]),
        ),
        relay: relay ? { ...relay.stats } : undefined,
        publisher: { ...publisher.stats, producer: { ...publisher.producerStats } },
        timers: { ...timers.stats },
        groupCommit: deps.groupCommit ? { ...deps.groupCommit.stats } : undefined,
      };
    },
    liveState(kind, key) {
      return actorRunners.get(kind)?.liveState(key);
    },
  };
}
