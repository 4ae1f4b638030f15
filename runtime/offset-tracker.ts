/**
 * The commit position of one partition: the end of the contiguous run of finished records, never beyond.
 *
 * Records are added in offset order as they are dispatched and finish in any order. `committable()` is the
 * offset to commit (Kafka's "next offset to read"): the lowest unfinished offset, or one past the last added
 * record when all are finished. Offsets may have gaps (compaction, transaction markers): only added offsets count.
 */
export class OffsetTracker {
  /** Unfinished and finished offsets in dispatch order, from the oldest unfinished one. */
  private readonly queue: bigint[] = [];
  private head = 0;
  private readonly finished = new Set<bigint>();
  private next: bigint;

  constructor(start: bigint) {
    this.next = start;
  }

  /** The offset after the last added record: anything below it was already dispatched. */
  get nextOffset(): bigint {
    return this.next;
  }

  /** Records added and not yet finished. */
  get pending(): number {
    return this.queue.length - this.head - this.finished.size;
  }

  add(offset: bigint): void {
    if (offset < this.next) throw new Error(`offset ${offset} added out of order (next is ${this.next})`);
    this.queue.push(offset);
    this.next = offset + 1n;
  }

  finish(offset: bigint): void {
    this.finished.add(offset);
    // Drop the finished prefix so the queue stays as long as the in-flight window.
    while (this.head < this.queue.length && this.finished.has(this.queue[this.head] as bigint)) {
      this.finished.delete(this.queue[this.head] as bigint);
      this.head++;
    }
    if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue.splice(0, this.head);
      this.head = 0;
    }
  }

  committable(): bigint {
    return this.head < this.queue.length ? (this.queue[this.head] as bigint) : this.next;
  }
}
