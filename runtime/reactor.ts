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
import { drizzle } from "drizzle-orm/postgres-js";
import type postgres from "postgres";
import { type Db, schema } from "../db/index.ts";
import { decodeEnvelope, type Envelope } from "../topics/index.ts";
import { classifyUnder, DEFAULT_SUPERVISION, type EmitEffect, type SupervisionPolicy } from "./actor.ts";
import { backoffDelay } from "./backoff.ts";
import { writeDeadLetter } from "./dead-letters.ts";
import { classifyError, DecodeError, type ErrorInfo, FencedError, isUnavailable } from "./errors.ts";
import { checkLease, type PartitionLease, type Tx } from "./fence.ts";
import type { RuntimeDeps } from "./host-deps.ts";
import type { InboundRecord } from "./partition-worker.ts";
import { ReactorBatcher, type ReactorBatchOptions } from "./reactor-batch.ts";

export interface ReactorContext {
  /** The transaction the inbox row is written in, through drizzle: write the reactor's effects with it. */
  tx: Db;
  /** The same transaction through postgres.js, for raw statements. */
  sql: Tx;
  topic: string;
  partition: number;
  offset: string;
  attempt: number;
  now: Date;
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

export class ReactorRunner {
  private readonly policy: SupervisionPolicy;
  readonly stats = { handled: 0, duplicates: 0, retries: 0, deadLetters: 0, fenced: 0 };

  private readonly batcher: ReactorBatcher;

  constructor(
    readonly definition: ReactorDefinition,
    private readonly deps: RuntimeDeps,
    batching: ReactorBatchOptions = { maxBatch: 64, maxInFlight: 2 },
  ) {
    this.policy = { ...DEFAULT_SUPERVISION, ...definition.supervision };
    this.batcher = new ReactorBatcher(deps.sql, definition, (tx) => drizzleOn(tx, deps.sql), batching);
  }

  async handle(lease: PartitionLease, record: InboundRecord): Promise<void> {
    let event: Envelope;
    try {
      event = decodeEnvelope(record.value);
    } catch (error) {
      await this.deadLetter(
        lease,
        record,
        classifyError(new DecodeError((error as Error).message, { cause: error })),
        1,
        this.deps.clock(),
      );
      return;
    }
    let firstFailure: Date | undefined;
    for (let attempt = 1; ; attempt++) {
      const now = this.deps.clock();
      try {
        const { outcome, afterCommit } = await this.batcher.run({ lease, record, event, attempt, now });
        if (outcome === "duplicate") this.stats.duplicates++;
        else this.stats.handled++;
        if (outcome === "emitted") this.deps.outboxWritten();
        if (outcome !== "duplicate" && afterCommit) {
          await afterCommit().catch((error: unknown) =>
            this.deps.log.warn({ err: error, reactor: this.definition.name }, "after-commit work failed"),
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
          this.deps.log.warn(
            { reactor: this.definition.name, attempt, err: info },
            "reactor failed; retrying",
          );
          await Bun.sleep(backoffDelay(this.policy.backoff, attempt));
          continue;
        }
        if (isUnavailable(error)) {
          // Postgres is out of reach: not this message's fault. Give the partition up; it is read again from
          // its committed position once the consumer is back (group-consumer.ts).
          this.deps.log.error(
            { reactor: this.definition.name, attempts: attempt, err: info },
            "dependency unavailable; partition will be re-read",
          );
          throw error;
        }
        this.deps.log.error(
          { reactor: this.definition.name, attempts: attempt, err: info },
          "reactor failed; dead-lettered",
        );
        await this.deadLetter(lease, record, info, attempt, firstFailure);
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
    this.deps.outboxWritten();
  }
}

/**
 * drizzle over a postgres.js transaction. drizzle reads (and adjusts) the client's `options` at construction; a
 * transaction handle has none of its own, so it is given its pool's (already adjusted the same way by openDatabase).
 */
function drizzleOn(tx: Tx, pool: postgres.Sql): Db {
  return drizzle(Object.assign(tx, { options: pool.options }) as unknown as postgres.Sql, { schema });
}
