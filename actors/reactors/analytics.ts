/**
 * The analytics reactor: the dashboard's daily figures. Postgres `daily_stat` is the truth, incremented in the
 * reactor's transaction (so once per event); Redis mirrors it for the dashboard, after the commit, with the value
 * Postgres returned, kept only if higher than what Redis has, never an INCR: a retried turn writes the same value,
 * a late one a lower value that is ignored, and Redis converges.
 *
 * Days are the UTC day the event happened (event-day.ts), so a late event counts on its own day.
 */
import { sql } from "drizzle-orm";
import { schema } from "../../db/index.ts";
import { defineReactor, type ReactorContext, type ReactorDefinition } from "../../runtime/index.ts";
import { bestEffort } from "./best-effort.ts";
import { eventDay } from "./event-day.ts";
import { type KnownEvent, knownEvent } from "./known-event.ts";
import { type ReactorDeps, reactorLog } from "./reactor-deps.ts";

/** One figure an event moves, and where Redis mirrors it (a key, or a field of a hash), if anywhere. */
interface Figure {
  metric: string;
  by: number;
  mirror?: { key: (day: string) => string; field?: string };
}

/** The figures an event moves (none for events the dashboard does not count). */
export function figuresOf(event: KnownEvent): Figure[] {
  switch (event.type) {
    case "BOOKING_CREATED":
      return [{ metric: "bookings", by: 1, mirror: { key: (day) => `daily:bookings:${day}` } }];
    case "BOOKING_CANCELLED":
      return [{ metric: "cancellations", by: 1, mirror: { key: (day) => `daily:cancellations:${day}` } }];
    case "PAYMENT_COMPLETED":
      return [
        { metric: "revenue", by: event.payload.amount, mirror: { key: (day) => `daily:revenue:${day}` } },
        { metric: "payments", by: 1 },
      ];
    case "PAYMENT_FAILED":
      return [{ metric: "payment_failures", by: 1 }];
    case "NOTIFICATION_SENT": {
      // Notification effectiveness: how many went out per channel and per template.
      const { channel, template } = event.payload;
      return [
        {
          metric: `notifications.${channel}`,
          by: 1,
          mirror: { key: (day) => `daily:notifications:${day}`, field: channel },
        },
        { metric: `notifications.${template}`, by: 1 },
      ];
    }
    default:
      return [];
  }
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

export function analyticsReactor(deps: ReactorDeps): ReactorDefinition {
  const log = reactorLog(deps, "analytics");
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
      for (const { metric, by, mirror } of figures) {
        const value = await increment(tx, day, metric, by);
        if (mirror) mirrors.push({ key: mirror.key(day), field: mirror.field, value });
      }
      return {
        // After the commit, so the day's row is not held locked across a Redis round trip (every booking
        // updates it). Counts only grow, so "the higher value wins" keeps Redis converging to Postgres.
        afterCommit: async () => {
          for (const { key, field, value } of mirrors) {
            await bestEffort(log, { key, field, value }, () =>
              field
                ? deps.redis.eval(HSET_IF_HIGHER, 1, key, field, value)
                : deps.redis.eval(SET_IF_HIGHER, 1, key, value),
            );
          }
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
