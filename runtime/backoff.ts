/** Retry delays: exponential from `baseMs`, capped at `maxMs`, with +/- `jitter` spread so retries don't align. */
export interface BackoffPolicy {
  baseMs: number;
  maxMs: number;
  /** Fraction of the delay added or removed at random, 0..1. */
  jitter: number;
}

/** Delay before retry number `attempt` (1 = the first retry). `random` is injectable for tests. */
export function backoffDelay(
  policy: BackoffPolicy,
  attempt: number,
  random: () => number = Math.random,
): number {
  const exponential = Math.min(policy.maxMs, policy.baseMs * 2 ** Math.max(0, attempt - 1));
  const spread = exponential * policy.jitter * (random() * 2 - 1);
  return Math.max(0, Math.round(exponential + spread));
}
