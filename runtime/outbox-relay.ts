/**
 * Publishes outbox rows to Kafka with an idempotent producer (acks=all, one request in flight), in id order.
 *
 * Who publishes what — no process is on every event's path (guarantee 12):
 * - Rows written by a turn carry the partition lease they were written under (outbox.ts). A relay given the
 *   host's `leases` publishes the rows of the partitions the host owns now: its own turns' rows, woken by its
 *   own commits (no poll on the hot path), and on taking a partition whatever its lost owner left unpublished.
 *   A frozen or dead host stalls only its own partitions, and only until they are taken over.
 * - Rows written outside any turn (an operator's replay) have no source: the relay without `leases` publishes
 *   them, one host at a time (a Postgres advisory lock; another takes over when its session ends), woken by
 *   LISTEN/NOTIFY. It also deletes old published rows and inbox ids.
 *
 * - Never skips a row: each row is marked published itself (`published_at`); there is no "last id" high-water
 *   mark, so a row whose id was taken early but committed late is still found (ids are taken at insert and
 *   become visible at commit, out of order).
 * - Per-key order: rows of one key are written by one actor's sequential turns under one partition's leases,
 *   so they commit in id order, and the partition's owner publishes each topic's rows in id order. A new owner
 *   starts only after the old one can no longer commit (the epoch fence), so it sees every row the old one wrote;
 *   if the old one is still sending, a row goes out twice, never a later row before an earlier one.
 * - A topic that cannot be published to (deleted, unauthorised) is held back with backoff; others keep flowing.
 * - A crash between publishing and marking means a row is sent again: consumers dedupe by eventId.
 */
import type { Kafka } from "kafkajs";
import postgres from "postgres";
import { connectionOptions } from "../db/index.ts";
import type { PartitionLease } from "./fence.ts";
import type { Logger } from "./logger.ts";
import { OUTBOX_CHANNEL } from "./outbox.ts";
import { ReplaceableProducer } from "./producer.ts";

export interface OutboxRelayOptions {
  kafka: Kafka;
  databaseUrl: string;
  log: Logger;
  /**
   * The leases of the partitions this host owns now, asked afresh at every pass: their rows are published.
   * Absent: the rows written outside any turn, by one relay at a time, with housekeeping.
   */
  leases?: () => PartitionLease[];
  batchSize?: number;
  /** How often to look for rows when nothing woke the relay (a safety net: writers wake it themselves). */
  pollIntervalMs?: number;
  /** Published outbox rows are deleted after this long (default 1 hour). */
  keepPublishedMs?: number;
  /**
   * Inbox rows (handled message ids) are deleted after this long (default 8 days): longer than the topics'
   * retention (7 days), so a record redelivered from Kafka always still finds its id.
   */
  keepInboxMs?: number;
  /** A statement of the relay's own session not answered within this is given up and the session replaced. */
  statementTimeoutMs?: number;
}

const RELAY_LOCK = 7_150_002;
/** Longer than any statement of the relay takes on a working session (they are small, indexed reads and marks). */
const STATEMENT_TIMEOUT_MS = 10_000;

export class OutboxRelay {
  private sql: postgres.Sql;
  /** Since when every pass has failed (undefined while passes succeed). */
  private failingSince: number | undefined;
  private readonly producer: ReplaceableProducer;
  private running = false;
  private loop: Promise<void> | undefined;
  private wake: (() => void) | undefined;
  private pending = false;
  /** Topics whose last publish failed, and when to try them again: one bad topic must not stall the others. */
  private readonly blocked = new Map<string, { until: number; failures: number }>();
  /** Topics with a send in flight (at most one each). */
  private readonly sending = new Map<string, Promise<void>>();
  private lastHousekeeping = 0;
  readonly stats = { published: 0, batches: 0, leader: false, errors: 0, deleted: 0, reopened: 0 };

  /** Whether `topic`'s rows are held back now because its last send failed. */
  heldBack(topic: string): boolean {
    return this.blocked.has(topic);
  }

  constructor(private readonly options: OutboxRelayOptions) {
    this.sql = this.openSession();
    // Few retries here: a topic that keeps failing is held back and tried again later (see `blocked`), so a
    // broker failover or a missing topic costs seconds, not the client's default ~30 s per attempt.
    this.producer = new ReplaceableProducer(
      options.kafka,
      {
        idempotent: true,
        maxInFlightRequests: 1,
        retry: { retries: 3, initialRetryTime: 200, maxRetryTime: 1000 },
      },
      options.log,
    );
  }

  /** One dedicated session: the advisory lock lives as long as it does, and turns never wait for the relay. */
  private openSession(): postgres.Sql {
    return postgres(
      this.options.databaseUrl,
      connectionOptions({
        max: 1,
        applicationName: this.options.leases ? "pitstop-publisher" : "pitstop-relay",
      }),
    );
  }

  /**
   * A session failing for this long is replaced by a new one. After a Postgres outage a publisher's session was
   * seen failing every statement with CONNECT_TIMEOUT for minutes while the host's pool had long reconnected
   * (rows sent again and again, never marked): whatever state postgres.js was left in, a new session is not in it.
   */
  private static readonly REOPEN_AFTER_MS = 15_000;

  /**
   * A statement on the relay's session, given up after `statementTimeoutMs` (default STATEMENT_TIMEOUT_MS). After a Postgres cut a publisher's
   * session was seen never settling its statements (no answer, no error; a select and a mark pipelined on its one
   * connection when it broke): the loop waited for ever while rows piled up. Given up, it counts as a failure,
   * and a session failing long enough is replaced (reopen).
   */
  private async bounded<T>(statement: Promise<T>): Promise<T> {
    const ms = this.options.statementTimeoutMs ?? STATEMENT_TIMEOUT_MS;
    let timer: Timer | undefined;
    try {
      return await Promise.race([
        statement,
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () => reject(new SessionHung(`outbox session did not answer within ${ms} ms`)),
            ms,
          );
        }),
      ]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** A statement on `session` failed; `session` is the one it ran on (another may have replaced it since). */
  private sessionFailed(error: unknown, session: postgres.Sql): void {
    this.stats.errors++;
    if (session !== this.sql) return; // already replaced
    this.options.log.warn({ err: error }, "outbox relay error; retrying");
    this.failingSince ??= Date.now();
    // A session that does not answer at all is broken: replace it now. One that fails may be waiting for
    // Postgres to come back, which it does itself: replace it only once that takes too long.
    if (error instanceof SessionHung || Date.now() - this.failingSince > OutboxRelay.REOPEN_AFTER_MS)
      this.reopen();
  }

  private reopen(): void {
    const old = this.sql;
    this.sql = this.openSession();
    this.failingSince = undefined;
    this.stats.reopened++;
    // The advisory lock (unsourced relay) went with the old session: take it again before publishing.
    this.stats.leader = false;
    void old.end({ timeout: 0 }).catch(() => {});
    if (!this.options.leases) this.listen();
    this.options.log.warn({ leases: this.options.leases !== undefined }, "outbox session replaced");
  }

  private listen(): void {
    // Replays and other writers outside a turn say so with NOTIFY; postgres.js reconnects the listener.
    this.sql
      .listen(OUTBOX_CHANNEL, () => this.notify())
      .catch((error: unknown) => {
        this.options.log.warn({ err: error }, "outbox relay cannot listen; polling only");
      });
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    if (!this.options.leases) this.listen();
    this.loop = this.run();
  }

  /** A commit wrote outbox rows: look now rather than at the next poll. */
  notify(): void {
    this.pending = true;
    this.wake?.();
  }

  async stop(): Promise<void> {
    this.running = false;
    this.wake?.();
    await this.loop;
    await Promise.allSettled([...this.sending.values()]);
    await this.producer.close();
    await this.sql.end({ timeout: 5 });
  }

  private async run(): Promise<void> {
    const poll = this.options.pollIntervalMs ?? 50;
    const owned = this.options.leases !== undefined;
    while (this.running) {
      const session = this.sql;
      try {
        if (!this.stats.leader) {
          // Publishing its own partitions needs no election; the relay of unsourced rows does.
          const [row] = owned
            ? [{ locked: true }]
            : await this.bounded(
                this.sql<{ locked: boolean }[]>`select pg_try_advisory_lock(${RELAY_LOCK}) as locked`,
              );
          this.stats.leader = row?.locked === true;
        }
        if (this.stats.leader) {
          const published = await this.publishBatch();
          if (published > 0) continue; // more may be waiting (a row is done once it is marked: sendTopic)
          this.failingSince = undefined; // nothing left to publish: the session works
          if (!owned && Date.now() - this.lastHousekeeping > 60_000) {
            this.lastHousekeeping = Date.now();
            await this.bounded(this.housekeep());
          }
        }
      } catch (error) {
        this.sessionFailed(error, session);
        // A broken session lost the lock with it; take it again before publishing.
        this.stats.leader = false;
        await this.sleep(1000);
        continue;
      }
      await this.sleep(this.stats.leader ? poll : poll * 10);
    }
    if (this.stats.leader && !owned) await this.sql`select pg_advisory_unlock(${RELAY_LOCK})`.catch(() => {});
  }

  private sleep(ms: number): Promise<void> {
    if (this.pending) {
      this.pending = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.wake = () => {
        this.pending = false;
        done();
      };
    });
  }

  /**
   * Starts publishing the oldest unpublished rows, one send per topic. A topic's send runs on its own: a slow or
   * failing topic (a broker failover, a deleted topic) never holds up the others, and its rows are not selected
   * again until its send is done (one send in flight per topic keeps the topic's id order, hence per-key order).
   * Returns how many rows were picked up.
   */
  private async publishBatch(): Promise<number> {
    const now = Date.now();
    for (const [topic, b] of this.blocked) if (b.until <= now) this.blocked.delete(topic);
    const skip = [...this.blocked.keys(), ...this.sending.keys()];
    const limit = this.options.batchSize ?? 500;
    const leases = this.options.leases?.();
    if (leases?.length === 0) return 0;
    const source = leases
      ? this.sql`(source_group, source_topic, source_partition) in (
          select * from unnest(${leases.map((l) => l.groupId)}::text[], ${leases.map((l) => l.topic)}::text[],
            ${leases.map((l) => String(l.partition))}::int[]))`
      : this.sql`source_group is null`;
    const rows = await this.bounded(this.sql<OutboxRow[]>`
      select id, topic, message_key, headers, value, raw_value from outbox
      where published_at is null and ${source}
        ${skip.length ? this.sql`and topic not in ${this.sql(skip)}` : this.sql``}
      order by id limit ${limit}`);
    if (rows.length === 0) return 0;
    const byTopic = new Map<string, OutboxRow[]>();
    for (const row of rows) {
      const list = byTopic.get(row.topic) ?? [];
      list.push(row);
      byTopic.set(row.topic, list);
    }
    const sends = [...byTopic].map(([topic, list]) => {
      const send = this.sendTopic(topic, list).finally(() => this.sending.delete(topic));
      this.sending.set(topic, send);
      return send;
    });
    // Usually every send is done in milliseconds; one that is not goes on in the background.
    let timer: Timer | undefined;
    await Promise.race([
      Promise.all(sends),
      new Promise((resolve) => {
        timer = setTimeout(resolve, 250);
      }),
    ]);
    clearTimeout(timer);
    this.stats.batches++;
    return rows.length;
  }

  private async sendTopic(topic: string, list: OutboxRow[]): Promise<void> {
    try {
      await this.producer.send({
        topic,
        acks: -1,
        messages: list.map((r) => ({
          key: r.message_key,
          value: r.raw_value ?? r.value,
          headers: r.headers,
        })),
      });
    } catch (error) {
      const failures = (this.blocked.get(topic)?.failures ?? 0) + 1;
      // At most 5 s: a topic held back longer after a broker failover healed keeps events from going out.
      const backoffMs = Math.min(5_000, 250 * 2 ** failures);
      this.blocked.set(topic, { until: Date.now() + backoffMs, failures });
      this.stats.errors++;
      this.options.log.error(
        { err: error, topic, rows: list.length, backoffMs },
        "outbox publish failed; topic held back",
      );
      return;
    }
    const ids = list.map((r) => r.id);
    const session = this.sql;
    try {
      await this.bounded(session`update outbox set published_at = now() where id in ${session(ids)}`);
    } catch (error) {
      // Sent but not marked: the rows go out again (consumers dedupe by eventId).
      this.sessionFailed(error, session);
      return;
    }
    this.failingSince = undefined;
    this.stats.published += ids.length;
  }

  /** Deletes old published outbox rows and old inbox ids, a bounded batch at a time; returns how many. */
  async housekeep(now = new Date()): Promise<number> {
    const publishedBefore = new Date(
      now.getTime() - (this.options.keepPublishedMs ?? 3_600_000),
    ).toISOString();
    const handledBefore = new Date(
      now.getTime() - (this.options.keepInboxMs ?? 8 * 86_400_000),
    ).toISOString();
    const outbox = await this.sql`
      delete from outbox where id in (
        select id from outbox where published_at < ${publishedBefore} order by id limit 10000)`;
    const inbox = await this.sql`
      delete from inbox where (consumer, event_id) in (
        select consumer, event_id from inbox where handled_at < ${handledBefore} limit 10000)`;
    const deleted = outbox.count + inbox.count;
    this.stats.deleted += deleted;
    return deleted;
  }
}

class SessionHung extends Error {}

interface OutboxRow {
  id: string;
  topic: string;
  message_key: string;
  headers: Record<string, string>;
  value: string | null;
  raw_value: Buffer | null;
}
