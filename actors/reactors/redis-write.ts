/**
 * Writes to Redis from reactors. Redis only mirrors what Postgres holds, and the writes are idempotent (SET of a
 * value, write-if-newer), so a write may be done again at any time; what differs is what a failed one costs:
 *
 * - `writeOrWait`: the write is the reactor's whole effect (cache-sync). A Redis that does not answer fails the
 *   event with UnavailableError: it is retried, and then its partition is read again once Redis is back — never
 *   dead-lettered, never lost, so the cache converges after an outage without waiting for the entity's next event.
 * - `bestEffort`: the Postgres write is the truth and the mirror can be rebuilt from it (analytics re-mirrors its
 *   recent figures whenever Redis connects): a failure is logged, not thrown.
 */
import { type Logger, UnavailableError } from "../../runtime/index.ts";

/**
 * A Redis that does not answer in this long counts as down. The handler's transaction is open meanwhile, so the
 * wait stays short (ioredis alone would hold a command through a reconnect attempt: up to 2 s, runtime/redis.ts).
 */
export const REDIS_WRITE_TIMEOUT_MS = 1000;

async function bounded(write: () => Promise<unknown>, timeoutMs: number): Promise<void> {
  let timer: Timer | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`redis did not answer within ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    await Promise.race([write(), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Runs a Redis write the reactor cannot do without; a failure or a timeout throws UnavailableError.
 *
 * @example
 * await writeOrWait(() => writeJsonIfNewer(redis, `booking:${id}`, booking));
 */
export async function writeOrWait(
  write: () => Promise<unknown>,
  timeoutMs = REDIS_WRITE_TIMEOUT_MS,
): Promise<void> {
  try {
    await bounded(write, timeoutMs);
  } catch (error) {
    throw new UnavailableError("redis", (error as Error).message, { cause: error });
  }
}

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
  try {
    await bounded(write, timeoutMs);
  } catch (err) {
    log.warn(
      { ...context, err },
      "redis write failed; postgres keeps the truth, re-mirrored when redis connects",
    );
  }
}
