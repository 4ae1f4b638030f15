/**
 * The public door of `runtime/`: what `actors/`, `http/` and the entry point may import. The runtime speaks of
 * actors, keys, partitions, turns and effects; it knows nothing of bookings or repairs.
 */
export { createLogger, type Logger } from "./logger.ts";
export { type NatsConnection, openNats, pingNats } from "./nats.ts";
export { openRedis, pingRedis, type Redis } from "./redis.ts";
