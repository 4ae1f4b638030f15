/**
 * The analytics reactor: the dashboard's daily figures, counted once per event without a hot row on the event's
 * path. Each event inserts its increments into `daily_stat_delta` (keyed by event and metric: insert-only, so
 * batches of any number of hosts never wait for or deadlock on each other, and a frozen host holds nobody up);
 * a folder (`dailyStatFolder`, run by every process that runs reactors) moves deltas into `daily_stat` every
 * half second, in one statement ordered by day and metric (folders on several hosts take disjoint deltas and
 * wait, never deadlock, on the totals), then mirrors the new totals to Redis, kept only if higher than what Redis
 * has (counts only grow, so Redis converges). A day's figure is `daily_stat` plus its pending deltas
 * (`dailyFigures`). A mirror lost while Redis was away is made good when it connects: the recent days are
 * re-mirrored from Postgres.
 *
 * Days are the UTC day the event happened (event-day.ts), so a late event counts on its own day.
 */
import type postgres from "postgres";
import { defineReactor, type Logger, type ReactorDefinition, type Redis } from "../../runtime/index.ts";
import { eventDay } from "./event-day.ts";
import { type KnownEvent, knownEvent } from "./known-event.ts";
import type { ReactorDeps } from "./reactor-deps.ts";
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

/** Mirrors one figure unless Redis already holds a higher one (counts only grow). */
function writeIfHigher(redis: Redis, m: { key: string; field?: string; value: number }) {
  return m.field
    ? redis.eval(HSET_IF_HIGHER, 1, m.key, m.field, m.value)
    : redis.eval(SET_IF_HIGHER, 1, m.key, m.value);
}

/**
 * A day's figures: the folded totals plus the deltas not folded yet.
 *
 * @example
 * const today = await dailyFigures(sql, "2026-12-01"); // { bookings: 12, revenue: 154000, ... }
 */
export async function dailyFigures(sql: postgres.Sql, day: string): Promise<Record<string, number>> {
  const rows = await sql<{ metric: string; value: string }[]>`
    select metric, sum(value)::bigint as value from (
      select metric, value from daily_stat where day = ${day}
      union all select metric, value from daily_stat_delta where day = ${day}
    ) as f group by metric order by metric`;
  return Object.fromEntries(rows.map((r) => [r.metric, Number(r.value)]));
}

/** Moves up to `limit` deltas into the totals; returns the totals it changed (to mirror). */
export async function foldDailyStats(sql: postgres.Sql, limit = 5000) {
  return sql<{ day: string; metric: string; value: string }[]>`
    with moved as (
      delete from daily_stat_delta where (event_id, metric) in (
        select event_id, metric from daily_stat_delta limit ${limit} for update skip locked)
      returning day, metric, value)
    insert into daily_stat as d (day, metric, value)
    select day, metric, sum(value) from moved group by day, metric order by day, metric
    on conflict (day, metric) do update set value = d.value + excluded.value
    returning day, metric, value`;
}

/** Days a Redis (re)connection re-mirrors: a mirror lost to an outage is that old at most, for an open dashboard. */
const REMIRROR_DAYS = 8;

/**
 * Folds deltas into the totals and mirrors them to Redis, every `intervalMs`; and, whenever Redis connects,
 * re-mirrors the recent days' totals (a mirror write lost while it was away, best effort, is made good without
 * waiting for the figure's next change — a day that is over gets none).
 */
export function dailyStatFolder(deps: { sql: postgres.Sql; redis: Redis; log: Logger; intervalMs?: number }) {
  const log = deps.log.child({ reactor: "analytics" });
  const mirror = async (rows: { day: string; metric: string; value: string }[]) => {
    for (const row of rows) {
      const m = mirrorOf(row.metric, row.day);
      if (m) await bestEffort(log, m, () => writeIfHigher(deps.redis, { ...m, value: Number(row.value) }));
    }
  };
  let timer: Timer | undefined;
  let running: Promise<void> | undefined;
  let remirrorWanted = false;
  const pass = async () => {
    if (remirrorWanted) {
      remirrorWanted = false;
      const since = new Date(Date.now() - REMIRROR_DAYS * 86_400_000).toISOString().slice(0, 10);
      await mirror(await deps.sql`select day, metric, value from daily_stat where day >= ${since}`);
    }
    for (let moved = 1; moved > 0; ) {
      const rows = await foldDailyStats(deps.sql);
      moved = rows.length;
      await mirror(rows);
    }
  };
  const run = () => {
    running ??= pass()
      .catch((err: unknown) => log.warn({ err }, "folding the daily figures failed; next pass retries"))
      .finally(() => {
        running = undefined;
      });
    return running;
  };
  // Redis (re)connected: the next pass re-mirrors the recent days first (one may be running: it is not skipped).
  const onReady = () => {
    remirrorWanted = true;
  };
  return {
    start() {
      deps.redis.on("ready", onReady);
      timer ??= setInterval(run, deps.intervalMs ?? 500);
    },
    async stop() {
      clearInterval(timer);
      timer = undefined;
      deps.redis.off("ready", onReady);
      await running;
    },
    /** One pass now (tests). */
    foldNow: async () => {
      await running; // a pass under way may have started before the caller's deltas committed
      await run();
    },
  };
}

export function analyticsReactor(deps: ReactorDeps): ReactorDefinition {
  return defineReactor({
    name: "analytics",
    topics: [
      deps.topics.event("booking-events"),
      deps.topics.event("payment-events"),
      deps.topics.event("notification-events"),
    ],
    async handle(envelope, { sql }) {
      const event = knownEvent(envelope);
      if (!event) return;
      const figures = figuresOf(event);
      if (figures.length === 0) return;
      const day = eventDay(envelope);
      await sql`
        insert into daily_stat_delta (event_id, day, metric, value)
        select ${envelope.eventId}::uuid, ${day}, m, v::bigint
        from unnest(${figures.map((f) => f.metric)}::text[], ${figures.map((f) => String(f.by))}::text[]) as t(m, v)
        on conflict do nothing`;
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
