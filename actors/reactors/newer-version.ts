/**
 * Writes of an entity's state to Redis that only ever move it forward: a Lua script compares the version
 * stored in Redis with the one being written and skips an older one, atomically. Two reactor turns (or a
 * redelivered one) may write the same entity in any order; Redis ends at the newest version either way.
 */
import type { Redis } from "../../runtime/index.ts";

/** Cached entities expire after a week without a write: Postgres has them all, Redis only the live ones. */
export const CACHE_TTL_SECONDS = 7 * 24 * 3600;

// KEYS[1]: the key; ARGV: JSON value, its version, TTL. A stored value that is not JSON is replaced.
const JSON_IF_NEWER = `
local current = redis.call('GET', KEYS[1])
if current then
  local ok, stored = pcall(cjson.decode, current)
  if ok and type(stored) == 'table' and tonumber(stored.version) and tonumber(stored.version) > tonumber(ARGV[2]) then
    return 0
  end
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[3])
return 1`;

// KEYS[1]: the hash; ARGV: version, TTL, then field, value pairs (which include the version). The hash is
// replaced whole, so no field of an older write lingers.
const HASH_IF_NEWER = `
local stored = tonumber(redis.call('HGET', KEYS[1], 'version'))
if stored and stored > tonumber(ARGV[1]) then
  return 0
end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], unpack(ARGV, 3))
redis.call('EXPIRE', KEYS[1], ARGV[2])
return 1`;

/**
 * SETs `key` to the JSON of `value` unless Redis holds a newer version; an equal version is written again
 * (same content, fresh TTL). Resolves to whether it wrote.
 *
 * @example
 * await writeJsonIfNewer(redis, `booking:${id}`, bookingState); // bookingState.version: number
 */
export async function writeJsonIfNewer<T extends { version: number }>(
  redis: Redis,
  key: string,
  value: T,
  ttlSeconds = CACHE_TTL_SECONDS,
): Promise<boolean> {
  return (await redis.eval(JSON_IF_NEWER, 1, key, JSON.stringify(value), value.version, ttlSeconds)) === 1;
}

/** Replaces the hash at `key` with `fields` (plus `version`) unless Redis holds a newer version. */
export async function writeHashIfNewer(
  redis: Redis,
  key: string,
  version: number,
  fields: Record<string, string | number>,
  ttlSeconds = CACHE_TTL_SECONDS,
): Promise<boolean> {
  const pairs = Object.entries({ ...fields, version }).flat();
  return (await redis.eval(HASH_IF_NEWER, 1, key, version, ttlSeconds, ...pairs)) === 1;
}
