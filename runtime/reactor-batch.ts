/**
 * Group commit for reactors: the (event, reactor) pairs that are ready while a transaction is in flight are
 * handled together in the next one, each inside its own savepoint (none for one alone in its batch). One commit,
 * one fence statement and one inbox insert serve many events instead of one each. A host gives each reactor a
 * batcher of its own (reactor.ts ReactorGroup); a batcher can hold pairs of several reactors all the same.
 *
 * Each event keeps its own outcome: a fenced lease, an event id already handled (a duplicate), or a handler that
 * throws fails that event alone (its savepoint and its inbox row are undone; the runner retries or dead-letters
 * it); the others commit. A transaction that fails as a whole fails all its events (retryable: they run again).
 *
 * A key never has two events in flight (the partition worker runs one per key; the reactors of one event run
 * together), so per-key order holds for each reactor.
 */

import type { PostgresJsDatabase } from "drizzle-orm/postgres-js";
import type postgres from "postgres";
import type { Envelope } from "../topics/index.ts";
import { type PartitionLease, splitByLease, type Tx } from "./fence.ts";
import { appendOutboxRows, causedRecord, type OutboxRecord } from "./outbox.ts";
import type { InboundRecord } from "./partition-worker.ts";
import type { ReactorContext, ReactorDefinition, ReactorResult } from "./reactor.ts";
import { type Span, traceHeaders, traceIdOf } from "./tracing.ts";
import { type BatchOptions, TransactionBatcher } from "./transaction-batch.ts";

export interface ReactorTurn {
  reactor: ReactorDefinition;
  lease: PartitionLease;
  record: InboundRecord;
  event: Envelope;
  attempt: number;
  now: Date;
  /** The event's span (tracing on): what the reactor emits names it as its cause. */
  span?: Span;
}

export interface ReactorOutcome {
  outcome: "duplicate" | "handled" | "emitted";
  afterCommit?: ReactorResult["afterCommit"];
}

/** One event waiting in a batch. */
interface Pending {
  turn: ReactorTurn;
}

export type ReactorBatchOptions = BatchOptions;

export class ReactorBatcher {
  private readonly batcher: TransactionBatcher<Pending, ReactorOutcome>;

  constructor(
    sql: postgres.Sql,
    private readonly drizzleOn: (tx: Tx) => PostgresJsDatabase,
    options: ReactorBatchOptions,
  ) {
    this.batcher = new TransactionBatcher(sql, options, (tx, items, failures) =>
      this.handleBatch(tx, items, failures),
    );
  }

  get stats() {
    return this.batcher.stats;
  }

  /** Handles one event as part of the next batch. */
  run(turn: ReactorTurn): Promise<ReactorOutcome> {
    return this.batcher.submit({ turn });
  }

  private async handleBatch(tx: Tx, batch: Pending[], failures: Map<Pending, unknown>) {
    const outcomes = new Map<Pending, ReactorOutcome>();
    // 1. Fence.
    const fence = await splitByLease(
      tx,
      batch.map((p) => ({ lease: p.turn.lease, p })),
    );
    for (const [item, error] of fence.fenced) failures.set(item.p, error);
    let live = fence.live.map((item) => item.p);
    if (live.length === 0) return outcomes;

    // 2. Inbox: (reactor, event id) pairs not seen before (a duplicate is an outcome, not a failure).
    const pair = (consumer: string, eventId: string) => `${consumer}\u0000${eventId}`;
    const fresh = await tx<{ consumer: string; event_id: string }[]>`
      insert into inbox (consumer, event_id)
      select c, e::uuid from unnest(${live.map((p) => p.turn.reactor.name)}::text[],
        ${live.map((p) => p.turn.event.eventId)}::text[]) as t(c, e)
      on conflict do nothing
      returning consumer, event_id`;
    const freshPairs = new Set(fresh.map((r) => pair(r.consumer, r.event_id)));
    const isFresh = (p: Pending) => freshPairs.has(pair(p.turn.reactor.name, p.turn.event.eventId));
    for (const p of live) if (!isFresh(p)) outcomes.set(p, { outcome: "duplicate" });
    live = live.filter(isFresh);

    // 3. Each event in its own savepoint, so one that throws undoes only its own writes. An event alone in its
    // batch needs none: if it throws, the whole transaction is undone with it, and nothing else was in it.
    const emitted: { records: OutboxRecord[]; lease: PartitionLease }[] = [];
    const failed: Pending[] = [];
    const alone = live.length === 1;
    const db = this.drizzleOn(tx);
    for (const [i, p] of live.entries()) {
      const { event, record, attempt, now, span } = p.turn;
      const ctx: ReactorContext = {
        tx: db,
        sql: tx,
        topic: record.topic,
        partition: record.partition,
        offset: String(record.offset),
        attempt,
        now,
        traceId: traceIdOf(span),
      };
      let result: ReactorResult | undefined;
      if (alone) {
        result = (await p.turn.reactor.handle(event, ctx)) ?? undefined;
      } else {
        // Sent and never waited for on success: it goes out in the same write as the handler's first statement
        // (postgres.js sends what a tick queued together), and Postgres runs it first. Its failure fails every
        // statement after it and the commit (the batch is then split). Waiting for it costs a round trip per
        // event whose handler writes nothing — under load, every await is a trip through a busy event loop.
        const name = `e${i}`;
        const savepoint = tx.unsafe(`savepoint ${name}`);
        savepoint.catch(() => {});
        try {
          result = (await p.turn.reactor.handle(event, ctx)) ?? undefined;
        } catch (error) {
          await savepoint.catch(() => {});
          await tx.unsafe(`rollback to savepoint ${name}`);
          failures.set(p, error);
          failed.push(p);
          continue;
        }
      }
      const emits = result?.emit ?? [];
      if (emits.length > 0) {
        const traced = traceHeaders(span);
        emitted.push({
          lease: p.turn.lease,
          records: emits.map((e) =>
            causedRecord(e.topic, e.key ?? event.entityId, e.type, e.payload, event, now, traced),
          ),
        });
      }
      outcomes.set(p, {
        outcome: emits.length > 0 ? "emitted" : "handled",
        afterCommit: result?.afterCommit,
      });
    }
    if (failed.length > 0) {
      // Their inbox rows were written in step 2: undo them, so the retried events are not taken for duplicates.
      await tx`
        delete from inbox where (consumer, event_id) in (
          select c, e::uuid from unnest(${failed.map((p) => p.turn.reactor.name)}::text[],
            ${failed.map((p) => p.turn.event.eventId)}::text[]) as t(c, e))`;
    }

    // 4. What the handlers emitted, in event order.
    await appendOutboxRows(
      tx,
      emitted.flatMap(({ records, lease }) => records.map((record) => ({ record, lease }))),
    );
    return outcomes;
  }
}
