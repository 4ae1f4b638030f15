/**
 * Group commit for reactors: the events of one reactor that are ready while a transaction is in flight are
 * handled together in the next one, each inside its own savepoint. One commit (and one fence check per lease, one
 * inbox insert) serves many events instead of one each.
 *
 * Each event keeps its own outcome: a fenced lease, an event id already handled (a duplicate), or a handler that
 * throws fails that event alone (its savepoint and its inbox row are undone; the runner retries or dead-letters
 * it); the others commit. A transaction that fails as a whole fails all its events (retryable: they run again).
 *
 * A key never has two events in flight (the partition worker runs one per key), so per-key order holds.
 */
import type postgres from "postgres";
import type { Db } from "../db/index.ts";
import type { Envelope } from "../topics/index.ts";
import { type PartitionLease, splitByLease, type Tx } from "./fence.ts";
import { appendOutbox, causedRecord, type OutboxRecord } from "./outbox.ts";
import type { InboundRecord } from "./partition-worker.ts";
import type { ReactorContext, ReactorDefinition, ReactorResult } from "./reactor.ts";
import { type BatchOptions, TransactionBatcher } from "./transaction-batch.ts";

export interface ReactorTurn {
  lease: PartitionLease;
  record: InboundRecord;
  event: Envelope;
  attempt: number;
  now: Date;
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
    private readonly definition: ReactorDefinition,
    private readonly drizzleOn: (tx: Tx) => Db,
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

    // 2. Inbox: event ids not seen before (a duplicate is an outcome, not a failure).
    const name = this.definition.name;
    const fresh = await tx<{ event_id: string }[]>`
      insert into inbox (consumer, event_id)
      select ${name}, e::uuid from unnest(${live.map((p) => p.turn.event.eventId)}::text[]) as t(e)
      on conflict do nothing
      returning event_id`;
    const freshIds = new Set(fresh.map((r) => r.event_id));
    for (const p of live) if (!freshIds.has(p.turn.event.eventId)) outcomes.set(p, { outcome: "duplicate" });
    live = live.filter((p) => freshIds.has(p.turn.event.eventId));

    // 3. Each event in its own savepoint, so one that throws undoes only its own writes.
    const emitted: { records: OutboxRecord[]; lease: PartitionLease }[] = [];
    const failed: Pending[] = [];
    for (const p of live) {
      const { event, record, attempt, now } = p.turn;
      try {
        const result = await tx.savepoint(async (sp) => {
          const ctx: ReactorContext = {
            tx: this.drizzleOn(sp),
            sql: sp,
            topic: record.topic,
            partition: record.partition,
            offset: String(record.offset),
            attempt,
            now,
          };
          return (await this.definition.handle(event, ctx)) ?? undefined;
        });
        const emits = result?.emit ?? [];
        if (emits.length > 0) {
          emitted.push({
            lease: p.turn.lease,
            records: emits.map((e) =>
              causedRecord(e.topic, e.key ?? event.entityId, e.type, e.payload, event, now),
            ),
          });
        }
        outcomes.set(p, {
          outcome: emits.length > 0 ? "emitted" : "handled",
          afterCommit: result?.afterCommit,
        });
      } catch (error) {
        failures.set(p, error);
        failed.push(p);
      }
    }
    if (failed.length > 0) {
      // Their inbox rows were written in step 2: undo them, so the retried events are not taken for duplicates.
      await tx`
        delete from inbox where consumer = ${name}
          and event_id in (select e::uuid from unnest(${failed.map((p) => p.turn.event.eventId)}::text[]) as t(e))`;
    }

    // 4. What the handlers emitted, in event order.
    for (const { records, lease } of emitted) await appendOutbox(tx, records, lease);
    return outcomes;
  }
}
