/**
 * The transactional outbox: records a turn wants published are rows written in the turn's own transaction,
 * stamped with the partition lease the turn ran under; the owner of that partition publishes them afterwards
 * (outbox-relay.ts). A crash never loses one; at worst one is sent twice.
 */
import { type Envelope, type EventSource, encodeEnvelope, newEnvelope } from "../topics/index.ts";
import type { PartitionLease, Tx } from "./fence.ts";

/** NOTIFY channel of rows written outside any turn (no source lease): the unsourced relay listens on it. */
export const OUTBOX_CHANNEL = "pitstop_outbox";

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

/**
 * The outbox record of an event or command that `cause` led to: same correlation, caused by it; `source` names
 * the actor whose turn emitted it and what it said of its new state, and the cause's own source goes along as
 * `causeSource` (who asked for that turn, as it was then).
 */
export function causedRecord(
  topic: string,
  key: string,
  type: string,
  payload: Record<string, unknown>,
  cause: Envelope,
  now: Date,
  headers: Record<string, string> = {},
  source?: EventSource,
): OutboxRecord {
  const envelope = newEnvelope({
    eventType: type,
    entityId: key,
    payload,
    correlationId: cause.correlationId,
    causationId: cause.eventId,
    occurredAt: now,
    source,
    causeSource: source ? cause.source : undefined,
  });
  return envelopeRecord(topic, key, envelope, headers);
}

/**
 * Inserts records of several sources (each turn's or event's own lease) in one statement, in the order given.
 * Rows carrying raw bytes (dead letters, replays: rare) take the row-by-row path.
 */
export async function appendOutboxRows(
  tx: Tx,
  rows: { record: OutboxRecord; lease: PartitionLease }[],
): Promise<void> {
  if (rows.length === 0) return;
  if (rows.some((r) => typeof r.record.value !== "string")) {
    for (const r of rows) await appendOutbox(tx, [r.record], r.lease);
    return;
  }
  await tx`
    insert into outbox (topic, message_key, headers, value, source_group, source_topic, source_partition, source_epoch)
    select t, k, h::jsonb, v, g, st, sp::int, se::bigint from unnest(
      ${rows.map((r) => r.record.topic)}::text[], ${rows.map((r) => r.record.key)}::text[],
      ${rows.map((r) => JSON.stringify(r.record.headers ?? {}))}::text[],
      ${rows.map((r) => r.record.value as string)}::text[],
      ${rows.map((r) => r.lease.groupId)}::text[], ${rows.map((r) => r.lease.topic)}::text[],
      ${rows.map((r) => String(r.lease.partition))}::text[], ${rows.map((r) => String(r.lease.epoch))}::text[]
    ) with ordinality as x(t, k, h, v, g, st, sp, se, n)
    order by n`;
}

/**
 * Inserts the records in the transaction, under `source`: the lease the turn runs under (its partition's owner
 * publishes them). Without one (an operator's replay) the unsourced relay is told by NOTIFY at commit.
 */
export async function appendOutbox(tx: Tx, records: OutboxRecord[], source?: PartitionLease): Promise<void> {
  for (const r of records) {
    const text = typeof r.value === "string" ? r.value : null;
    const raw = Buffer.isBuffer(r.value) ? r.value : null;
    await tx`insert into outbox (topic, message_key, headers, value, raw_value, source_group, source_topic,
        source_partition, source_epoch)
      values (${r.topic}, ${r.key}, ${JSON.stringify(r.headers ?? {})}::jsonb, ${text}, ${raw},
        ${source?.groupId ?? null}, ${source?.topic ?? null}, ${source?.partition ?? null}, ${source?.epoch ?? null})`;
  }
  if (!source && records.length > 0) await tx`select pg_notify(${OUTBOX_CHANNEL}, '')`;
}
