/**
 * Opening Redis (ioredis). Commands fail fast while the server is away instead of queueing without bound:
 * Redis is a cache here, and callers fall back to Postgres.
 */
import Redis from "ioredis";

export type { Redis };

export function openRedis(url: string, options: { connectTimeoutMs?: number } = {}): Redis {
  return new Redis(url, {
    lazyConnect: true,
    connectTimeout: options.connectTimeoutMs ?? 2000,
    maxRetriesPerRequest: 1,
    enableOfflineQueue: true,
    // Keep trying to reconnect, backing off to 2 s, so a restarted Redis is picked up again.
    retryStrategy: (times) => Math.min(times * 100, 2000),
  });
}

export async function pingRedis(redis: Redis): Promise<void> {
  if (redis.status === "wait") await redis.connect();
  const answer = await redis.ping();
  if (answer !== "PONG") throw new Error(`unexpected PING answer ${answer}`);
}
