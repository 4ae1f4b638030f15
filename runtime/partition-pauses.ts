/**
 * Operator pauses of partitions (`partition_pause`): what an operator writes there, and what every host reads.
 * A host looks every `intervalMs` and tells each of its consumers which of its partitions to hold: an owned one
 * stops dispatching at once, one taken later (a rebalance, a restart) starts held. The pause is a row, not a
 * host's memory, so it holds across rebalances until it is deleted. While Postgres is out of reach the last
 * answer stands.
 */
import type postgres from "postgres";
import type { Logger } from "./logger.ts";

export interface PausedPartition {
  groupId: string;
  topic: string;
  partition: number;
  pausedBy: string;
  reason: string | null;
  pausedAt: string;
}

/** Pauses a partition of a group (idempotent: a second pause keeps the first's who and when). Returns the pause. */
export async function pausePartition(
  sql: postgres.Sql | postgres.TransactionSql,
  target: { groupId: string; topic: string; partition: number },
  who: string,
  reason?: string,
): Promise<PausedPartition> {
  const [row] = await sql<PauseRow[]>`
    insert into partition_pause (group_id, topic, partition, paused_by, reason)
    values (${target.groupId}, ${target.topic}, ${target.partition}, ${who}, ${reason ?? null})
    on conflict (group_id, topic, partition) do update set group_id = excluded.group_id
    returning group_id, topic, partition, paused_by, reason, paused_at`;
  return toPause(row as PauseRow);
}

/** Resumes a paused partition; false when it was not paused. */
export async function resumePartition(
  sql: postgres.Sql | postgres.TransactionSql,
  target: { groupId: string; topic: string; partition: number },
): Promise<boolean> {
  const deleted = await sql`delete from partition_pause
    where group_id = ${target.groupId} and topic = ${target.topic} and partition = ${target.partition}
    returning 1`;
  return deleted.length > 0;
}

/** The paused partitions of these groups. */
export async function pausedPartitions(
  sql: postgres.Sql,
  groupIds: readonly string[],
): Promise<PausedPartition[]> {
  if (groupIds.length === 0) return [];
  const rows = await sql<PauseRow[]>`
    select group_id, topic, partition, paused_by, reason, paused_at from partition_pause
    where group_id in ${sql(groupIds)} order by group_id, topic, partition`;
  return rows.map(toPause);
}

export interface PauseWatcherOptions {
  sql: postgres.Sql;
  log: Logger;
  intervalMs: number;
  /** Each group this host is a member of, and what to tell it. */
  groups: ReadonlyMap<string, { hold(partitions: readonly { topic: string; partition: number }[]): void }>;
}

/** A host's view of the pauses: reads them every `intervalMs` and tells its consumers. */
export class PauseWatcher {
  private timer: Timer | undefined;
  private stopped = false;
  private last = "";

  constructor(private readonly options: PauseWatcherOptions) {}

  /** Reads the pauses every interval from now on (call `refresh` first for an answer before joining). */
  start(): void {
    this.stopped = false;
    const tick = async () => {
      await this.refresh();
      if (!this.stopped) this.timer = setTimeout(tick, this.options.intervalMs);
    };
    this.timer = setTimeout(tick, this.options.intervalMs);
  }

  /** Reads the pauses now and applies them. */
  async refresh(): Promise<void> {
    const { groups } = this.options;
    try {
      const pauses = await pausedPartitions(this.options.sql, [...groups.keys()]);
      const seen = JSON.stringify(pauses.map((p) => [p.groupId, p.topic, p.partition]));
      for (const [groupId, consumer] of groups) {
        consumer.hold(pauses.filter((p) => p.groupId === groupId));
      }
      if (seen !== this.last) {
        this.options.log.info({ paused: pauses.map(describe) }, "operator pauses changed");
        this.last = seen;
      }
    } catch (error) {
      this.options.log.debug({ err: error }, "reading partition pauses failed; keeping the last ones");
    }
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }
}

interface PauseRow {
  group_id: string;
  topic: string;
  partition: number;
  paused_by: string;
  reason: string | null;
  paused_at: Date | string;
}

function toPause(row: PauseRow): PausedPartition {
  return {
    groupId: row.group_id,
    topic: row.topic,
    partition: row.partition,
    pausedBy: row.paused_by,
    reason: row.reason,
    pausedAt: new Date(row.paused_at).toISOString(),
  };
}

const describe = (p: PausedPartition) => `${p.groupId} ${p.topic}/${p.partition}`;
