/**
 * An envelope read as one of the car service's events: its type narrowed to a known one and its payload checked
 * against that type's schema, so a reactor can `switch (event.type)` and use the payload's fields typed.
 */
import { TerminalError } from "../../runtime/index.ts";
import type { Envelope } from "../../topics/index.ts";
import { EVENTS, type EventPayload, type EventType, isEvent } from "../events.ts";

export type KnownEvent = { [E in EventType]: { type: E; payload: EventPayload<E> } }[EventType];

const KNOWN_TYPES = new Set<string>(Object.values(EVENTS).flatMap((types) => Object.keys(types)));

/**
 * The envelope's event, or undefined for a type the car service does not know (a newer producer's: ignored).
 * A known type whose payload is off its schema cannot get better by retrying: TerminalError, so it is
 * dead-lettered.
 *
 * @example
 * const event = knownEvent(envelope);
 * if (event?.type === "BOOKING_CREATED") count(event.payload.bookingId);
 */
export function knownEvent(envelope: Envelope): KnownEvent | undefined {
  const type = envelope.eventType;
  if (!KNOWN_TYPES.has(type)) return undefined;
  if (!isEvent(type as EventType, envelope.payload)) {
    throw new TerminalError(`${type} ${envelope.eventId}: payload does not match the ${type} schema`);
  }
  return { type, payload: envelope.payload } as KnownEvent;
}
