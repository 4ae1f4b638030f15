/**
 * The analytics reactor: the dashboard's daily figures. Postgres `daily_stat` is the truth, incremented in the
 * reactor's transaction (so once per event); Redis mirrors it for the dashboard, after the commit, with the value
 * Postgres returned, kept only if higher than what Redis has, never an INCR: a retried turn writes the same value,
 * a late one a lower value that is ignored, and Redis converges. A mirror write lost while Redis was away is made
 * good when it connects again: the recent days are re-mirrored from Postgres.
 *
 * Days are the UTC day the event happened (event-day.ts), so a late event counts on its own day.
 */
import { sql } from "drizzle-orm";
import type postgres from "postgres";
import { schema } from "../../db/index.ts";
import {
  defineReactor,
  type Logger,
  type ReactorContext,
  type ReactorDefinition,
  type Redis,
} from "../../runtime/index.ts";
import { eventDay } from "./event-day.ts";
import { type KnownEvent, knownEvent } from "./known-event.ts";
import { type ReactorDeps, reactorLog } from "./reactor-deps.ts";
import { bestEffort } from "./redis-write.ts";

/** One figure an event moves. */
interface Figure {
  metric: string;
  by: number;
}

/** The figures an event moves (none for events the dashboard does not count). */
export function figuresOf(event: KnownEvent): Figure[] {
  switch (event.type) {
    case "BOOKING_CREATED":
      return [{ metric: "bookings", by: 1 }];
    case "BOOKING_CANCELLED":
      return [{ metric: "cancellations", by: 1 }];
    case "PAYMENT_COMPLETED":
      return [
        { metric: "revenue", by: event.payload.amount },
        { metric: "payments", by: 1 },
      ];
    case "PAYMENT_FAILED":
      return [{ metric: "payment_failures", by: 1 }];
    case "NOTIFICATION_SENT": {
      // Notification effectiveness: how many went out per channel and per template.
      const { channel, template } = event.payload;
      return [
        { metric: `notifications.${channel}`, by: 1 },
        { metric: `notifications.${template}`, by: 1 },
      ];
    }
    default:
      return [];
  }
}

/** Where Redis mirrors a day's metric (the seed's `daily:bookings:{date}`; a hash per channel), if it does. */
export function mirrorOf(metric: string, day: string): { key: string; field?: string } | undefined {
  if (metric === "bookings" || metric === "cancellations" || metric === "revenue") {
    return { key: `daily:${metric}:${day}` };
  }
  const channel = /^notifications\.(email|sms|push)$/.exec(metric)?.[1];
  return channel ? { key: `daily:notifications:${day}`, field: channel } : undefined;
}

/** Adds `by` to the day's metric; resolves to the new value. */
async function increment(tx: ReactorContext["tx"], day: string, metric: string, by: number): Promise<number> {
  const { dailyStat } = schema;
  const [row] = await tx
    .insert(dailyStat)
    .values({ day, metric, value: by })
    .onConflictDoUpdate({
      target: [dailyStat.day, dailyStat.metric],
      set: { value: sql`${dailyStat.value} + excluded.value` },
    })
    .returning({ value: dailyStat.value });
  return Number(row?.value);
}

/** Mirrors one figure unless Redis already holds a higher one (counts only grow). */
function writeIfHigher(redis: Redis, m: { key: string; field?: string; value: number }) {
  return m.field
    ? redis.eval(HSET_IF_HIGHER, 1, m.key, m.field, m.value)
    : redis.eval(SET_IF_HIGHER, 1, m.key, m.value);
}

/** Days a Redis (re)connection re-mirrors: a mirror lost to an outage is that old at most, for an open dashboard. */
const REMIRROR_DAYS = 8;

/**
 * Copies the recent days' figures from Postgres to Redis, higher values winning: run whenever Redis connects, so
 * a mirror write lost while it was away (best effort, after the commit) is made good without waiting for the
 * figure's next event — a day that is over gets none.
 */
async function remirror(sql: postgres.Sql, redis: Redis, log: Logger, now = new Date()): Promise<void> {
  const since = new Date(now.getTime() - REMIRROR_DAYS * 86_400_000).toISOString().slice(0, 10);
  const rows = await sql<{ day: string; metric: string; value: string }[]>`
    select day, metric, value from daily_stat where day >= ${since}`;
  for (const row of rows) {
    const mirror = mirrorOf(row.metric, row.day);
    if (mirror)
      await bestEffort(log, mirror, () => writeIfHigher(redis, { ...mirror, value: Number(row.value) }));
  }
}

export function analyticsReactor(deps: ReactorDeps): ReactorDefinition {
  const log = reactorLog(deps, "analytics");
  const { sql: pool } = deps;
  if (pool) {
    let remirroring = false; // one pass at a time
    deps.redis.on("ready", () => {
      if (remirroring) return;
      remirroring = true;
      remirror(pool, deps.redis, log)
        .catch((err: unknown) => log.warn({ err }, "re-mirroring the daily figures failed"))
        .finally(() => {
          remirroring = false;
        });
    });
  }
  return defineReactor({
    name: "analytics",
    topics: [
      deps.topics.event("booking-events"),
      deps.topics.event("payment-events"),
      deps.topics.event("notification-events"),
    ],
    async handle(envelope, { tx, sql: raw }) {
      const event = knownEvent(envelope);
      if (!event) return;
      const figures = figuresOf(event);
      if (figures.length === 0) return;
      const day = eventDay(envelope);
      // Every event of a day moves the same few rows, from batches of several hosts, each batch in its own
      // order: two batches locking "bookings" and "cancellations" in opposite orders deadlock (40P01, seen with
      // two hosts). One lock per day, taken first and held to the batch's commit, orders them all.
      await raw`select pg_advisory_xact_lock(hashtextextended(${`pitstop.daily_stat.${day}`}, 0))`;
      const mirrors: { key: string; field?: string; value: number }[] = [];
      for (const { metric, by } of figures) {
        const value = await increment(tx, day, metric, by);
        const mirror = mirrorOf(metric, day);
        if (mirror) mirrors.push({ ...mirror, value });
      }
      return {
        // After the commit, so the day's row is not held locked across a Redis round trip (every booking
        // updates it). Counts only grow, so "the higher value wins" keeps Redis converging to Postgres.
        afterCommit: async () => {
          for (const m of mirrors) await bestEffort(log, m, () => writeIfHigher(deps.redis, m));
        },
      };
    },
  });
}

const SET_IF_HIGHER = `
local current = tonumber(redis.call('GET', KEYS[1]))
if current == nil or tonumber(ARGV[1]) > current then redis.call('SET', KEYS[1], ARGV[1]) return 1 end
return 0`;

const HSET_IF_HIGHER = `
local current = tonumber(redis.call('HGET', KEYS[1], ARGV[1]))
if current == nil or tonumber(ARGV[2]) > current then redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) return 1 end
return 0`;
