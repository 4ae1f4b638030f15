/** The calendar day (UTC) an event happened on: daily figures are bucketed by it, not by when it was handled. */
import type { Envelope } from "../../topics/index.ts";

/** "YYYY-MM-DD" of the envelope's occurredAt, in UTC (an occurredAt with an offset is converted first). */
export function eventDay(envelope: Pick<Envelope, "occurredAt">): string {
  return new Date(envelope.occurredAt).toISOString().slice(0, 10);
}
