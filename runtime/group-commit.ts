/**
 * Group commit: the turns that finish while a transaction is in flight are committed together in the next one,
 * with a fixed number of statements per batch instead of per turn. One Postgres commit per turn caps a host at
 * the commit rate (docs/runtime.md); batching is the usual way past it.
 *
 * Each turn keeps its own outcome: a fenced lease, a message id already handled, or a state changed under us
 * fails that turn alone (and undoes its inbox row); the others in the batch commit. A batch whose transaction
 * fails fails all its turns, with the error (retryable: the turns are run again).
 *
 * A key never has two turns in flight (its next turn waits for this commit), so rows of one key never meet in
 * one batch, and outbox rows of one key are inserted in turn order: per-key order holds for the relay.
 */
import type postgres from "postgres";
import { DuplicateMessageError, StaleStateError, type TimerWrite, type TurnCommit } from "./actor-store.ts";
import { FencedError } from "./errors.ts";
import type { CommittedRow } from "./outbox-relay.ts";
import { type BatchOptions, TransactionBatcher } from "./transaction-batch.ts";

/** One turn waiting in a batch (an object of its own, so the batch can tell its turns apart). */
interface Pending {
  turn: TurnCommit<unknown>;
}

export interface GroupCommitOptions extends BatchOptions {
  /**
   * Handed the outbox rows of each batch as soon as it committed, with their ids, in commit order (the
   * partitions' publisher sends them without reading them back).
   */
  onCommitted?: (rows: CommittedRow[]) => void;
}

export class GroupCommitter {
  private readonly batcher: TransactionBatcher<Pending, number>;

  constructor(sql: postgres.Sql, options: GroupCommitOptions) {
    const onCommitted = options.onCommitted ?? (() => {});
    this.batcher = new TransactionBatcher(sql, { ...options, singleStatement: true }, (tx, batch, failures) =>
      commitBatch(tx, batch, failures, onCommitted),
    );
  }

  get stats() {
    return this.batcher.stats;
  }

  /** Commits one turn (without `also` hooks) as part of the next batch; resolves to its new version. */
  commit<S>(turn: TurnCommit<S>): Promise<number> {
    return this.batcher.submit({ turn: turn as TurnCommit<unknown> });
  }
}

/**
 * The whole batch in one statement: no BEGIN, no COMMIT, one round trip (a statement is atomic on its own, and
 * every step below is a CTE of it). Seven statements a batch were most of a busy host's Postgres round trips.
 *
 * 1. fence: the batch's leases still current, share-locked to the end of the statement (a stale turn locks no
 *    lease row, so it cannot hold up a take); a turn whose epoch is not current is fenced;
 * 2. inbox: a turn whose message id is already in the inbox is a duplicate;
 * 3. state, from the version each turn loaded (optimistic check): a row at another version makes the turn stale;
 * 4. for the turns written: their inbox rows, outbox rows (in turn order, then record order, each under its turn's
 *    lease) and timers (the last write of a name in a turn wins: cancel then set leaves it set).
 *
 * Arrays go as text and are cast in SQL: postgres.js types a JS array by guessing from its elements.
 */
async function commitBatch(
  tx: postgres.TransactionSql,
  batch: Pending[],
  failures: Map<Pending, unknown>,
  onCommitted: (rows: CommittedRow[]) => void,
) {
  const turns = batch.map((p) => p.turn);
  const n = (i: number) => String(i + 1); // ordinality of the turn in the statement's input
  const outbox = turns.flatMap((t, i) => t.outbox.map((record) => ({ i, record })));
  for (const { record } of outbox) {
    if (typeof record.value !== "string")
      throw new Error("group commit takes outbox records with JSON text values");
  }
  const cancels: { i: number; name: string }[] = [];
  const sets: { i: number; name: string; set: NonNullable<TimerWrite["set"]> }[] = [];
  for (const [i, turn] of turns.entries()) {
    const last = new Map<string, TimerWrite>();
    for (const timer of turn.timers) last.set(timer.name, timer);
    for (const timer of last.values()) {
      if (timer.set) sets.push({ i, name: timer.name, set: timer.set });
      else cancels.push({ i, name: timer.name });
    }
  }
  const rows = await tx<
    {
      n: string;
      fence_epoch: string | null;
      current: boolean;
      seen: boolean;
      written: boolean;
      outbox_ids: string[];
    }[]
  >`
    with input as (
      select * from unnest(
        ${turns.map((t) => t.kind)}::text[], ${turns.map((t) => t.key)}::text[],
        ${turns.map((t) => t.messageId)}::text[], ${turns.map((t) => JSON.stringify(t.state))}::text[],
        ${turns.map((t) => String(t.expectedVersion + 1))}::text[],
        ${turns.map((t) => String(t.partition))}::text[], ${turns.map((t) => String(t.offset))}::text[],
        ${turns.map((t) => (t.parked === true ? "t" : "f"))}::text[], ${turns.map((t) => t.mailbox)}::text[],
        ${turns.map((t) => t.lease.groupId)}::text[], ${turns.map((t) => t.lease.topic)}::text[],
        ${turns.map((t) => String(t.lease.partition))}::text[], ${turns.map((t) => String(t.lease.epoch))}::text[]
      ) with ordinality as t(kind, actor_key, message_id, state, version, part, off, parked, mailbox, lg, lt, lp, le, n)
    ),
    fence as (
      select group_id, topic, partition, epoch from partition_owner
      where (group_id, topic, partition, epoch) in (select distinct lg, lt, lp::int, le::bigint from input)
      for share
    ),
    checked as (
      select i.*, f.epoch as fence_epoch, coalesce(f.epoch = i.le::bigint, false) as current,
        (i.message_id is not null and exists (
          select 1 from inbox x where x.consumer = i.kind and x.event_id = i.message_id::uuid)) as seen
      from input i left join fence f on f.group_id = i.lg and f.topic = i.lt and f.partition = i.lp::int
    ),
    written as (
      insert into actor_state as a (kind, actor_key, state, version, last_partition, last_offset, parked_at, updated_at)
      select kind, actor_key, state::jsonb, version::bigint, part::int, off::bigint,
        case when parked = 't' then now() end, now()
      from checked where current and not seen
      on conflict (kind, actor_key) do update set
        state = excluded.state, version = excluded.version, last_partition = excluded.last_partition,
        last_offset = excluded.last_offset, parked_at = excluded.parked_at, updated_at = excluded.updated_at
      where a.version = excluded.version - 1
      returning kind, actor_key
    ),
    done as (select c.* from checked c join written w on w.kind = c.kind and w.actor_key = c.actor_key),
    inboxed as (
      insert into inbox (consumer, event_id) select kind, message_id::uuid from done where message_id is not null
    ),
    outboxed as (
      insert into outbox (topic, message_key, headers, value, source_group, source_topic, source_partition, source_epoch)
      select o.topic, o.message_key, o.headers::jsonb, o.value, d.lg, d.lt, d.lp::int, d.le::bigint
      from unnest(
        ${outbox.map((o) => n(o.i))}::text[], ${outbox.map((o) => o.record.topic)}::text[],
        ${outbox.map((o) => o.record.key)}::text[],
        ${outbox.map((o) => JSON.stringify(o.record.headers ?? {}))}::text[],
        ${outbox.map((o) => o.record.value as string)}::text[]
      ) with ordinality as o(turn, topic, message_key, headers, value, m)
      join done d on d.n = o.turn::bigint
      order by o.m
      returning id
    ),
    cancelled as (
      delete from actor_timer x using done d,
        unnest(${cancels.map((c) => n(c.i))}::text[], ${cancels.map((c) => c.name)}::text[]) as c(turn, name)
      where d.n = c.turn::bigint and x.kind = d.kind and x.actor_key = d.actor_key and x.name = c.name
    ),
    scheduled as (
      insert into actor_timer (kind, actor_key, name, mailbox, partition, fire_at, message_type, payload, correlation_id)
      select d.kind, d.actor_key, s.name, d.mailbox, d.part::int, s.fire_at::timestamptz, s.message_type,
        s.payload::jsonb, s.correlation_id::uuid
      from unnest(
        ${sets.map((t) => n(t.i))}::text[], ${sets.map((t) => t.name)}::text[],
        ${sets.map((t) => t.set.fireAt.toISOString())}::text[], ${sets.map((t) => t.set.messageType)}::text[],
        ${sets.map((t) => JSON.stringify(t.set.payload))}::text[], ${sets.map((t) => t.set.correlationId)}::text[]
      ) as s(turn, name, fire_at, message_type, payload, correlation_id)
      join done d on d.n = s.turn::bigint
      on conflict (kind, actor_key, name) do update set
        mailbox = excluded.mailbox, partition = excluded.partition, fire_at = excluded.fire_at,
        message_type = excluded.message_type, payload = excluded.payload, correlation_id = excluded.correlation_id
    )
    select n::text, fence_epoch::text, current, seen, exists (select 1 from done d where d.n = checked.n) as written,
      (select coalesce(array_agg(id::text order by id), '{}') from outboxed) as outbox_ids
    from checked`;
  const byN = new Map(rows.map((r) => [r.n, r]));
  const versions = new Map<Pending, number>();
  for (const [i, p] of batch.entries()) {
    const row = byN.get(n(i));
    const { lease, kind, key, messageId, expectedVersion } = p.turn;
    if (!row?.current) {
      const current = row?.fence_epoch == null ? undefined : Number(row.fence_epoch);
      failures.set(p, new FencedError(lease.topic, lease.partition, lease.epoch, current));
    } else if (row.seen) {
      failures.set(p, new DuplicateMessageError(kind, key, messageId as string));
    } else if (!row.written) {
      failures.set(p, new StaleStateError(kind, key, expectedVersion));
    } else {
      versions.set(p, expectedVersion + 1);
    }
  }
  // The outbox rows of the written turns, in turn order then record order: the order their ids were taken in.
  const ids = [...(rows[0]?.outbox_ids ?? [])].sort((a, b) => (BigInt(a) < BigInt(b) ? -1 : 1));
  const committed: CommittedRow[] = [];
  for (const p of batch) {
    if (!versions.has(p)) continue;
    for (const record of p.turn.outbox) {
      const id = ids[committed.length];
      if (id === undefined) break;
      committed.push({
        id,
        topic: record.topic,
        key: record.key,
        headers: record.headers ?? {},
        value: record.value as string,
        lease: p.turn.lease,
      });
    }
  }
  if (committed.length !== ids.length) throw new Error("outbox ids do not match the turns' records");
  onCommitted(committed);
  return versions;
}
