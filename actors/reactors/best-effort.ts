/**
 * Redis only mirrors what Postgres holds, so a reactor never fails an event over a Redis write: it logs and
 * carries on. The next event for the same figure or entity writes Redis again from Postgres, and the writes
 * are idempotent (SET of a value, write-if-newer), so Redis converges once it is back.
 */
import type { Logger } from "../../runtime/index.ts";

/**
 * A Redis that does not answer in this long counts as down. The handler's transaction is open meanwhile, so the
 * wait stays short (ioredis alone would hold a command through a reconnect attempt: up to 2 s, runtime/redis.ts).
 */
export const REDIS_WRITE_TIMEOUT_MS = 1000;

/**
 * Runs a Redis write; a failure or a timeout is logged with `context`, never thrown.
 *
 * @example
 * await bestEffort(log, { key }, () => redis.set(key, value));
 */
export async function bestEffort(
  log: Logger,
  context: Record<string, unknown>,
  write: () => Promise<unknown>,
  timeoutMs = REDIS_WRITE_TIMEOUT_MS,
): Promise<void> {
  let timer: Timer | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`redis did not answer within ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    await Promise.race([write(), timeout]);
  } catch (err) {
    log.warn({ ...context, err }, "redis write failed; postgres keeps the truth, the next event re-mirrors");
  } finally {
    clearTimeout(timer);
  }
}
