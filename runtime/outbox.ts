/**
 * The transactional outbox: records a turn wants published are rows written in the turn's own transaction;
 * the relay (outbox-relay.ts) publishes them afterwards. A crash never loses one; at worst one is sent twice.
 */
import { schema } from "../db/index.ts";
import { type Envelope, encodeEnvelope } from "../topics/index.ts";
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

export async function appendOutbox(tx: Tx, records: OutboxRecord[]): Promise<void> {
  if (records.length === 0) return;
  await tx.insert(schema.outbox).values(
    records.map((r) => ({
      topic: r.topic,
      messageKey: r.key,
      headers: r.headers ?? {},
      value: typeof r.value === "string" ? r.value : null,
      rawValue: Buffer.isBuffer(r.value) ? r.value : null,
    })),
  );
}
