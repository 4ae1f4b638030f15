/**
 * An actor's durable side in Postgres: loading its state on activation, and committing a turn — the new state,
 * "this key handled this offset", the outbox rows and the timers — in one transaction that also checks the
 * partition's epoch (fence.ts) and refuses a message id it has already handled (the inbox).
 */
import { and, eq, sql } from "drizzle-orm";
import { type Db, schema } from "../db/index.ts";
import { PitstopError } from "./errors.ts";
import { checkLease, type PartitionLease, type Tx } from "./fence.ts";
import { appendOutbox, type OutboxRecord } from "./outbox.ts";

export interface ActorSnapshot<S> {
  state: S;
  version: number;
  lastPartition: number | null;
  lastOffset: bigint | null;
  parked: boolean;
}

export async function loadActor<S>(
  db: Db,
  kind: string,
  key: string,
  initial: () => S,
): Promise<ActorSnapshot<S>> {
  const [row] = await db
    .select()
    .from(schema.actorState)
    .where(and(eq(schema.actorState.kind, kind), eq(schema.actorState.actorKey, key)));
  if (!row) return { state: initial(), version: 0, lastPartition: null, lastOffset: null, parked: false };
  return {
    state: row.state as S,
    version: row.version,
    lastPartition: row.lastPartition,
    lastOffset: row.lastOffset,
    parked: row.parkedAt !== null,
  };
}

/** The actor's row changed under us (another writer): reload and try again. */
export class StaleStateError extends PitstopError {
  override name = "StaleStateError";
  constructor(kind: string, key: string, expected: number) {
    super(`${kind}/${key}: state is no longer at version ${expected}`, true);
  }
}

/** This message id was already handled (a redelivery, or an outbox record sent twice). */
export class DuplicateMessageError extends PitstopError {
  override name = "DuplicateMessageError";
  constructor(kind: string, key: string, messageId: string) {
    super(`${kind}/${key}: message ${messageId} was already handled`, false);
  }
}

export interface TimerWrite {
  name: string;
  set?: { fireAt: Date; messageType: string; payload: Record<string, unknown>; correlationId: string };
}

export interface TurnCommit<S> {
  lease: PartitionLease;
  kind: string;
  key: string;
  mailbox: string;
  messageId: string | null;
  expectedVersion: number;
  state: S;
  partition: number;
  offset: bigint;
  parked?: boolean;
  outbox: OutboxRecord[];
  timers: TimerWrite[];
  /** Extra writes in the same transaction (dead letters). */
  also?: (tx: Tx) => Promise<void>;
}

/** Commits one turn atomically; returns the new version. */
export async function commitTurn<S>(db: Db, turn: TurnCommit<S>): Promise<number> {
  return db.transaction(async (tx) => {
    await checkLease(tx, turn.lease);
    if (turn.messageId) {
      const fresh = await tx
        .insert(schema.inbox)
        .values({ consumer: turn.kind, eventId: turn.messageId })
        .onConflictDoNothing()
        .returning({ id: schema.inbox.eventId });
      if (fresh.length === 0) throw new DuplicateMessageError(turn.kind, turn.key, turn.messageId);
    }
    const version = turn.expectedVersion + 1;
    const values = {
      kind: turn.kind,
      actorKey: turn.key,
      state: turn.state,
      version,
      lastPartition: turn.partition,
      lastOffset: turn.offset,
      parkedAt: turn.parked ? sql`now()` : null,
      updatedAt: sql`now()`,
    };
    const written = await tx
      .insert(schema.actorState)
      .values(values)
      .onConflictDoUpdate({
        target: [schema.actorState.kind, schema.actorState.actorKey],
        set: {
          state: values.state,
          version,
          lastPartition: values.lastPartition,
          lastOffset: values.lastOffset,
          parkedAt: values.parkedAt,
          updatedAt: values.updatedAt,
        },
        where: eq(schema.actorState.version, turn.expectedVersion),
      })
      .returning({ version: schema.actorState.version });
    if (written.length === 0) throw new StaleStateError(turn.kind, turn.key, turn.expectedVersion);
    await appendOutbox(tx, turn.outbox);
    for (const timer of turn.timers) {
      const where = and(
        eq(schema.actorTimer.kind, turn.kind),
        eq(schema.actorTimer.actorKey, turn.key),
        eq(schema.actorTimer.name, timer.name),
      );
      if (!timer.set) {
        await tx.delete(schema.actorTimer).where(where);
        continue;
      }
      const row = {
        kind: turn.kind,
        actorKey: turn.key,
        name: timer.name,
        mailbox: turn.mailbox,
        partition: turn.partition,
        fireAt: timer.set.fireAt,
        messageType: timer.set.messageType,
        payload: timer.set.payload,
        correlationId: timer.set.correlationId,
      };
      await tx
        .insert(schema.actorTimer)
        .values(row)
        .onConflictDoUpdate({
          target: [schema.actorTimer.kind, schema.actorTimer.actorKey, schema.actorTimer.name],
          set: {
            fireAt: row.fireAt,
            messageType: row.messageType,
            payload: row.payload,
            correlationId: row.correlationId,
            partition: row.partition,
          },
        });
    }
    await turn.also?.(tx);
    return version;
  });
}
