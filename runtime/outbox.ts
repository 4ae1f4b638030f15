/**
 * The transactional outbox: records a turn wants published are rows written in the turn's own transaction;
 * the relay (outbox-relay.ts) publishes them afterwards. A crash never loses one; at worst one is sent twice.
 */
import { type Envelope, encodeEnvelope, newEnvelope } from "../topics/index.ts";
import type { Tx } from "./fence.ts";

export interface OutboxRecord {
  topic: string;
  key: string;
  headers?: Record<string, string>;
  /** JSON text, or raw bytes for records kept exactly (dead letters, replays). */
  value: string | Buffer | null;
}

/** An outbox record carrying a validated envelope. */
export function envelopeRecord(
  topic: string,
  key: string,
  envelope: Envelope,
  headers: Record<string, string> = {},
) {
  return { topic, key, headers, value: encodeEnvelope(envelope).toString("utf8") } satisfies OutboxRecord;
}

/** The outbox record of an event or command that `cause` led to: same correlation, caused by it. */
export function causedRecord(
  topic: string,
  key: string,
  type: string,
  payload: Record<string, unknown>,
  cause: Envelope,
  now: Date,
  headers: Record<string, string> = {},
): OutboxRecord {
  const envelope = newEnvelope({
    eventType: type,
    entityId: key,
    payload,
    correlationId: cause.correlationId,
    causationId: cause.eventId,
    occurredAt: now,
  });
  return envelopeRecord(topic, key, envelope, headers);
}

export async function appendOutbox(tx: Tx, records: OutboxRecord[]): Promise<void> {
  for (const r of records) {
    const text = typeof r.value === "string" ? r.value : null;
    const raw = Buffer.isBuffer(r.value) ? r.value : null;
    await tx`insert into outbox (topic, message_key, headers, value, raw_value)
      values (${r.topic}, ${r.key}, ${JSON.stringify(r.headers ?? {})}::jsonb, ${text}, ${raw})`;
  }
}
