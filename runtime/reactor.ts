/**
 * Reactors: consumers that are not actors (notification, audit, analytics...). Each event is handled in a
 * Postgres transaction that also records its eventId in the inbox, so a redelivered event is skipped and the
 * reactor's own writes happen exactly once. Records of one key are still handled in order.
 *
 * @example
 * const audit = defineReactor({
 *   name: "audit",
 *   topics: ["booking-events"],
 *   handle: async (event, { tx }) => { await tx.insert(auditLog).values({ eventId: event.eventId }); },
 * });
 */
import { drizzle, type PostgresJsDatabase } from "drizzle-orm/postgres-js";
import type postgres from "postgres";
import { decodeEnvelope, type Envelope } from "../topics/index.ts";
import { classifyUnder, DEFAULT_SUPERVISION, type EmitEffect, type SupervisionPolicy } from "./actor.ts";
import { backoffDelay } from "./backoff.ts";
import { writeDeadLetter } from "./dead-letters.ts";
import { classifyError, DecodeError, type ErrorInfo, FencedError, isOutsideTheMessage } from "./errors.ts";
import { checkLease, type PartitionLease, type Tx } from "./fence.ts";
import type { RuntimeDeps } from "./host-deps.ts";
import type { InboundRecord } from "./partition-worker.ts";
import { ReactorBatcher, type ReactorBatchOptions } from "./reactor-batch.ts";
import { activeTracer, endSpan, failSpan, parentContext, type Span, SpanKind, traceIdOf } from "./tracing.ts";

export interface ReactorContext {
  /** The transaction the inbox row is written in, through drizzle: write the reactor's effects with it. */
  tx: PostgresJsDatabase;
  /** The same transaction through postgres.js, for raw statements. */
  sql: Tx;
  topic: string;
  partition: number;
  offset: string;
  attempt: number;
  now: Date;
  /** The trace id of the event's span (tracing on and the event traced), e.g. for a status frame; else undefined. */
  traceId?: string;
}

/** What a reactor's handler may return: events to emit in its transaction, work to do once it committed. */
export interface ReactorResult {
  emit?: EmitEffect[];
  /**
   * Runs after the transaction committed (not for a duplicate, not after a rollback): for effects outside
   * Postgres that must not hold the transaction open, e.g. mirroring a figure to Redis. Best effort: a crash
   * between the commit and this loses it; an error is logged.
   */
  afterCommit?: () => Promise<unknown>;
}

export interface ReactorDefinition {
  name: string;
  topics: string[];
  // biome-ignore lint/suspicious/noConfusingVoidType: a reactor that emits nothing simply returns
  handle: (event: Envelope, ctx: ReactorContext) => Promise<void | ReactorResult>;
  supervision?: Partial<SupervisionPolicy>;
}

export function defineReactor(definition: ReactorDefinition): ReactorDefinition {
  if (!/^[a-z][a-z0-9-]*$/.test(definition.name)) {
    throw new Error(`reactor name "${definition.name}" must be lower-case words joined by dashes`);
  }
  return definition;
}

/**
 * The reactors of a host as one consumer: a record is decoded once and handed to every reactor that reads its
 * topic. One consumer group instead of one per reactor: one fetch loop and one set of partition leases for all
 * of them. Each reactor keeps its own inbox rows, retries, dead letters and stats: one that fails an event fails
 * it alone, and the record is done once every reactor is done with it.
 *
 * Each reactor groups its own events into transactions (reactor-batch.ts), apart from the others': a reactor that
 * holds a contended row lock until its commit (the inventory's part rows) then holds up its own batches only.
 * Shared transactions made every batch of every reactor queue on that lock for as long as the whole batch lasted.
 */
export class ReactorGroup {
  readonly runners: ReactorRunner[];
  private readonly byTopic = new Map<string, ReactorRunner[]>();
  private readonly inFlight = new Set<{ record: InboundRecord; since: number; waiting: Set<string> }>();

  constructor(
    definitions: ReactorDefinition[],
    deps: RuntimeDeps,
    batching: ReactorBatchOptions = { maxBatch: 64, maxInFlight: 2 },
  ) {
    this.runners = definitions.map((d) => {
      const batcher = new ReactorBatcher(deps.sql, (tx) => drizzleOn(tx, deps.sql), {
        ...batching,
        onBatch: (size) => deps.observer.batch(d.name, size),
      });
      return new ReactorRunner(d, deps, batcher);
    });
    for (const runner of this.runners) {
      for (const topic of runner.definition.topics) {
        const list = this.byTopic.get(topic) ?? [];
        list.push(runner);
        this.byTopic.set(topic, list);
      }
    }
  }

  /** Every topic some reactor reads. */
  get topics(): string[] {
    return [...this.byTopic.keys()];
  }

  /** Each reactor's batch counters, and what waits in its batcher now. */
  get stats() {
    return Object.fromEntries(this.runners.map((r) => [r.definition.name, r.batcher.stats]));
  }

  /** Runs the record through every reactor of its topic. Throws (after all settled) to give the partition up. */
  async handle(lease: PartitionLease, record: InboundRecord): Promise<void> {
    const runners = this.byTopic.get(record.topic) ?? [];
    let decoded: Envelope | DecodeError;
    try {
      decoded = decodeEnvelope(record.value);
    } catch (error) {
      decoded = new DecodeError((error as Error).message, { cause: error });
    }
    const waiting = new Set(runners.map((r) => r.definition.name));
    const entry = { record, since: Date.now(), waiting };
    this.inFlight.add(entry);
    try {
      const outcomes = await Promise.allSettled(
        runners.map((r) => r.handle(lease, record, decoded).finally(() => waiting.delete(r.definition.name))),
      );
      const failed = outcomes.find((o) => o.status === "rejected");
      if (failed) throw failed.reason;
    } finally {
      this.inFlight.delete(entry);
    }
  }

  /** The `n` records in flight longest, with the reactors not done with them yet (diagnostics: host stats). */
  oldest(n = 5) {
    const now = Date.now();
    const oldest = [];
    for (const e of this.inFlight) {
      // A Set iterates in insertion order: the oldest first.
      if (oldest.length === n) break;
      oldest.push({
        topic: e.record.topic,
        partition: e.record.partition,
        offset: String(e.record.offset),
        ms: now - e.since,
        waiting: [...e.waiting],
      });
    }
    return oldest;
  }
}

export class ReactorRunner {
  private readonly policy: SupervisionPolicy;
  readonly stats = { handled: 0, duplicates: 0, retries: 0, deadLetters: 0, fenced: 0 };

  constructor(
    readonly definition: ReactorDefinition,
    private readonly deps: RuntimeDeps,
    readonly batcher: ReactorBatcher,
  ) {
    this.policy = { ...DEFAULT_SUPERVISION, ...definition.supervision };
  }

  /**
   * Handles one record (its envelope, or why it is not one) to completion: handled, or dead-lettered. The event
   * runs in a span `reactor <name>` whose parent is the trace the record carries (none made when tracing is off).
   */
  handle(lease: PartitionLease, record: InboundRecord, decoded: Envelope | DecodeError): Promise<void> {
    if (decoded instanceof DecodeError) {
      return this.deadLetter(lease, record, classifyError(decoded), 1, this.deps.clock());
    }
    const event = decoded;
    const span = activeTracer()?.startSpan(
      `reactor ${this.definition.name}`,
      {
        kind: SpanKind.CONSUMER,
        attributes: {
          "messaging.system": "kafka",
          "messaging.operation.type": "process",
          "messaging.destination.name": record.topic,
          "messaging.destination.partition.id": String(record.partition),
          "messaging.kafka.offset": Number(record.offset),
          "messaging.message.id": event.eventId,
          "pitstop.reactor": this.definition.name,
          "pitstop.message.type": event.eventType,
          "pitstop.correlation.id": event.correlationId,
        },
      },
      parentContext(record.headers),
    );
    // Not an async function: without a span the event's promise is handed back as it is (no extra ticks).
    if (!span) return this.attempts(lease, record, event, undefined);
    return this.attempts(lease, record, event, span).then(
      () => span.end(),
      (error: unknown) => {
        endSpan(span, error);
        throw error;
      },
    );
  }

  private async attempts(
    lease: PartitionLease,
    record: InboundRecord,
    event: Envelope,
    span: Span | undefined,
  ): Promise<void> {
    const started = performance.now();
    // The event's logger, made only when something is logged.
    const eventLog = () =>
      this.deps.log.child({
        reactor: this.definition.name,
        topic: record.topic,
        partition: record.partition,
        offset: String(record.offset),
        key: record.key,
        eventType: event.eventType,
        eventId: event.eventId,
        correlationId: event.correlationId,
        traceId: traceIdOf(span),
      });
    let firstFailure: Date | undefined;
    for (let attempt = 1; ; attempt++) {
      const now = this.deps.clock();
      try {
        const { outcome, afterCommit } = await this.batcher.run({
          reactor: this.definition,
          lease,
          record,
          event,
          attempt,
          now,
          span,
        });
        if (outcome === "duplicate") this.stats.duplicates++;
        else this.stats.handled++;
        span?.setAttribute("pitstop.reactor.outcome", outcome);
        if (outcome === "emitted") this.deps.outboxWritten(lease);
        this.deps.observer.reactor(this.definition.name, outcome, performance.now() - started);
        if (outcome !== "duplicate" && afterCommit) {
          await afterCommit().catch((error: unknown) =>
            eventLog().warn({ err: error }, "after-commit work failed"),
          );
        }
        return;
      } catch (error) {
        if (error instanceof FencedError) {
          this.stats.fenced++;
          throw error;
        }
        const info = classifyUnder(this.policy, error);
        firstFailure ??= now;
        if (info.retryable && attempt < this.policy.maxAttempts) {
          this.stats.retries++;
          span?.addEvent("retry", { attempt, "error.type": info.errorClass });
          eventLog().warn({ attempt, err: info }, "reactor failed; retrying");
          await Bun.sleep(backoffDelay(this.policy.backoff, attempt));
          continue;
        }
        if (isOutsideTheMessage(error)) {
          // Postgres is out of reach: not this message's fault. Give the partition up; it is read again from
          // its committed position once the consumer is back (group-consumer.ts).
          eventLog().error(
            { attempts: attempt, err: info },
            "dependency unavailable; partition will be re-read",
          );
          throw error;
        }
        eventLog().error({ attempts: attempt, err: info }, "reactor failed; dead-lettered");
        failSpan(span, error);
        span?.setAttribute("pitstop.reactor.outcome", "dead-lettered");
        await this.deadLetter(lease, record, info, attempt, firstFailure);
        this.deps.observer.reactor(this.definition.name, "dead-lettered", performance.now() - started);
        return;
      }
    }
  }

  private async deadLetter(
    lease: PartitionLease,
    record: InboundRecord,
    error: ErrorInfo,
    attempts: number,
    first: Date,
  ) {
    const fresh = await this.deps.sql.begin(async (tx) => {
      await checkLease(tx, lease);
      return writeDeadLetter(tx, {
        consumer: this.definition.name,
        lease,
        record,
        error,
        attempts,
        firstFailureAt: first,
        lastFailureAt: this.deps.clock(),
        host: this.deps.hostId,
        status: "dead",
      });
    });
    // Counted once per record: a redelivered poison record finds its dead letter already written.
    if (fresh) this.stats.deadLetters++;
    this.deps.outboxWritten(lease);
  }
}

/**
 * drizzle over a postgres.js transaction. drizzle reads (and adjusts) the client's `options` at construction; a
 * transaction handle has none of its own, so it is given its pool's (already adjusted the same way by openDatabase).
 * Without the schema: given one, drizzle works out its relational config anew for every handle (a tenth of a busy
 * process's CPU, one handle per reactor transaction), and reactors write with the query builder, not `db.query`.
 */
function drizzleOn(tx: Tx, pool: postgres.Sql): PostgresJsDatabase {
  return drizzle(Object.assign(tx, { options: pool.options }) as unknown as postgres.Sql);
}
