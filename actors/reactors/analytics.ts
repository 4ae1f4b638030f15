/**
 * The analytics reactor: the dashboard's daily figures. Postgres `daily_stat` is the truth, incremented in the
 * reactor's transaction (so once per event); Redis mirrors it for the dashboard with a SET of the value Postgres
 * returned, never an INCR: a retried or rolled-back turn writes the same or a later value, and Redis converges.
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
    async handle(envelope, { tx }) {
      const event = knownEvent(envelope);
      if (!event) return;
      const day = eventDay(envelope);
      for (const { metric, by, mirror } of figuresOf(event)) {
        const value = await increment(tx, day, metric, by);
        if (!mirror) continue;
        const key = mirror.key(day);
        const field = mirror.field;
        // The row stays locked until commit, so a concurrent turn's (higher) value is SET after this one.
        await bestEffort(log, { key, field, value }, () =>
          field ? deps.redis.hset(key, field, value) : deps.redis.set(key, value),
        );
      }
    },
  });
}
