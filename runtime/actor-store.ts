/**
 * An actor's durable side in Postgres: loading its state on activation, and committing a turn — the new state,
 * "this key handled this offset", the outbox rows and the timers — in one transaction that also checks the
 * partition's epoch (fence.ts) and refuses a message id it has already handled (the inbox).
 */
import type postgres from "postgres";
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

interface StateRow<S> {
  actor_key: string;
  state: S;
  version: string;
  last_partition: number | null;
  last_offset: string | null;
  parked: boolean;
}

function snapshotOf<S>(row: StateRow<S> | undefined, initial: () => S): ActorSnapshot<S> {
  if (!row) return { state: initial(), version: 0, lastPartition: null, lastOffset: null, parked: false };
  return {
    state: row.state,
    version: Number(row.version),
    lastPartition: row.last_partition,
    lastOffset: row.last_offset === null ? null : BigInt(row.last_offset),
    parked: row.parked,
  };
}

export async function loadActor<S>(
  sql: postgres.Sql,
  kind: string,
  key: string,
  initial: () => S,
): Promise<ActorSnapshot<S>> {
  const [row] = await sql<StateRow<S>[]>`
    select actor_key, state, version, last_partition, last_offset, parked_at is not null as parked
    from actor_state where kind = ${kind} and actor_key = ${key}`;
  return snapshotOf(row, initial);
}

/** Loads many actors of a kind in one query; keys without a row get their initial state. */
export async function loadActors<S>(
  sql: postgres.Sql,
  kind: string,
  keys: string[],
  initial: (key: string) => S,
): Promise<Map<string, ActorSnapshot<S>>> {
  const rows = await sql<StateRow<S>[]>`
    select actor_key, state, version, last_partition, last_offset, parked_at is not null as parked
    from actor_state where kind = ${kind} and actor_key = any(${keys}::text[])`;
  const byKey = new Map(rows.map((r) => [r.actor_key, r]));
  return new Map(keys.map((key) => [key, snapshotOf(byKey.get(key), () => initial(key))]));
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
export async function commitTurn<S>(sql: postgres.Sql, turn: TurnCommit<S>): Promise<number> {
  return sql.begin(async (tx) => {
    await checkLease(tx, turn.lease);
    if (turn.messageId) {
      const fresh = await tx`
        insert into inbox (consumer, event_id) values (${turn.kind}, ${turn.messageId})
        on conflict do nothing returning event_id`;
      if (fresh.length === 0) throw new DuplicateMessageError(turn.kind, turn.key, turn.messageId);
    }
    const version = turn.expectedVersion + 1;
    const parked = turn.parked === true;
    // Insert for a new actor, update for a known one, but only from the version we loaded (optimistic check).
    const written = await tx`
      insert into actor_state as a (kind, actor_key, state, version, last_partition, last_offset, parked_at, updated_at)
      values (${turn.kind}, ${turn.key}, ${JSON.stringify(turn.state)}::jsonb, ${version}, ${turn.partition},
        ${String(turn.offset)}, case when ${parked} then now() end, now())
      on conflict (kind, actor_key) do update set
        state = excluded.state, version = excluded.version, last_partition = excluded.last_partition,
        last_offset = excluded.last_offset, parked_at = excluded.parked_at, updated_at = excluded.updated_at
      where a.version = ${turn.expectedVersion}
      returning version`;
    if (written.length === 0) throw new StaleStateError(turn.kind, turn.key, turn.expectedVersion);
    await appendOutbox(tx, turn.outbox, turn.lease);
    await writeTimers(tx, turn);
    await turn.also?.(tx);
    return version;
  });
}

/** Sets or cancels the turn's durable timers, inside its transaction. */
export async function writeTimers(tx: postgres.TransactionSql, turn: TurnCommit<unknown>): Promise<void> {
  await writeTimersOf(tx, [turn]);
}

/**
 * The timers the turns set and cancelled, in two statements for all of them (at most one turn per key: a key has
 * one turn in flight). Within a turn the last write of a name wins (cancel then set leaves it set).
 */
export async function writeTimersOf(
  tx: postgres.TransactionSql,
  turns: TurnCommit<unknown>[],
): Promise<void> {
  const cancels: { kind: string; key: string; name: string }[] = [];
  const sets: { turn: TurnCommit<unknown>; name: string; set: NonNullable<TimerWrite["set"]> }[] = [];
  for (const turn of turns) {
    const last = new Map<string, TimerWrite>();
    for (const timer of turn.timers) last.set(timer.name, timer);
    for (const timer of last.values()) {
      if (timer.set) sets.push({ turn, name: timer.name, set: timer.set });
      else cancels.push({ kind: turn.kind, key: turn.key, name: timer.name });
    }
  }
  if (cancels.length > 0) {
    await tx`
      delete from actor_timer where (kind, actor_key, name) in (
        select * from unnest(${cancels.map((c) => c.kind)}::text[], ${cancels.map((c) => c.key)}::text[],
          ${cancels.map((c) => c.name)}::text[]))`;
  }
  if (sets.length > 0) {
    await tx`
      insert into actor_timer (kind, actor_key, name, mailbox, partition, fire_at, message_type, payload, correlation_id)
      select k, ak, n, mb, p::int, f::timestamptz, mt, pl::jsonb, c::uuid from unnest(
        ${sets.map((t) => t.turn.kind)}::text[], ${sets.map((t) => t.turn.key)}::text[], ${sets.map((t) => t.name)}::text[],
        ${sets.map((t) => t.turn.mailbox)}::text[], ${sets.map((t) => String(t.turn.partition))}::text[],
        ${sets.map((t) => t.set.fireAt.toISOString())}::text[], ${sets.map((t) => t.set.messageType)}::text[],
        ${sets.map((t) => JSON.stringify(t.set.payload))}::text[], ${sets.map((t) => t.set.correlationId)}::text[]
      ) as x(k, ak, n, mb, p, f, mt, pl, c)
      on conflict (kind, actor_key, name) do update set
        mailbox = excluded.mailbox, partition = excluded.partition, fire_at = excluded.fire_at,
        message_type = excluded.message_type, payload = excluded.payload, correlation_id = excluded.correlation_id`;
  }
}

/**
 * Parks an actor (an operator's hold): its next records are kept as parked dead letters, in order, until it is
 * unparked or its letters are replayed. The version is bumped so a host holding the actor in memory finds out on
 * its next commit (a stale version), reloads it and holds that record too. False when the actor does not exist
 * or is parked already.
 */
export async function parkActor(
  sql: postgres.Sql | postgres.TransactionSql,
  kind: string,
  key: string,
): Promise<boolean> {
  const rows = await sql`update actor_state set parked_at = now(), version = version + 1, updated_at = now()
    where kind = ${kind} and actor_key = ${key} and parked_at is null returning 1`;
  return rows.length > 0;
}

/**
 * Unparks an actor: records from now on are handled; those held meanwhile stay dead letters (replay or skip
 * them). A parked actor is re-read on each record, so no version bump is needed. False when it was not parked.
 */
export async function unparkActor(
  sql: postgres.Sql | postgres.TransactionSql,
  kind: string,
  key: string,
): Promise<boolean> {
  const rows = await sql`update actor_state set parked_at = null
    where kind = ${kind} and actor_key = ${key} and parked_at is not null returning 1`;
  return rows.length > 0;
}
