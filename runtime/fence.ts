/**
 * Partition ownership epochs: the fence against zombie hosts. A host that takes a partition bumps its epoch in
 * Postgres; every turn's transaction checks (with a shared row lock) that the epoch it carries is still the
 * current one. A host that was paused and lost the partition therefore cannot commit stale work: its
 * transaction sees the new epoch and rolls back with FencedError.
 *
 * Kafka's own commit would also refuse such a host; Postgres writes would not, hence this.
 */
import { and, eq, sql } from "drizzle-orm";
import type postgres from "postgres";
import { type Db, schema } from "../db/index.ts";
import { FencedError } from "./errors.ts";
import type { Logger } from "./logger.ts";

export interface PartitionLease {
  groupId: string;
  topic: string;
  partition: number;
  epoch: number;
}

/**
 * A turn's transaction. The hot path (fence, inbox, state, outbox) uses postgres.js tagged templates: prepared
 * statements, measured 4x faster per turn than the same statements through drizzle's query builder (which does
 * not prepare them) — see docs/runtime.md. Reactors also get a drizzle handle on the same transaction.
 */
export type Tx = postgres.TransactionSql;

/**
 * How long a previous owner's transaction may hold the lease row while a take waits before it counts as stuck
 * (its turns take milliseconds; at 2 s a frozen host's partitions were served again 15.3 s after the freeze, over
 * the session timeout plus 5 s): a SIGSTOPped host's transaction held the row until the host woke, 15 s on (its
 * session `active`, waiting for the rest of a statement, where idle_in_transaction_session_timeout does not apply).
 */
const BLOCKED_TAKE_MS = 1000;
/** A take waits at most this long for the row in all (then its caller tries again later, with backoff). */
const TAKE_WAIT_MS = 10_000;

/** The application_name of a host's sessions (Postgres keeps 63 bytes): how a take finds a stuck owner's. */
export function sessionName(hostId: string): string {
  return `pitstop:${hostId}`.slice(0, 63);
}

/**
 * Takes the partition for `owner`: bumps its epoch. The update waits for the previous owner's turns in flight
 * (they share-lock the row until they commit). Every BLOCKED_TAKE_MS that it is still waiting, the sessions that
 * block it — and only those: Postgres' own pg_blocking_pids of the waiting session — are ended if they are the
 * recorded owner's and their transaction has been open longer than that (the group gave the partition to us, so
 * they could only be fenced; a group commit's other turns in them are retried). Never this host's own sessions: a
 * take of a partition this host held (after its worker failed) waits for its own turns to end. Ending sessions needs
 * the same role or pg_signal_backend; without it, the take gives up after TAKE_WAIT_MS and is tried again later.
 */
export async function acquireLease(
  db: Db,
  lease: Omit<PartitionLease, "epoch">,
  owner: string,
  log?: Logger,
): Promise<PartitionLease> {
  let waiter: number | undefined;
  let checking = false;
  const watch = setInterval(() => {
    if (waiter === undefined || checking) return;
    checking = true;
    void endStuckBlockers(db, lease, waiter, owner, log).finally(() => {
      checking = false;
    });
  }, BLOCKED_TAKE_MS);
  try {
    const [row] = await db.$client.begin(async (tx) => {
      const [me] = await tx<{ pid: number }[]>`
        select pg_backend_pid() as pid, set_config('lock_timeout', ${`${TAKE_WAIT_MS}ms`}, true)`;
      waiter = me?.pid;
      return tx<{ epoch: string }[]>`
        insert into partition_owner (group_id, topic, partition, epoch, owner)
        values (${lease.groupId}, ${lease.topic}, ${lease.partition}, 1, ${owner})
        on conflict (group_id, topic, partition) do update
          set epoch = partition_owner.epoch + 1, owner = excluded.owner, updated_at = now(), released_at = null
        returning epoch`;
    });
    if (!row) throw new Error("acquireLease returned no row");
    return { ...lease, epoch: Number(row.epoch) };
  } finally {
    clearInterval(watch);
  }
}

/**
 * Ends the sessions blocking the take's waiting session `waiter` that belong to the partition's recorded owner (if
 * that is not the taker itself) and whose transaction has been open past BLOCKED_TAKE_MS.
 */
async function endStuckBlockers(
  db: Db,
  lease: Omit<PartitionLease, "epoch">,
  waiter: number,
  taker: string,
  log?: Logger,
): Promise<void> {
  const ended = await db.$client<{ pid: number; ended: boolean }[]>`
    select a.pid, pg_terminate_backend(a.pid) as ended
    from partition_owner o
    join pg_stat_activity a on a.application_name = left('pitstop:' || o.owner, 63)
    where o.group_id = ${lease.groupId} and o.topic = ${lease.topic} and o.partition = ${lease.partition}
      and o.owner <> ${taker}
      and a.pid = any(pg_blocking_pids(${waiter}))
      and a.xact_start < now() - make_interval(secs => ${BLOCKED_TAKE_MS / 1000})`.catch((error: unknown) => {
    log?.warn({ err: error, ...lease }, "cannot end a stuck owner's sessions; the take waits");
    return [];
  });
  if (ended.length > 0)
    log?.warn({ ...lease, ended }, "ended the stuck previous owner's sessions holding a partition's lease");
}

/** The partition_owner row of a partition. */
function ownerRow(lease: Omit<PartitionLease, "epoch">) {
  return and(
    eq(schema.partitionOwner.groupId, lease.groupId),
    eq(schema.partitionOwner.topic, lease.topic),
    eq(schema.partitionOwner.partition, lease.partition),
  );
}

/** The current epoch of a partition, if anyone ever took it. */
export async function currentEpoch(
  db: Db,
  lease: Omit<PartitionLease, "epoch">,
): Promise<number | undefined> {
  const [row] = await db
    .select({ epoch: schema.partitionOwner.epoch })
    .from(schema.partitionOwner)
    .where(ownerRow(lease));
  return row?.epoch;
}

/**
 * Gives a partition up after a rebalance took it away, if its epoch is still ours (nobody took it since): marks
 * the row released. A member that took a partition under an assignment already superseded (its join was slow)
 * fenced the partition's rightful owner; the release tells that owner it may take it back now.
 */
export async function releaseLease(db: Db, lease: PartitionLease): Promise<boolean> {
  const rows = await db
    .update(schema.partitionOwner)
    .set({ releasedAt: sql`now()` })
    .where(and(ownerRow(lease), eq(schema.partitionOwner.epoch, lease.epoch)))
    .returning({ epoch: schema.partitionOwner.epoch });
  return rows.length > 0;
}

/** Whether the partition's current owner released it (see releaseLease). */
export async function leaseReleased(db: Db, lease: Omit<PartitionLease, "epoch">): Promise<boolean> {
  const [row] = await db
    .select({ releasedAt: schema.partitionOwner.releasedAt })
    .from(schema.partitionOwner)
    .where(ownerRow(lease));
  return row?.releasedAt != null;
}

/**
 * How long a statement of a turn's or a batch's transaction waits for a row lock before it fails (55P03,
 * retryable). A row held by a frozen host's transaction (a hot row like a part's stock) is held until Postgres ends
 * that session; live transactions queued behind it would meanwhile hold their partitions' lease rows (share
 * locks), so the takes of the frozen host's partitions waited behind them (the freeze fault: served again only
 * when the frozen host woke, 15-17 s). Failing the wait and retrying later lets them go. Set by the fence
 * statement, each transaction's first, so it costs no round trip.
 */
export const TURN_LOCK_TIMEOUT_MS = 2000;

/**
 * Inside a turn's transaction: throws FencedError unless `lease` is still current. Only a current lease's row is
 * share-locked (till commit): a stale turn never holds up the take of a partition it no longer owns.
 */
export async function checkLease(tx: Tx, lease: PartitionLease): Promise<void> {
  const rows = await tx<{ epoch: string }[]>`
    select o.epoch from (select set_config('lock_timeout', ${`${TURN_LOCK_TIMEOUT_MS}ms`}, true)) as limited,
      partition_owner o
    where o.group_id = ${lease.groupId} and o.topic = ${lease.topic} and o.partition = ${lease.partition}
      and o.epoch = ${lease.epoch}
    for share of o`;
  if (rows.length === 0) throw new FencedError(lease.topic, lease.partition, lease.epoch, undefined);
}

/**
 * Inside a batch's transaction: the items whose lease is still current (share-locked till commit); the others are
 * returned with their FencedError. Each distinct lease is checked once, all in one statement.
 */
export async function splitByLease<T extends { lease: PartitionLease }>(
  tx: Tx,
  items: T[],
): Promise<{ live: T[]; fenced: [T, FencedError][] }> {
  const id = (l: { groupId: string; topic: string; partition: number }) =>
    `${l.groupId}\u0000${l.topic}\u0000${l.partition}`;
  const leases = [...new Map(items.map((item) => [id(item.lease), item.lease])).values()];
  const epochs = new Map<string, number>();
  if (leases.length > 0) {
    // Every lease in one statement: a batch spans many partitions, and a statement each was a round trip each.
    // Only rows at the epoch a lease carries are locked (see checkLease); the lock wait is bounded likewise.
    const rows = await tx<{ group_id: string; topic: string; partition: number; epoch: string }[]>`
      select o.group_id, o.topic, o.partition, o.epoch
      from (select set_config('lock_timeout', ${`${TURN_LOCK_TIMEOUT_MS}ms`}, true)) as limited, partition_owner o
      where (o.group_id, o.topic, o.partition, o.epoch) in (
        select * from unnest(${leases.map((l) => l.groupId)}::text[], ${leases.map((l) => l.topic)}::text[],
          ${leases.map((l) => String(l.partition))}::int[], ${leases.map((l) => String(l.epoch))}::bigint[]))
      for share of o`;
    for (const row of rows)
      epochs.set(
        id({ groupId: row.group_id, topic: row.topic, partition: row.partition }),
        Number(row.epoch),
      );
  }
  const live: T[] = [];
  const fenced: [T, FencedError][] = [];
  for (const item of items) {
    const current = epochs.get(id(item.lease));
    if (current === item.lease.epoch) live.push(item);
    else
      fenced.push([item, new FencedError(item.lease.topic, item.lease.partition, item.lease.epoch, current)]);
  }
  return { live, fenced };
}
