/**
 * One assigned partition of one consumer: routes its records to per-key mailboxes, runs one record at a time
 * per key in offset order, different keys concurrently up to a bound, and tracks the commit position (the end
 * of the contiguous run of finished records).
 *
 * Backpressure: when more than `maxBuffered` records are dispatched but unfinished, the partition is paused
 * (the consumer stops fetching it) and resumed once the backlog halves.
 *
 * Held (an operator paused the partition): no record starts; running turns finish, fetched records wait in their
 * mailboxes (and backpressure stops the fetching) until it is let go.
 */
import { OffsetTracker } from "./offset-tracker.ts";

export interface InboundRecord {
  topic: string;
  partition: number;
  offset: bigint;
  key: string | null;
  value: Buffer | null;
  headers: Record<string, string>;
  timestamp: string;
}

/** Runs one record to completion (including its retries and dead-lettering). Throws only to give up the partition. */
export type RecordHandler = (record: InboundRecord) => Promise<void>;

export interface PartitionWorkerOptions {
  topic: string;
  partition: number;
  /** The first offset this worker will see, if known; otherwise the first record pushed sets it. */
  startOffset?: bigint;
  handle: RecordHandler;
  /** Turns running at once in this partition (different keys). */
  maxConcurrency: number;
  /** Dispatched-but-unfinished records above which the partition is paused. */
  maxBuffered: number;
  pause(): void;
  resume(): void;
  /** Called when a handler throws: the worker stops; the host decides what to do with the partition. */
  onFailure(error: unknown): void;
}

interface KeyQueue {
  records: InboundRecord[];
  running: boolean;
}

export class PartitionWorker {
  private tracker: OffsetTracker | undefined;
  private readonly keys = new Map<string, KeyQueue>();
  private readonly ready: string[] = [];
  private running = 0;
  private paused = false;
  private held = false;
  private stopped = false;
  private idleWaiters: (() => void)[] = [];

  constructor(private readonly options: PartitionWorkerOptions) {
    if (options.startOffset !== undefined) this.tracker = new OffsetTracker(options.startOffset);
  }

  get topic() {
    return this.options.topic;
  }

  get partition() {
    return this.options.partition;
  }

  /** Records dispatched and not finished (queued or running). */
  get backlog(): number {
    return this.tracker?.pending ?? 0;
  }

  /** Turns running now. */
  get active(): number {
    return this.running;
  }

  /** Accepts a fetched batch. Records below the dispatch position (a refetch after a rebalance) are skipped. */
  push(records: InboundRecord[]): void {
    if (this.stopped || records.length === 0) return;
    this.tracker ??= new OffsetTracker((records[0] as InboundRecord).offset);
    const tracker = this.tracker;
    for (const record of records) {
      if (record.offset < tracker.nextOffset) continue;
      tracker.add(record.offset);
      // A record without a key still needs a queue: its own, so it blocks nobody.
      const key = record.key ?? `\u0000offset:${record.offset}`;
      let queue = this.keys.get(key);
      if (!queue) {
        queue = { records: [], running: false };
        this.keys.set(key, queue);
      }
      queue.records.push(record);
      if (!queue.running && queue.records.length === 1) this.ready.push(key);
    }
    this.pump();
    if (!this.paused && tracker.pending > this.options.maxBuffered) {
      this.paused = true;
      this.options.pause();
    }
  }

  /** The offset of the next record this worker expects (anything below was dispatched or skipped). */
  get nextOffset(): bigint | undefined {
    return this.tracker?.nextOffset;
  }

  /** The offset to commit now; undefined before the first record. */
  committable(): bigint | undefined {
    return this.tracker?.committable();
  }

  /** Stops taking records; resolves when running turns are done or `timeoutMs` passes (returns false then). */
  async drain(timeoutMs: number): Promise<boolean> {
    this.stopped = true;
    this.ready.length = 0;
    for (const queue of this.keys.values()) queue.records.length = 0;
    if (this.running === 0) return true;
    let timer: Timer | undefined;
    const idle = new Promise<boolean>((resolve) => this.idleWaiters.push(() => resolve(true)));
    const timeout = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), timeoutMs);
    });
    const drained = await Promise.race([idle, timeout]);
    clearTimeout(timer);
    return drained;
  }

  /** Holds (or lets go of) the partition's records: none starts while held. */
  hold(held: boolean): void {
    this.held = held;
    if (!held) this.pump();
  }

  get isHeld(): boolean {
    return this.held;
  }

  /** Keys with a record running or queued: their in-memory actors must stay. */
  busyKeys(): Set<string> {
    return new Set(this.keys.keys());
  }

  private pump(): void {
    while (
      !this.stopped &&
      !this.held &&
      this.running < this.options.maxConcurrency &&
      this.ready.length > 0
    ) {
      const key = this.ready.shift() as string;
      const queue = this.keys.get(key);
      const record = queue?.records.shift();
      if (!queue || !record) continue;
      queue.running = true;
      this.running++;
      void this.run(key, queue, record);
    }
  }

  private async run(key: string, queue: KeyQueue, record: InboundRecord): Promise<void> {
    let failed = false;
    try {
      await this.options.handle(record);
    } catch (error) {
      failed = true;
      this.stopped = true;
      this.options.onFailure(error);
    }
    this.running--;
    queue.running = false;
    if (!failed) this.tracker?.finish(record.offset);
    if (queue.records.length > 0 && !this.stopped) this.ready.push(key);
    else if (queue.records.length === 0) this.keys.delete(key);
    if (this.paused && this.backlog <= this.options.maxBuffered / 2 && !this.stopped) {
      this.paused = false;
      this.options.resume();
    }
    if (this.running === 0) {
      for (const wake of this.idleWaiters.splice(0)) wake();
    }
    this.pump();
  }
}
