/**
 * The status reactor: real-time status for the customer's WebSocket. For every event about a booking (and, for
 * repair events, the repair) it reads the entity's current status from actor_state and publishes a frame on
 * NATS, `<prefix>.status.booking.<bookingId>` / `<prefix>.status.repair.<repairId>`, for the gateways to fan out.
 *
 * Publishing is at least once: NATS is not part of the transaction, so a turn retried after it published
 * publishes again. Frames carry the eventId; clients drop one they have seen.
 */
import { defineReactor, type ReactorDefinition, statusSubject } from "../../runtime/index.ts";
import type { BookingState } from "../booking/booking.ts";
import { topicOf } from "../events.ts";
import type { RepairState } from "../repair/repair.ts";
import { entityState } from "./entity-state.ts";
import { knownEvent } from "./known-event.ts";
import { type ReactorDeps, reactorLog } from "./reactor-deps.ts";

/** One status frame, as WebSocket subscribers receive it. */
export interface StatusFrame {
  type: "status";
  entity: "booking" | "repair";
  id: string;
  /** The event type that moved it. */
  event: string;
  eventId: string;
  /** When the event happened (ISO 8601). */
  at: string;
  /** The entity's status now (null when it has no state yet). */
  status: string | null;
  progress?: number;
  detail: Record<string, unknown>;
  /** The trace id of the event that moved it (tracing on, the event traced): the request's, for one it caused. */
  traceId?: string;
}

export function statusReactor(deps: ReactorDeps): ReactorDefinition {
  const log = reactorLog(deps, "status");
  return defineReactor({
    name: "status",
    topics: [
      deps.topics.event("booking-events"),
      deps.topics.event("repair-events"),
      deps.topics.event("payment-events"),
      deps.topics.event("compensation-events"),
    ],
    async handle(envelope, { tx, traceId }) {
      const nats = deps.nats;
      if (!nats) return; // no fabric to publish on (HTTP-less tools, some tests)
      const event = knownEvent(envelope);
      if (!event) return;
      const p = event.payload;
      const frame = (entity: StatusFrame["entity"], id: string, status: string | null): StatusFrame => ({
        type: "status",
        entity,
        id,
        event: envelope.eventType,
        eventId: envelope.eventId,
        at: envelope.occurredAt,
        status,
        detail: envelope.payload,
        ...(traceId ? { traceId } : {}),
      });
      const frames: StatusFrame[] = [];
      if ("bookingId" in p) {
        const booking = await entityState<BookingState>(tx, "booking", p.bookingId);
        frames.push(frame("booking", p.bookingId, booking?.status ?? null));
      }
      if (topicOf(event.type) === "repair-events" && "repairId" in p) {
        const repair = await entityState<RepairState>(tx, "repair", p.repairId);
        frames.push({ ...frame("repair", p.repairId, repair?.status ?? null), progress: repair?.progress });
      }
      for (const f of frames) {
        try {
          nats.publish(statusSubject(deps.natsPrefix, f.entity, f.id), JSON.stringify(f));
        } catch (err) {
          // Only a closed connection refuses (a reconnecting one buffers). A frame is a hint, not a record:
          // dead-lettering the event over it would help nobody, the next event's frame carries the status.
          log.warn({ err, entity: f.entity, id: f.id, eventId: f.eventId }, "status frame not published");
        }
      }
    },
  });
}
