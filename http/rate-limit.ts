/**
 * A per-principal request budget (OWASP API4, unrestricted resource consumption): each token's subject may make
 * `perMinute` requests in a clock minute, counted in Redis so every HTTP process shares the count; beyond it,
 * 429 with `Retry-After` (the seconds to the next minute). When Redis does not answer within 100 ms the request
 * goes through: an outage of the counter must not take the API down with it.
 */
import type { Logger, Redis } from "../runtime/index.ts";
import { HttpError } from "./errors.ts";

export interface RateLimiter {
  /** Counts one request of `subject`; throws 429 when its minute's budget is spent. */
  take(subject: string): Promise<void>;
}

const REDIS_WAIT_MS = 100;

export function rateLimiter(redis: Redis, perMinute: number, log: Logger): RateLimiter {
  if (perMinute <= 0) return { take: async () => {} };
  return {
    async take(subject) {
      const now = Date.now();
      const minute = Math.floor(now / 60_000);
      const key = `ratelimit:${subject}:${minute}`;
      let timer: Timer | undefined;
      const count = await Promise.race([
        redis
          .multi()
          .incr(key)
          .pexpire(key, 61_000)
          .exec()
          .then((results) => Number(results?.[0]?.[1] ?? 0)),
        new Promise<number>((resolve) => {
          timer = setTimeout(() => resolve(0), REDIS_WAIT_MS);
        }),
      ])
        .catch((error: unknown) => {
          log.debug({ err: error }, "rate limit not counted: redis unavailable");
          return 0;
        })
        .finally(() => clearTimeout(timer));
      if (count > perMinute) {
        const retryAfter = Math.max(1, Math.ceil(((minute + 1) * 60_000 - now) / 1000));
        throw new HttpError(
          429,
          "rate_limited",
          `at most ${perMinute} requests a minute per token; retry in ${retryAfter} s`,
          { retryable: true, headers: { "retry-after": String(retryAfter) } },
        );
      }
    },
  };
}
