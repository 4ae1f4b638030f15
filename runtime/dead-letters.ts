/**
 * Dead letters: records a consumer could not handle (exhausted retries, a non-retryable failure, a record that
 * does not decode) or held because their key is parked. Each is a row in `dead_letter` (for listing and replay)
 * and a record on the source topic's `.dlt` topic (through the outbox), with headers that say where it came from
 * and why. Replaying puts the original record back on its source topic, in the original order per key.
 */
import { and, asc, desc, eq } from "drizzle-orm";
import type postgres from "postgres";
import { type Db, schema } from "../db/index.ts";
import { deadLetterTopic } from "../topics/index.ts";
import type { ErrorInfo } from "./errors.ts";
import type { PartitionLease, Tx } from "./fence.ts";
import { appendOutbox } from "./outbox.ts";
import type { InboundRecord } from "./partition-worker.ts";
import { storableHeaders, storableText } from "./storable-text.ts";

export interface DeadLetterInput {
  consumer: string;
  /** The lease of the partition the record came from (its owner publishes the `.dlt` record). */
  lease: PartitionLease;
  record: InboundRecord;
  error: ErrorInfo;
  attempts: number;
  firstFailureAt: Date;
  lastFailureAt: Date;
  host: string;
  status: "dead" | "parked";
}

export const DLT_HEADERS = {
  topic: "dlt-original-topic",
  partition: "dlt-original-partition",
  offset: "dlt-original-offset",
  key: "dlt-original-key",
  errorClass: "dlt-error-class",
  errorCode: "dlt-error-code",
  errorMessage: "dlt-error-message",
  retryable: "dlt-retryable",
  attempts: "dlt-attempts",
  firstFailure: "dlt-first-failure-at",
  lastFailure: "dlt-last-failure-at",
  consumer: "dlt-consumer",
  host: "dlt-host",
  status: "dlt-status",
} as const;

export const REPLAY_HEADER = "pitstop-replay-of";

/**
 * Inside a transaction: records the dead letter and queues its `.dlt` record. Idempotent per source offset:
 * returns false when this record was already dead-lettered (a redelivery).
 */
export async function writeDeadLetter(tx: Tx, input: DeadLetterInput): Promise<boolean> {
  const { record } = input;
  // The row that records a failure must not fail itself: the key, headers and message may hold what Postgres
  // cannot store (the value is kept as raw bytes, exactly).
  const key = record.key === null ? null : storableText(record.key);
  const headers = storableHeaders(record.headers);
  const error = { ...input.error, message: storableText(input.error.message).slice(0, 2000) };
  const code = error.code ? storableText(error.code) : null;
  const inserted = await tx`
    insert into dead_letter (consumer, source_topic, source_partition, source_offset, message_key, value, headers,
      error_class, error_code, error_message, retryable, attempts, first_failure_at, last_failure_at, host, status)
    values (${input.consumer}, ${record.topic}, ${record.partition}, ${String(record.offset)}, ${key},
      ${record.value}, ${JSON.stringify(headers)}::jsonb, ${storableText(error.errorClass)}, ${code}, ${error.message},
      ${error.retryable}, ${input.attempts}, ${input.firstFailureAt.toISOString()}, ${input.lastFailureAt.toISOString()}, ${input.host},
      ${input.status})
    on conflict do nothing
    returning id`;
  if (inserted.length === 0) return false; // already dead-lettered before a crash: the .dlt record is queued too
  await appendOutbox(
    tx,
    [
      {
        topic: deadLetterTopic(record.topic),
        key: key ?? "",
        value: record.value,
        headers: {
          ...headers,
          [DLT_HEADERS.topic]: record.topic,
          [DLT_HEADERS.partition]: String(record.partition),
          [DLT_HEADERS.offset]: String(record.offset),
          [DLT_HEADERS.key]: key ?? "",
          [DLT_HEADERS.errorClass]: storableText(error.errorClass),
          ...(code ? { [DLT_HEADERS.errorCode]: code } : {}),
          [DLT_HEADERS.errorMessage]: error.message,
          [DLT_HEADERS.retryable]: String(error.retryable),
          [DLT_HEADERS.attempts]: String(input.attempts),
          [DLT_HEADERS.firstFailure]: input.firstFailureAt.toISOString(),
          [DLT_HEADERS.lastFailure]: input.lastFailureAt.toISOString(),
          [DLT_HEADERS.consumer]: input.consumer,
          [DLT_HEADERS.host]: input.host,
          [DLT_HEADERS.status]: input.status,
        },
      },
    ],
    input.lease,
  );
  return true;
}

export type DeadLetter = typeof schema.deadLetter.$inferSelect;

export interface DeadLetterFilter {
  consumer?: string;
  /** The topic the records came from. */
  topic?: string;
  key?: string;
  status?: "dead" | "parked" | "replayed" | "skipped";
  limit?: number;
  /** Newest first (the latest page) instead of oldest first. */
  newestFirst?: boolean;
}

/** Dead letters, oldest first (or newest first). */
export async function listDeadLetters(db: Db, filter: DeadLetterFilter = {}): Promise<DeadLetter[]> {
  const conditions = [
    filter.consumer ? eq(schema.deadLetter.consumer, filter.consumer) : undefined,
    filter.topic ? eq(schema.deadLetter.sourceTopic, filter.topic) : undefined,
    filter.key !== undefined ? eq(schema.deadLetter.messageKey, filter.key) : undefined,
    filter.status ? eq(schema.deadLetter.status, filter.status) : undefined,
  ].filter((c) => c !== undefined);
  return db
    .select()
    .from(schema.deadLetter)
    .where(conditions.length ? and(...conditions) : undefined)
    .orderBy(filter.newestFirst ? desc(schema.deadLetter.id) : asc(schema.deadLetter.id))
    .limit(filter.limit ?? 100);
}

export interface ReplayRequest {
  /** Replay these dead letters (any status but replayed). */
  ids?: number[];
  /** Or every waiting dead letter of one key of one consumer, in order, unparking the key. */
  consumer?: string;
  key?: string;
}

/**
 * Puts dead letters back on their source topics (through the outbox, in id order) and marks them replayed.
 * Replaying by key also unparks that actor, in the same transaction, so the replayed records are handled.
 * Returns the ids replayed.
 */
export async function replayDeadLetters(
  sql: postgres.Sql | postgres.TransactionSql,
  request: ReplayRequest,
): Promise<number[]> {
  const byKey = request.consumer !== undefined && request.key !== undefined;
  if (!request.ids?.length && !byKey) throw new Error("replay needs ids, or a consumer and a key");
  // Inside the caller's transaction when given one (an audited operation), else in its own.
  const inTransaction = <T>(work: (tx: postgres.TransactionSql) => Promise<T>): Promise<T> =>
    "begin" in sql ? (sql.begin(work) as Promise<T>) : work(sql);
  return inTransaction(async (tx) => {
    const rows = request.ids?.length
      ? await tx<ReplayRow[]>`
          select id, source_topic, message_key, value, headers from dead_letter
          where id in ${tx(request.ids)} and status in ('dead', 'parked') order by id for update`
      : await tx<ReplayRow[]>`
          select id, source_topic, message_key, value, headers from dead_letter
          where consumer = ${request.consumer as string} and message_key = ${request.key as string}
            and status in ('dead', 'parked')
          order by id for update`;
    if (byKey) {
      await tx`update actor_state set parked_at = null
        where kind = ${request.consumer as string} and actor_key = ${request.key as string} and parked_at is not null`;
    }
    await appendOutbox(
      tx,
      rows.map((row) => ({
        topic: row.source_topic,
        key: row.message_key ?? "",
        value: row.value,
        headers: { ...row.headers, [REPLAY_HEADER]: String(row.id) },
      })),
    );
    if (rows.length > 0) {
      await tx`update dead_letter set status = 'replayed', replayed_at = now() where id in ${tx(rows.map((r) => r.id))}`;
    }
    return rows.map((r) => Number(r.id));
  });
}

interface ReplayRow {
  id: string;
  source_topic: string;
  message_key: string | null;
  value: Buffer | null;
  headers: Record<string, string>;
}

/**
 * Discards dead letters that are still waiting (dead or parked): they are never replayed, and stay, with who
 * skipped them, when and why, for audit. Returns the ids skipped (ids already replayed or skipped are left).
 */
export async function skipDeadLetters(
  sql: postgres.Sql | postgres.TransactionSql,
  ids: readonly number[],
  who: string,
  reason: string,
): Promise<number[]> {
  if (ids.length === 0) return [];
  const rows = await sql<{ id: string }[]>`
    update dead_letter set status = 'skipped', skipped_at = now(), skipped_by = ${who}, skip_reason = ${reason}
    where id in ${sql(ids as number[])} and status in ('dead', 'parked')
    returning id`;
  return rows.map((r) => Number(r.id)).sort((a, b) => a - b);
}
