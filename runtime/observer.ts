/**
 * What the runtime tells the process that hosts it, as it happens: a turn or a reactor's event done (and how
 * long it took), a transaction batch's size, a rebalance's duration. The runtime only calls these; the process
 * turns them into metrics (ops/metrics.ts) — the runtime imports no HTTP and no metrics library. Counters that
 * only grow (retries, dead letters, fenced turns...) are read from `host.stats()` instead, when scraped.
 *
 * Calls are synchronous and must not throw or block: they run on the turn's path.
 */
export type TurnOutcome = "committed" | "noop" | "duplicate" | "dead-lettered" | "parked";
export type ReactorEventOutcome = "handled" | "emitted" | "duplicate" | "dead-lettered";

export interface RuntimeObserver {
  /** An actor's message done: `ms` from its first attempt's start to its commit (retries included). */
  turn(kind: string, outcome: TurnOutcome, ms: number): void;
  /** A reactor's event done, the same way. */
  reactor(name: string, outcome: ReactorEventOutcome, ms: number): void;
  /** A transaction of `size` items committed by a batcher (`of`: "actors" for group commit, or a reactor). */
  batch(of: string, size: number): void;
  /** A consumer group's join finished (a rebalance), after `ms`. */
  rebalance(groupId: string, ms: number): void;
}

/** The default: nothing observes. */
export const NO_OBSERVER: RuntimeObserver = {
  turn() {},
  reactor() {},
  batch() {},
  rebalance() {},
};
