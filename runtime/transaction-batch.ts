/**
 * Batching work into shared transactions: items submitted while a transaction is in flight go into the next
 * one (at most `maxBatch` per transaction, `maxInFlight` transactions at once). The batch function decides each
 * item's own outcome: a value for the items it handled, an error in `failures` for the ones it refused.
 *
 * One failure is one failure: a transaction that fails as a whole (one item's value Postgres cannot store, a
 * constraint, a deadlock) is split in halves and each half run again in its own transaction, down to single
 * items, so the item at fault fails alone, with its own error, and its neighbours commit. Only when Postgres
 * cannot be reached do all the items fail together (with that error: the caller re-reads later).
 *
 * Actor turns (group-commit.ts) and reactor events (reactor-batch.ts) are committed this way.
 */
import type postgres from "postgres";
import { isUnavailable } from "./errors.ts";
import type { Tx } from "./fence.ts";

export interface BatchOptions {
  /** Items per transaction at most. */
  maxBatch: number;
  /** Transactions in flight at once (each holds one connection). */
  maxInFlight: number;
  /**
   * The batch function issues exactly one statement, atomic on its own: it runs without BEGIN and COMMIT (two
   * round trips fewer a batch). Default false.
   */
  singleStatement?: boolean;
  /** Told the size of each batch that committed (metrics). */
  onBatch?: (size: number) => void;
}

/** Handles one batch inside its transaction; items missing from the result failed (see `failures`). */
export type BatchFn<In extends object, Out> = (
  tx: Tx,
  items: In[],
  failures: Map<In, unknown>,
) => Promise<Map<In, Out>>;

interface Pending<In, Out> {
  item: In;
  resolve(value: Out): void;
  reject(error: unknown): void;
}

export class TransactionBatcher<In extends object, Out> {
  private readonly queue: Pending<In, Out>[] = [];
  private inFlight = 0;
  private readonly counts = { batches: 0, items: 0, largestBatch: 0, splits: 0 };

  /** Counters, and what waits now: items queued, transactions in flight. */
  get stats() {
    return { ...this.counts, queued: this.queue.length, inFlight: this.inFlight };
  }

  constructor(
    private readonly sql: postgres.Sql,
    private readonly options: BatchOptions,
    private readonly handleBatch: BatchFn<In, Out>,
  ) {}

  /** Runs `item` as part of the next batch; resolves to its own outcome. */
  submit(item: In): Promise<Out> {
    return new Promise((resolve, reject) => {
      this.queue.push({ item, resolve, reject });
      this.pump();
    });
  }

  private pump(): void {
    while (this.inFlight < this.options.maxInFlight && this.queue.length > 0) {
      const batch = this.queue.splice(0, this.options.maxBatch);
      this.inFlight++;
      void this.flush(batch).finally(() => {
        this.inFlight--;
        this.pump();
      });
    }
  }

  private async flush(batch: Pending<In, Out>[]): Promise<void> {
    this.counts.batches++;
    this.counts.items += batch.length;
    this.counts.largestBatch = Math.max(this.counts.largestBatch, batch.length);
    await this.run(batch);
  }

  private async run(batch: Pending<In, Out>[]): Promise<void> {
    const failures = new Map<In, unknown>();
    let results: Map<In, Out>;
    try {
      const items = batch.map((p) => p.item);
      results = this.options.singleStatement
        ? // The pool as the handle: one statement is its own transaction.
          await this.handleBatch(this.sql as unknown as Tx, items, failures)
        : await this.sql.begin((tx) => this.handleBatch(tx, items, failures));
    } catch (error) {
      if (batch.length > 1 && !isUnavailable(error)) {
        // Items of a batch are of different keys (a key has one item in flight), so the halves' order is free.
        this.counts.splits++;
        const half = Math.ceil(batch.length / 2);
        await this.run(batch.slice(0, half));
        await this.run(batch.slice(half));
        return;
      }
      for (const p of batch) p.reject(error);
      return;
    }
    this.options.onBatch?.(batch.length);
    for (const p of batch) {
      if (results.has(p.item)) p.resolve(results.get(p.item) as Out);
      else p.reject(failures.get(p.item) ?? new Error("not handled in its batch"));
    }
  }
}
