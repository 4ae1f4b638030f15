/**
 * The cache-sync reactor keeps Redis converging to Postgres: on any booking, repair or payment event it reads
 * the entity's current state from actor_state (in its transaction) and writes it to Redis, newer versions only
 * (newer-version.ts), so events handled late or twice never move the cache back. The Redis write is its whole
 * effect: while Redis is down its events wait (writeOrWait), and are handled once it is back, so the cache catches
 * up by itself after an outage (a paid booking gets no later event that would fix it).
 *
 *   booking:{bookingId}        JSON of the booking's state (every event carries its booking)
 *   repair:status:{repairId}   hash: status, progress, version, updatedAt (repair events)
 *   invoice:{invoiceId}        JSON of the invoice's state (payment events)
 */
import { defineReactor, type ReactorDefinition } from "../../runtime/index.ts";
import type { BookingState } from "../booking/booking.ts";
import { topicOf } from "../events.ts";
import type { InvoiceState } from "../invoice/invoice.ts";
import type { RepairState } from "../repair/repair.ts";
import { entityState } from "./entity-state.ts";
import { knownEvent } from "./known-event.ts";
import { writeHashIfNewer, writeJsonIfNewer } from "./newer-version.ts";
import type { ReactorDeps } from "./reactor-deps.ts";
import { writeOrWait } from "./redis-write.ts";

export function cacheSyncReactor(deps: ReactorDeps): ReactorDefinition {
  const { redis } = deps;
  return defineReactor({
    name: "cache-sync",
    topics: [
      deps.topics.event("booking-events"),
      deps.topics.event("repair-events"),
      deps.topics.event("payment-events"),
    ],
    async handle(envelope, { tx }) {
      const event = knownEvent(envelope);
      if (!event) return;
      const p = event.payload;
      const topic = topicOf(event.type);
      // An entity without a row yet has nothing to mirror; its own next event writes it.
      if (topic === "repair-events" && "repairId" in p) {
        const repair = await entityState<RepairState>(tx, "repair", p.repairId);
        if (repair) {
          const key = `repair:status:${p.repairId}`;
          await writeOrWait(() =>
            writeHashIfNewer(redis, key, repair.version, {
              status: repair.status,
              progress: repair.progress,
              updatedAt: repair.updatedAt ?? "",
            }),
          );
        }
      }
      if (topic === "payment-events" && "invoiceId" in p && p.invoiceId) {
        const invoice = await entityState<InvoiceState>(tx, "invoice", p.invoiceId);
        const key = `invoice:${p.invoiceId}`;
        if (invoice) {
          await writeOrWait(() => writeJsonIfNewer(redis, key, invoice));
        }
      }
      if ("bookingId" in p) {
        const booking = await entityState<BookingState>(tx, "booking", p.bookingId);
        const key = `booking:${p.bookingId}`;
        if (booking) {
          await writeOrWait(() => writeJsonIfNewer(redis, key, booking));
        }
      }
    },
  });
}
