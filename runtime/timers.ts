/**
 * Durable timers: set or cancelled by a turn (in its transaction, actor-store.ts), stored in `actor_timer`, and
 * fired by the host that owns the key's mailbox partition: in one transaction that checks the partition's epoch,
 * the due timer becomes an outbox record to the actor's own mailbox and its row is deleted. The actor then
 * receives it as an ordinary message, in order with everything else in its mailbox; a restart loses nothing.
 */
import type postgres from "postgres";
import { newEnvelope } from "../topics/index.ts";
import { checkLease, type PartitionLease } from "./fence.ts";
import type { Logger } from "./logger.ts";
import { appendOutbox, envelopeRecord } from "./outbox.ts";

interface DueTimer {
  actor_key: string;
  name: string;
  mailbox: string;
  message_type: string;
  payload: Record<string, unknown>;
  correlation_id: string;
}

/** Fires the due timers of one kind in one owned partition; returns how many fired. */
export async function fireDueTimers(
  sql: postgres.Sql,
  kind: string,
  lease: PartitionLease,
  now: Date,
  limit = 200,
) {
  return sql.begin(async (tx) => {
    await checkLease(tx, lease);
    const due = await tx<DueTimer[]>`
      delete from actor_timer
      where (kind, actor_key, name) in (
        select kind, actor_key, name from actor_timer
        where kind = ${kind} and partition = ${lease.partition} and fire_at <= ${now.toISOString()}
        order by fire_at limit ${limit} for update skip locked)
      returning actor_key, name, mailbox, message_type, payload, correlation_id`;
    await appendOutbox(
      tx,
      due.map((t) =>
        envelopeRecord(
          t.mailbox,
          t.actor_key,
          newEnvelope({
            eventType: t.message_type,
            entityId: t.actor_key,
            payload: t.payload,
            correlationId: t.correlation_id,
            occurredAt: now,
          }),
          { "pitstop-timer": t.name },
        ),
      ),
      lease,
    );
    return due.length;
  });
}

export interface TimerPollerOptions {
  sql: postgres.Sql;
  log: Logger;
  clock: () => Date;
  intervalMs: number;
  /** The kinds with their owned mailbox partitions' leases, asked afresh at every poll. */
  owned: () => { kind: string; leases: PartitionLease[] }[];
  /** Timers of the partition fired: their messages are outbox rows under its lease. */
  fired: (lease: PartitionLease) => void;
}

export class TimerPoller {
  private timer: Timer | undefined;
  private running: Promise<void> | undefined;
  readonly stats = { fired: 0, errors: 0 };

  constructor(private readonly options: TimerPollerOptions) {}

  start(): void {
    this.timer ??= setInterval(() => {
      this.running ??= this.poll().finally(() => {
        this.running = undefined;
      });
    }, this.options.intervalMs);
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.running;
  }

  private async poll(): Promise<void> {
    const now = this.options.clock();
    const owned = this.options.owned().filter((o) => o.leases.length > 0);
    if (owned.length === 0) return;
    // One read for the whole host: which of its partitions have a timer due. Only those get a firing transaction
    // (an idle host used to open one per owned partition of every kind, every tick).
    let due: Set<string>;
    try {
      const rows = await this.options.sql<{ kind: string; partition: number }[]>`
        select distinct kind, partition from actor_timer
        where kind in ${this.options.sql(owned.map((o) => o.kind))} and fire_at <= ${now.toISOString()}`;
      due = new Set(rows.map((r) => `${r.kind}\u0000${r.partition}`));
    } catch (error) {
      this.stats.errors++;
      this.options.log.debug({ err: error }, "timer poll failed");
      return;
    }
    for (const { kind, leases } of owned) {
      for (const lease of leases) {
        if (!due.has(`${kind}\u0000${lease.partition}`)) continue;
        try {
          const fired = await fireDueTimers(this.options.sql, kind, lease, now);
          if (fired > 0) {
            this.stats.fired += fired;
            this.options.fired(lease);
          }
        } catch (error) {
          // Fenced (the partition moved) or a database hiccup: the new owner, or the next poll, fires them.
          this.stats.errors++;
          this.options.log.debug({ err: error, kind, partition: lease.partition }, "timer poll failed");
        }
      }
    }
  }
}
