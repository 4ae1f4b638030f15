/**
 * Runs the turns of one actor kind: activates actors on their first message (state from Postgres), runs the
 * handler under the kind's supervision policy (retries with backoff in the key's own mailbox, so other keys keep
 * flowing), commits each turn atomically, dead-letters what cannot be handled, and passivates idle actors.
 */
import {
  type ActorDefinition,
  classifyUnder,
  DEFAULT_SUPERVISION,
  type MessageSchemas,
  type SupervisionPolicy,
  type TurnContext,
  type TurnResult,
} from "./actor.ts";
import {
  type ActorSnapshot,
  commitTurn,
  DuplicateMessageError,
  loadActor,
  loadActors,
  StaleStateError,
  type TimerWrite,
} from "./actor-store.ts";
import { backoffDelay } from "./backoff.ts";
import { writeDeadLetter } from "./dead-letters.ts";
import { classifyError, DecodeError, type ErrorInfo, FencedError, isOutsideTheMessage } from "./errors.ts";
import { checkLease, type PartitionLease } from "./fence.ts";
import type { RuntimeDeps } from "./host-deps.ts";
import { messageDecoder } from "./message.ts";
import { causedRecord, type OutboxRecord } from "./outbox.ts";
import type { InboundRecord } from "./partition-worker.ts";
import { isStorableText } from "./storable-text.ts";
import {
  activeTracer,
  childSpan,
  endSpan,
  failSpan,
  parentContext,
  type Span,
  SpanKind,
  traceHeaders,
  traceIdOf,
} from "./tracing.ts";

interface Cell<S> extends ActorSnapshot<S> {
  key: string;
  partition: number;
  running: boolean;
  lastUsed: number;
}

export interface ActorRunnerOptions {
  /** Actors kept in memory at most (least recently used ones are passivated first). */
  maxActors: number;
  /** An actor idle this long is passivated. */
  passivateAfterMs: number;
}

export class ActorRunner<S, M extends MessageSchemas> {
  private readonly cells = new Map<string, Cell<S>>();
  private readonly decode: ReturnType<typeof messageDecoder<M>>;
  private readonly policy: SupervisionPolicy;
  private readonly skipNoops: boolean;
  /** Activations in progress, shared by a batch prefetch and the turns that wait for it. */
  private readonly loading = new Map<string, Promise<ActorSnapshot<S>>>();
  readonly stats = {
    turns: 0,
    /** No-op turns not committed (noopTurns: "skip"). */
    noops: 0,
    skipped: 0,
    duplicates: 0,
    retries: 0,
    deadLetters: 0,
    parked: 0,
    fenced: 0,
    passivated: 0,
  };

  constructor(
    readonly definition: ActorDefinition<S, M>,
    private readonly deps: RuntimeDeps,
    private readonly options: ActorRunnerOptions,
  ) {
    this.decode = messageDecoder(definition.messages);
    this.policy = { ...DEFAULT_SUPERVISION, ...definition.supervision };
    this.skipNoops = definition.noopTurns === "skip";
  }

  get activeActors(): number {
    return this.cells.size;
  }

  /** Handles one mailbox record to completion. Throws FencedError when the partition was taken over. */
  async handle(lease: PartitionLease, record: InboundRecord): Promise<void> {
    const kind = this.definition.kind;
    if (record.key === null || record.key === "" || !isStorableText(record.key)) {
      const error = classifyError(
        new DecodeError(
          record.key
            ? "record key holds characters Postgres cannot store (NUL, a lone surrogate): no actor can have it"
            : "record has no key: the actor it is for is unknown",
        ),
      );
      await this.deps.sql.begin(async (tx) => {
        await checkLease(tx, lease);
        await writeDeadLetter(tx, this.deadLetterInput(lease, record, error, 1, new Date(), "dead"));
      });
      this.stats.deadLetters++;
      return;
    }
    const cell = this.touch(record.key) ?? (await this.activate(record.key, record.partition));
    cell.running = true;
    try {
      if (
        cell.lastPartition === record.partition &&
        cell.lastOffset !== null &&
        record.offset <= cell.lastOffset
      ) {
        this.stats.skipped++; // handled before a crash or a rebalance; its effects are committed
        return;
      }
      let message: ReturnType<typeof this.decode>;
      try {
        message = this.decode(record.value);
      } catch (error) {
        await this.finishWithDeadLetter(lease, cell, record, classifyError(error), 1, this.deps.clock());
        return;
      }
      if (cell.parked) {
        // An operator may have replayed (unparked) the key from another process since we loaded it.
        Object.assign(
          cell,
          await loadActor(this.deps.sql, kind, cell.key, () => this.definition.initialState(cell.key)),
        );
        if (cell.parked) {
          const parked = parkedError(kind, cell.key);
          await this.finishWithDeadLetter(lease, cell, record, parked, 0, this.deps.clock(), "parked");
          return;
        }
      }
      await this.supervise(lease, cell, record, message);
    } catch (error) {
      if (error instanceof FencedError) {
        this.stats.fenced++;
        this.dropPartition(record.partition);
      }
      throw error;
    } finally {
      cell.running = false;
      cell.lastUsed = Date.now();
      this.evictOverflow();
    }
  }

  /**
   * Runs the turn (its attempts) in a span `turn <kind>` whose parent is the trace the record carries; without a
   * tracer (tracing off) nothing of it is made.
   */
  private supervise(
    lease: PartitionLease,
    cell: Cell<S>,
    record: InboundRecord,
    message: ReturnType<typeof this.decode>,
  ): Promise<void> {
    const kind = this.definition.kind;
    const span = activeTracer()?.startSpan(
      `turn ${kind}`,
      {
        kind: SpanKind.CONSUMER,
        attributes: {
          "messaging.system": "kafka",
          "messaging.operation.type": "process",
          "messaging.destination.name": record.topic,
          "messaging.destination.partition.id": String(record.partition),
          "messaging.kafka.offset": Number(record.offset),
          "messaging.message.id": message.envelope.eventId,
          "pitstop.actor.kind": kind,
          "pitstop.actor.key": cell.key,
          "pitstop.message.type": message.type,
          "pitstop.correlation.id": message.envelope.correlationId,
        },
      },
      parentContext(record.headers),
    );
    // Not an async function: without a span the turn's promise is handed back as it is (no extra ticks).
    if (!span) return this.attempts(lease, cell, record, message, undefined);
    return this.attempts(lease, cell, record, message, span).then(
      () => span.end(),
      (error: unknown) => {
        endSpan(span, error);
        throw error;
      },
    );
  }

  private async attempts(
    lease: PartitionLease,
    cell: Cell<S>,
    record: InboundRecord,
    message: ReturnType<typeof this.decode>,
    span: Span | undefined,
  ): Promise<void> {
    const firstFailureAt: Date[] = [];
    const started = performance.now();
    const kind = this.definition.kind;
    // The turn's logger, made only when something is logged (a child per turn would cost on every turn).
    const turnLog = () =>
      this.deps.log.child({
        kind,
        key: cell.key,
        topic: record.topic,
        partition: record.partition,
        offset: String(record.offset),
        messageType: message.type,
        eventId: message.envelope.eventId,
        correlationId: message.envelope.correlationId,
        traceId: traceIdOf(span),
      });
    for (let attempt = 1; ; attempt++) {
      const now = this.deps.clock();
      try {
        const ctx: TurnContext = {
          kind: this.definition.kind,
          key: cell.key,
          topic: record.topic,
          partition: record.partition,
          offset: String(record.offset),
          attempt,
          now,
        };
        const returned = this.definition.handle(cell.state, message, ctx);
        // A handler that returns synchronously is not awaited: one microtask less per turn.
        const result = returned instanceof Promise ? await returned : returned;
        if (this.skipNoops && isNoop(cell.state, result)) {
          this.stats.noops++;
          span?.setAttribute("pitstop.turn.outcome", "noop");
          this.deps.observer.turn(kind, "noop", performance.now() - started);
          this.afterCommit(cell, record, result);
          return;
        }
        await this.commit(lease, cell, record, message, result, now, span);
        this.stats.turns++;
        span?.setAttribute("pitstop.turn.outcome", "committed");
        this.deps.observer.turn(kind, "committed", performance.now() - started);
        this.afterCommit(cell, record, result);
        return;
      } catch (error) {
        if (error instanceof FencedError) throw error;
        if (error instanceof DuplicateMessageError) {
          this.stats.duplicates++;
          span?.setAttribute("pitstop.turn.outcome", "duplicate");
          this.deps.observer.turn(kind, "duplicate", performance.now() - started);
          return;
        }
        if (error instanceof StaleStateError) {
          Object.assign(
            cell,
            await loadActor(this.deps.sql, this.definition.kind, cell.key, () =>
              this.definition.initialState(cell.key),
            ),
          );
          if (cell.parked) {
            // An operator parked the key while it was in memory (parkActor bumps the version for this): hold
            // this record like every later one, rather than commit a turn that would unpark it.
            await this.finishWithDeadLetter(
              lease,
              cell,
              record,
              parkedError(kind, cell.key),
              0,
              now,
              "parked",
            );
            return;
          }
        }
        const info = classifyUnder(this.policy, error);
        firstFailureAt.push(now);
        if (info.retryable && attempt < this.policy.maxAttempts) {
          this.stats.retries++;
          span?.addEvent("retry", { attempt, "error.type": info.errorClass });
          turnLog().warn({ attempt, err: info }, "turn failed; retrying");
          await Bun.sleep(backoffDelay(this.policy.backoff, attempt));
          continue;
        }
        if (isOutsideTheMessage(error)) {
          // Postgres is out of reach: not this message's fault. Give the partition up; it is read again from
          // its committed position once the consumer is back (group-consumer.ts).
          turnLog().error(
            { attempts: attempt, err: info },
            "dependency unavailable; partition will be re-read",
          );
          throw error;
        }
        turnLog().error({ attempts: attempt, err: info }, "turn failed; dead-lettered");
        failSpan(span, error);
        span?.setAttribute("pitstop.turn.outcome", "dead-lettered");
        await this.finishWithDeadLetter(lease, cell, record, info, attempt, firstFailureAt[0] ?? now, "dead");
        return;
      }
    }
  }

  private async commit(
    lease: PartitionLease,
    cell: Cell<S>,
    record: InboundRecord,
    message: ReturnType<typeof this.decode>,
    result: TurnResult<S>,
    now: Date,
    span: Span | undefined,
  ): Promise<void> {
    const cause = message.envelope;
    // What the turn emits and sends names its span as their cause (undefined, so no header, when tracing is off).
    const traced = traceHeaders(span);
    // What the turn emits and sends says which actor it came from, at which version, and what it chose to tell
    // of its new state (readers take the actor's state as of the record from there).
    const source =
      result.emit?.length || result.send?.length
        ? {
            kind: this.definition.kind,
            key: cell.key,
            version: cell.version + 1, // what this commit makes it (commitTurn and group commit alike)
            state: this.definition.eventState?.(result.state) ?? {},
          }
        : undefined;
    const outbox: OutboxRecord[] = [
      ...(result.emit ?? []).map((e) =>
        causedRecord(e.topic, e.key ?? cell.key, e.type, e.payload, cause, now, traced, source),
      ),
      ...(result.send ?? []).map((c) => {
        const replyTo = c.forwardReply ? record.headers[REPLY_TO_HEADER] : undefined;
        const headers = replyTo ? { ...traced, [REPLY_TO_HEADER]: replyTo } : traced;
        return causedRecord(c.to.mailbox, c.to.key, c.type, c.payload, cause, now, headers, source);
      }),
    ];
    const timers: TimerWrite[] = (result.timers ?? []).map((t) =>
      "cancel" in t
        ? { name: t.cancel }
        : {
            name: t.set,
            set: {
              fireAt: t.at,
              messageType: t.type,
              payload: t.payload,
              correlationId: cause.correlationId,
            },
          },
    );
    const turn = {
      lease,
      kind: this.definition.kind,
      key: cell.key,
      mailbox: this.definition.mailbox,
      messageId: cause.eventId,
      expectedVersion: cell.version,
      state: result.state,
      partition: record.partition,
      offset: record.offset,
      outbox,
      timers,
    };
    const committing =
      span &&
      childSpan(span, "commit", {
        "pitstop.commit.grouped": this.deps.groupCommit !== undefined,
        "pitstop.commit.records": outbox.length,
        "pitstop.commit.timers": timers.length,
      });
    let version: number;
    try {
      version = this.deps.groupCommit
        ? await this.deps.groupCommit.commit(turn)
        : await commitTurn(this.deps.sql, turn);
    } catch (error) {
      endSpan(committing, error);
      throw error;
    }
    endSpan(committing);
    cell.state = result.state;
    cell.version = version;
    cell.lastPartition = record.partition;
    cell.lastOffset = record.offset;
    // Group commit hands its rows to the publisher itself; a turn committed alone wakes it.
    if (outbox.length > 0 && !this.deps.groupCommit) this.deps.outboxWritten(lease);
  }

  private afterCommit(cell: Cell<S>, record: InboundRecord, result: TurnResult<S>): void {
    const fabric = this.deps.fabric;
    if (!fabric) return;
    if (result.status !== undefined) fabric.publishStatus(this.definition.kind, cell.key, result.status);
    const replyTo = record.headers[REPLY_TO_HEADER];
    if (replyTo && result.reply !== undefined) fabric.reply(replyTo, { ok: true, reply: result.reply });
  }

  /** Dead-letters the record and advances the actor past it, in one transaction; parks the key if the policy says so. */
  private async finishWithDeadLetter(
    lease: PartitionLease,
    cell: Cell<S>,
    record: InboundRecord,
    error: ErrorInfo,
    attempts: number,
    firstFailureAt: Date,
    status: "dead" | "parked" = "dead",
  ): Promise<void> {
    const park = cell.parked || (status === "dead" && this.policy.onDeadLetter === "park");
    const version = await commitTurn(this.deps.sql, {
      lease,
      kind: this.definition.kind,
      key: cell.key,
      mailbox: this.definition.mailbox,
      messageId: null, // not in the inbox: a replay of this message must be handled
      expectedVersion: cell.version,
      state: cell.state,
      partition: record.partition,
      offset: record.offset,
      parked: park,
      outbox: [],
      timers: [],
      also: async (tx) => {
        await writeDeadLetter(
          tx,
          this.deadLetterInput(lease, record, error, attempts, firstFailureAt, status),
        );
      },
    });
    cell.version = version;
    cell.lastPartition = record.partition;
    cell.lastOffset = record.offset;
    cell.parked = park;
    if (status === "parked") this.stats.parked++;
    else this.stats.deadLetters++;
    this.deps.observer.turn(
      this.definition.kind,
      status === "parked" ? "parked" : "dead-lettered",
      Math.max(0, Date.now() - firstFailureAt.getTime()),
    );
    this.deps.outboxWritten(lease);
    const replyTo = record.headers[REPLY_TO_HEADER];
    if (replyTo)
      this.deps.fabric?.reply(replyTo, {
        ok: false,
        error: { class: error.errorClass, message: error.message },
      });
  }

  private deadLetterInput(
    lease: PartitionLease,
    record: InboundRecord,
    error: ErrorInfo,
    attempts: number,
    first: Date,
    status: "dead" | "parked",
  ) {
    return {
      consumer: this.definition.kind,
      lease,
      record,
      error,
      attempts,
      firstFailureAt: first,
      lastFailureAt: this.deps.clock(),
      host: this.deps.hostId,
      status,
    };
  }

  /** The actor if it is in memory, marked most recently used (no await on the hot path). */
  private touch(key: string): Cell<S> | undefined {
    const existing = this.cells.get(key);
    if (existing) {
      // Re-insert: a Map iterates in insertion order, so the front is the least recently used.
      this.cells.delete(key);
      this.cells.set(key, existing);
    }
    return existing;
  }

  private async activate(key: string, partition: number): Promise<Cell<S>> {
    const existing = this.touch(key);
    if (existing) return existing;
    const snapshot = await (this.loading.get(key) ?? this.loadOne(key));
    // Another turn of this key cannot have activated it meanwhile: a key runs one turn at a time.
    const cell: Cell<S> = { ...snapshot, key, partition, running: false, lastUsed: Date.now() };
    this.cells.set(key, cell);
    return cell;
  }

  private loadOne(key: string): Promise<ActorSnapshot<S>> {
    const load = loadActor(this.deps.sql, this.definition.kind, key, () => this.definition.initialState(key));
    this.loading.set(key, load);
    return load.finally(() => this.loading.delete(key));
  }

  /**
   * Starts loading, in one query, the actors of a fetched batch that are not in memory: activating them one
   * select per key would cost a round trip each. Their turns await the shared load.
   */
  prefetch(records: readonly InboundRecord[]): void {
    const keys = new Set<string>();
    for (const r of records) {
      // A key Postgres cannot take would fail the whole query, and every turn of the batch with it.
      if (r.key && !this.cells.has(r.key) && !this.loading.has(r.key) && isStorableText(r.key))
        keys.add(r.key);
    }
    if (keys.size < 2) return;
    const all = loadActors(this.deps.sql, this.definition.kind, [...keys], (key) =>
      this.definition.initialState(key),
    );
    for (const key of keys) {
      const one = all.then((found) => found.get(key) as ActorSnapshot<S>);
      this.loading.set(key, one);
      // A failed batch load fails the turns that wait for it (retried under supervision); not unhandled here.
      one
        .catch(() => {})
        .finally(() => {
          if (this.loading.get(key) === one) this.loading.delete(key);
        });
    }
  }

  /** Forgets in-memory actors of a partition (revoked or fenced): their state is reloaded by whoever owns it next. */
  dropPartition(partition: number): void {
    for (const [key, cell] of this.cells) {
      if (cell.partition === partition && !cell.running) this.cells.delete(key);
    }
  }

  /** Passivates actors idle for longer than `passivateAfterMs`. */
  passivateIdle(now = Date.now()): number {
    let count = 0;
    for (const [key, cell] of this.cells) {
      if (!cell.running && now - cell.lastUsed >= this.options.passivateAfterMs) {
        this.cells.delete(key);
        count++;
      }
    }
    this.stats.passivated += count;
    return count;
  }

  private evictOverflow(): void {
    if (this.cells.size <= this.options.maxActors) return;
    for (const [key, cell] of this.cells) {
      if (this.cells.size <= this.options.maxActors) break;
      if (cell.running) continue;
      this.cells.delete(key);
      this.stats.passivated++;
    }
  }

  /** The live state of an actor held in memory here, if any. */
  liveState(key: string): { state: S; version: number } | undefined {
    const cell = this.cells.get(key);
    return cell ? { state: cell.state, version: cell.version } : undefined;
  }
}

/** Same state object back and nothing to emit, send or schedule: the turn changed nothing. */
function isNoop<S>(before: S, result: TurnResult<S>): boolean {
  return (
    result.state === before &&
    (result.emit?.length ?? 0) === 0 &&
    (result.send?.length ?? 0) === 0 &&
    (result.timers?.length ?? 0) === 0
  );
}

/** Header of a command whose sender waits for the reply on this NATS subject. */
export const REPLY_TO_HEADER = "pitstop-reply-to";

/** What a record held because its key is parked is dead-lettered with. */
function parkedError(kind: string, key: string): ErrorInfo {
  return { errorClass: "Parked", message: `${kind}/${key} is parked`, retryable: false };
}
