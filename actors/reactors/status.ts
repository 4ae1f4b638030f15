/**
 * The status reactor: real-time status for the customer's WebSocket. For every event about a booking (and, for
 * repair events, the repair) it publishes a frame on NATS, `<prefix>.status.booking.<bookingId>` /
 * `<prefix>.status.repair.<repairId>`, for the gateways to fan out.
 *
 * A frame reports what its own event said: the status (and progress) the entity reached in the turn that emitted
 * it, carried by the event itself (the envelope's `source`, from the actor's `eventState`). Never the entity's
 * state read when the frame is made: by then later turns may have committed, and a subscriber would see a step
 * twice and miss the one before. An event another entity emitted, on the booking's feed: the booking's status as
 * the turn that asked for it left it, when the booking asked (`causeSource`: REPAIR_STARTED follows the booking's
 * START, sent as it went IN_SERVICE); otherwise null (a technician's step, a payment: the booking took no part),
 * and `source` says whose step it was.
 *
 * Publishing is at least once: NATS is not part of the transaction, so a turn retried after it published
 * publishes again. Frames carry the eventId; clients drop one they have seen.
 */
import { defineReactor, type ReactorDefinition, statusSubject } from "../../runtime/index.ts";
import type { EventSource } from "../../topics/index.ts";
import { topicOf } from "../events.ts";
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
  /**
   * The status the entity reached in the turn that emitted this event, or in its turn that asked for it; null when
   * it took part in neither.
   */
  status: string | null;
  /** A repair's progress as of this event (its own events). */
  progress?: number;
  /** The entity's version as of this event (its own events): frames of one entity come in this order. */
  version?: number;
  /** Whose turn emitted the event, at which version, and the status (and progress) it reached. */
  source?: { kind: string; id: string; version: number; status: string | null; progress?: number };
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
    async handle(envelope, { traceId }) {
      const nats = deps.nats;
      if (!nats) return; // no fabric to publish on (HTTP-less tools, some tests)
      const event = knownEvent(envelope);
      if (!event) return;
      const p = event.payload;
      const said = told(envelope.source);
      const asked = told(envelope.causeSource);
      const frame = (entity: StatusFrame["entity"], id: string): StatusFrame => {
        // The entity's own event: what its turn reached; or, the entity asked for it: what that turn reached.
        const own = [said, asked].find((s) => s?.kind === entity && s.id === id);
        return {
          type: "status",
          entity,
          id,
          event: envelope.eventType,
          eventId: envelope.eventId,
          at: envelope.occurredAt,
          status: own?.status ?? null,
          ...(own?.progress !== undefined ? { progress: own.progress } : {}),
          ...(own ? { version: own.version } : {}),
          ...(said ? { source: said } : {}),
          detail: envelope.payload,
          ...(traceId ? { traceId } : {}),
        };
      };
      const frames: StatusFrame[] = [];
      if ("bookingId" in p) frames.push(frame("booking", p.bookingId));
      if (topicOf(event.type) === "repair-events" && "repairId" in p)
        frames.push(frame("repair", p.repairId));
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

/** What a source said of its actor, as a frame shows it. */
function told(source: EventSource | undefined) {
  return (
    source && {
      kind: source.kind,
      id: source.key,
      version: source.version,
      status: typeof source.state.status === "string" ? source.state.status : null,
      ...(typeof source.state.progress === "number" ? { progress: source.state.progress } : {}),
    }
  );
}
