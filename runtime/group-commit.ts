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
import { DuplicateMessageError, StaleStateError, type TurnCommit, writeTimers } from "./actor-store.ts";
import { splitByLease } from "./fence.ts";
import { appendOutbox } from "./outbox.ts";
import { type BatchOptions, TransactionBatcher } from "./transaction-batch.ts";

/** One turn waiting in a batch (an object of its own, so the batch can tell its turns apart). */
interface Pending {
  turn: TurnCommit<unknown>;
}

export type GroupCommitOptions = BatchOptions;

export class GroupCommitter {
  private readonly batcher: TransactionBatcher<Pending, number>;

  constructor(sql: postgres.Sql, options: GroupCommitOptions) {
    this.batcher = new TransactionBatcher(sql, options, commitBatch);
  }

  get stats() {
    return this.batcher.stats;
  }

  /** Commits one turn (without `also` hooks) as part of the next batch; resolves to its new version. */
  commit<S>(turn: TurnCommit<S>): Promise<number> {
    return this.batcher.submit({ turn: turn as TurnCommit<unknown> });
  }
}

async function commitBatch(tx: postgres.TransactionSql, batch: Pending[], failures: Map<Pending, unknown>) {
  let live = batch;

  // 1. Fence: each distinct lease once, with a shared lock held to commit.
  const fence = await splitByLease(
    tx,
    live.map((p) => ({ lease: p.turn.lease, p })),
  );
  for (const [item, error] of fence.fenced) failures.set(item.p, error);
  live = fence.live.map((item) => item.p);

  // 2. Inbox: message ids not seen before.
  const withIds = live.filter((p) => p.turn.messageId !== null);
  if (withIds.length > 0) {
    const fresh = await tx<{ consumer: string; event_id: string }[]>`
      insert into inbox (consumer, event_id)
      select c, e::uuid from unnest(${withIds.map((p) => p.turn.kind)}::text[], ${withIds.map((p) => p.turn.messageId as string)}::text[]) as t(c, e)
      on conflict do nothing
      returning consumer, event_id`;
    const freshIds = new Set(fresh.map((r) => `${r.consumer}\u0000${r.event_id}`));
    live = live.filter((p) => {
      const { kind, key, messageId } = p.turn;
      if (messageId === null || freshIds.has(`${kind}\u0000${messageId}`)) return true;
      failures.set(p, new DuplicateMessageError(kind, key, messageId));
      return false;
    });
  }
  if (live.length === 0) return new Map<Pending, number>();

  // 3. State, from the version each turn loaded (optimistic check).
  // Arrays go as text and are cast in SQL: postgres.js types a JS array by guessing from its elements.
  const written = await tx<{ kind: string; actor_key: string }[]>`
    insert into actor_state as a (kind, actor_key, state, version, last_partition, last_offset, parked_at, updated_at)
    select k, ak, s::jsonb, v::bigint, p::int, o::bigint, case when pk = 't' then now() end, now()
    from unnest(
      ${live.map((p) => p.turn.kind)}::text[], ${live.map((p) => p.turn.key)}::text[],
      ${live.map((p) => JSON.stringify(p.turn.state))}::text[],
      ${live.map((p) => String(p.turn.expectedVersion + 1))}::text[],
      ${live.map((p) => String(p.turn.partition))}::text[], ${live.map((p) => String(p.turn.offset))}::text[],
      ${live.map((p) => (p.turn.parked === true ? "t" : "f"))}::text[]
    ) as t(k, ak, s, v, p, o, pk)
    on conflict (kind, actor_key) do update set
      state = excluded.state, version = excluded.version, last_partition = excluded.last_partition,
      last_offset = excluded.last_offset, parked_at = excluded.parked_at, updated_at = excluded.updated_at
    where a.version = excluded.version - 1
    returning kind, actor_key`;
  const done = new Set(written.map((r) => `${r.kind}\u0000${r.actor_key}`));
  const stale = live.filter((p) => !done.has(`${p.turn.kind}\u0000${p.turn.key}`));
  for (const p of stale)
    failures.set(p, new StaleStateError(p.turn.kind, p.turn.key, p.turn.expectedVersion));
  const staleWithIds = stale.filter((p) => p.turn.messageId !== null);
  if (staleWithIds.length > 0) {
    // Their inbox rows were written in step 2: undo them, so the retried turns are not taken for duplicates.
    await tx`
      delete from inbox where (consumer, event_id) in (
        select c, e::uuid from unnest(${staleWithIds.map((p) => p.turn.kind)}::text[], ${staleWithIds.map((p) => p.turn.messageId as string)}::text[]) as t(c, e))`;
  }
  live = live.filter((p) => done.has(`${p.turn.kind}\u0000${p.turn.key}`));

  // 4. Outbox rows, in turn order then record order, each under its turn's lease (raw bytes, rare here, take
  // the row-by-row path).
  const rows = live.flatMap((p) => p.turn.outbox.map((record) => ({ record, lease: p.turn.lease })));
  if (rows.some((r) => Buffer.isBuffer(r.record.value))) {
    for (const p of live) await appendOutbox(tx, p.turn.outbox, p.turn.lease);
  } else if (rows.length > 0) {
    await tx`
      insert into outbox (topic, message_key, headers, value, source_group, source_topic, source_partition, source_epoch)
      select t, k, h::jsonb, v, g, st, sp::int, se::bigint from unnest(
        ${rows.map((r) => r.record.topic)}::text[], ${rows.map((r) => r.record.key)}::text[],
        ${rows.map((r) => JSON.stringify(r.record.headers ?? {}))}::text[],
        ${rows.map((r) => r.record.value as string)}::text[],
        ${rows.map((r) => r.lease.groupId)}::text[], ${rows.map((r) => r.lease.topic)}::text[],
        ${rows.map((r) => String(r.lease.partition))}::text[], ${rows.map((r) => String(r.lease.epoch))}::text[]
      ) as x(t, k, h, v, g, st, sp, se)`;
  }

  // 5. Timers (rare: a statement each).
  for (const p of live) await writeTimers(tx, p.turn);
  return new Map(live.map((p) => [p, p.turn.expectedVersion + 1]));
}
