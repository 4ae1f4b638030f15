/**
 * Publishes outbox rows to Kafka with an idempotent producer (acks=all, one request in flight), in id order.
 *
 * Who publishes what — no process is on every event's path (guarantee 12):
 * - Rows written by a turn carry the partition lease they were written under (outbox.ts). A relay given the
 *   host's `leases` publishes the rows of the partitions the host owns now: its own turns' rows, and on taking a
 *   partition whatever its lost owner left unpublished. A frozen or dead host stalls only its own partitions,
 *   and only until they are taken over.
 * - Published as committed: the rows of a group commit are handed over with their ids (`offer`) and sent at
 *   once, without being read back; they are marked published after. That holds only for a source partition
 *   known to have nothing older left unpublished ("direct"): a partition just taken, or one whose rows were
 *   also written some other way (a dead letter, a fired timer, a reactor's events: `notify(lease)`), or whose
 *   direct send failed, goes through the sweep (the select below); rows offered meanwhile are held, in commit
 *   order, and sent once a sweep finds nothing of the partition unpublished but them. A stranded row (offered and somehow not sent) is found by a
 *   sweep of every partition's rows older than a few seconds, which puts its partition back on the sweep.
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
 * - Traced (runtime/tracing.ts): a row carrying a `traceparent` is sent in a span `publish <topic>`, and the
 *   record's `traceparent` names that span, so its consumer's span hangs off the publish.
 */
import type { Kafka } from "kafkajs";
import postgres from "postgres";
import { connectionOptions } from "../db/index.ts";
import type { PartitionLease } from "./fence.ts";
import type { Logger } from "./logger.ts";
import { OUTBOX_CHANNEL } from "./outbox.ts";
import { ReplaceableProducer } from "./producer.ts";
import { tracePublish } from "./tracing.ts";

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
  /** Topics with a send in flight when a writer woke the relay: their new rows wait for that send to end. */
  private readonly wokenWhileSending = new Set<string>();
  /** Topics whose rows a sweep found while a send of theirs was in flight. */
  private readonly waitingOn = new Set<string>();
  get producerStats() {
    return this.producer.stats;
  }
  /** Source partitions (by lease) and whether their rows go out as committed; see the top of this file. */
  private readonly partitionModes = new Map<string, PartitionMode>();
  /** Offered rows waiting for their topic's send, in commit order. */
  private readonly offered = new Map<string, CommittedRow[]>();
  /** Ids sent as committed, to be marked published (off the path of the next send). */
  private readonly toMark: string[] = [];
  private marking: Promise<void> | undefined;
  private lastStrandedSweep = Date.now();
  /** Ids of rows of owned partitions a sweep sent lately, and when. */
  private readonly swept = new Map<string, number>();
  private lastHousekeeping = 0;
  readonly stats = {
    published: 0,
    batches: 0,
    leader: false,
    errors: 0,
    deleted: 0,
    reopened: 0,
    /** Rows sent as committed (offered), and rows offered but left to the sweep. */
    sentAsCommitted: 0,
    leftToSweep: 0,
    /** Selects of unpublished rows. */
    sweeps: 0,
  };

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

  /**
   * Rows were written that were not offered (a dead letter, a fired timer, a reactor's events, a partition just
   * taken): look now rather than at the next poll, and publish the partition's rows (every partition's, without a
   * lease) through the sweep until it finds none left, so they go out in id order with whatever came before.
   */
  notify(lease?: PartitionLease): void {
    if (lease) this.toSweep(this.modeOf(lease));
    else for (const mode of this.partitionModes.values()) this.toSweep(mode);
    for (const topic of this.sending.keys()) this.wokenWhileSending.add(topic);
    this.pending = true;
    this.wake?.();
  }

  /**
   * Rows a turn's commit just wrote, with their ids, in commit order: sent as they are when their partition is
   * direct (nothing older of it left unpublished), else left to the sweep.
   */
  offer(rows: CommittedRow[]): void {
    if (rows.length === 0) return;
    let held = false;
    for (const row of rows) {
      // A sweep can read a row in the moment between its commit and its offer: sent already, not again.
      if (this.swept.delete(row.id)) continue;
      const mode = this.modeOf(row.lease);
      if (!mode.direct) {
        held = true;
        // Its partition is on the sweep: held (in commit order) until a sweep finds nothing else of it left.
        mode.held.push(row);
        this.stats.leftToSweep++;
        continue;
      }
      const list = this.offered.get(row.topic);
      if (list) list.push(row);
      else this.offered.set(row.topic, [row]);
    }
    // Sent from here, not from the relay's loop, which may be waiting on a sweep. (Waiting a moment for more
    // commits to send with them, as a Kafka producer's linger does, bought nothing here: measured at 2 and 5 ms.)
    if (this.running) this.sendOffered();
    if (this.running && held) {
      // Rows held for a sweep: run it now, not at the next poll (1 s: 225 ms a booking at 20 connections).
      this.pending = true;
      this.wake?.();
    }
  }

  private modeOf(lease: PartitionLease): PartitionMode {
    const key = partitionKey(lease);
    let mode = this.partitionModes.get(key);
    if (!mode || mode.epoch !== lease.epoch) {
      mode = { epoch: lease.epoch, direct: false, generation: 0, held: [] };
      this.partitionModes.set(key, mode);
    }
    return mode;
  }

  /** Back to the sweep: its offered rows not sent yet are held again (they are older than any offered next). */
  private toSweep(mode: PartitionMode): void {
    mode.generation++;
    if (!mode.direct) return;
    mode.direct = false;
    for (const [topic, list] of this.offered) {
      const kept = list.filter((row) => {
        if (this.partitionModes.get(partitionKey(row.lease)) !== mode) return true;
        mode.held.push(row);
        return false;
      });
      if (kept.length > 0) this.offered.set(topic, kept);
      else this.offered.delete(topic);
    }
  }

  async stop(): Promise<void> {
    this.running = false;
    this.wake?.();
    await this.loop;
    await Promise.allSettled([...this.sending.values()]);
    await this.marking;
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
          if (owned) this.sendOffered();
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
    const blocked = [...this.blocked.keys()];
    const limit = this.options.batchSize ?? 500;
    const owned = this.options.leases?.();
    if (owned) this.forgetOthers(owned);
    // Direct partitions' rows are sent as offered; now and then their rows older than a few seconds are looked
    // for too (offered and never sent: a stranded row puts its partition back on the sweep).
    const stranded = owned !== undefined && now - this.lastStrandedSweep >= STRANDED_AFTER_MS;
    if (stranded) this.lastStrandedSweep = now;
    const leases = stranded ? owned : owned?.filter((l) => !this.modeOf(l).direct);
    if (leases?.length === 0) return 0;
    const generations = new Map((leases ?? []).map((l) => [partitionKey(l), this.modeOf(l).generation]));
    const source = leases
      ? this.sql`(source_group, source_topic, source_partition) in (
          select * from unnest(${leases.map((l) => l.groupId)}::text[], ${leases.map((l) => l.topic)}::text[],
            ${leases.map((l) => String(l.partition))}::int[]))`
      : this.sql`source_group is null`;
    // Topics with a send in flight are read too (their rows are sent after it), so that a partition with
    // nothing left unpublished can be told from one whose rows were not read.
    this.stats.sweeps++;
    const selected: OutboxRow[] = await this.bounded(this.sql<OutboxRow[]>`
      select id, topic, message_key, headers, value, raw_value, source_group, source_topic, source_partition,
        created_at < now() - ${`${STRANDED_AFTER_MS} milliseconds`}::interval as old
      from outbox
      where published_at is null and ${source}
        ${blocked.length ? this.sql`and topic not in ${this.sql(blocked)}` : this.sql``}
      order by id limit ${limit}`);
    let rows = selected;
    if (owned) {
      const found = new Map<string, OutboxRow[]>(); // each partition's rows in this select
      rows = selected.filter((row) => {
        const key = partitionKey({
          groupId: row.source_group ?? "",
          topic: row.source_topic ?? "",
          partition: row.source_partition ?? -1,
        });
        const list = found.get(key);
        if (list) list.push(row);
        else found.set(key, [row]);
        const mode = this.partitionModes.get(key);
        if (!mode?.direct) return true;
        // A direct partition's row: being sent as offered (skipped here), or stranded: its partition goes back
        // on the sweep, and the row is sent from the next sweep on, after whatever of it was offered before.
        if (row.old) {
          this.options.log.warn(
            { id: row.id, topic: row.topic },
            "outbox row offered, not sent; sweeping its partition",
          );
          this.toSweep(mode);
        }
        return false;
      });
      // A partition read whole (not cut off by the limit, no topic held back), nothing written to it meanwhile
      // other than offered, and nothing of it unpublished but what it holds: its held rows go out now, after
      // any send of its rows in flight, and from now on its rows go out as committed.
      const whole = selected.length < limit && blocked.length === 0;
      for (const lease of leases ?? []) {
        const key = partitionKey(lease);
        const mode = this.modeOf(lease);
        if (mode.direct) continue;
        const held = new Set(mode.held.map((r) => r.id));
        const mine = found.get(key) ?? [];
        if (whole && mode.generation === generations.get(key) && mine.every((r) => held.has(r.id))) {
          mode.direct = true;
          for (const row of mode.held) {
            const list = this.offered.get(row.topic);
            if (list) list.push(row);
            else this.offered.set(row.topic, [row]);
          }
          mode.held = [];
          rows = rows.filter((r) => !held.has(r.id));
        }
      }
    }
    rows = rows.filter((row) => {
      if (!this.sending.has(row.topic)) return true;
      this.waitingOn.add(row.topic); // sent after the send in flight, in id order: look again when it ends
      return false;
    });
    if (owned) this.unhold(rows);
    if (this.offered.size > 0) this.sendOffered();
    if (rows.length === 0) return 0;
    const byTopic = new Map<string, OutboxRow[]>();
    for (const row of rows) {
      const list = byTopic.get(row.topic) ?? [];
      list.push(row);
      byTopic.set(row.topic, list);
    }
    const sends = [...byTopic].map(([topic, list]) => {
      const send = this.sendTopic(topic, list).finally(() => {
        this.sending.delete(topic);
        this.sendEnded(topic);
      });
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

  /**
   * A topic's send ended: rows of it offered or found meanwhile wait for it (one send a topic at a time); look
   * again now, not at the next poll (up to pollIntervalMs later: 33 ms of a booking's 117 at p50).
   */
  private sendEnded(topic: string): void {
    if (this.running && this.offered.has(topic)) this.sendOffered();
    const waited = this.waitingOn.delete(topic);
    if ((waited || this.wokenWhileSending.delete(topic)) && this.running) {
      this.pending = true;
      this.wake?.();
    }
  }

  /** Starts a send for each topic with offered rows and no send in flight (one a topic keeps id order). */
  private sendOffered(): void {
    for (const [topic, list] of this.offered) {
      if (this.sending.has(topic)) continue;
      this.offered.delete(topic);
      // Rows of a partition lost meanwhile are left to its new owner's sweep.
      const rows = list.filter(
        (row) => this.partitionModes.get(partitionKey(row.lease))?.epoch === row.lease.epoch,
      );
      if (rows.length === 0) continue;
      if (this.blocked.has(topic)) {
        // Held back after a failure: the sweep sends them, with backoff, in id order.
        for (const row of rows) this.toSweep(this.modeOf(row.lease));
        continue;
      }
      const send = this.sendCommitted(topic, rows).finally(() => {
        this.sending.delete(topic);
        this.sendEnded(topic);
      });
      this.sending.set(topic, send);
    }
  }

  private async sendCommitted(topic: string, list: CommittedRow[]): Promise<void> {
    const traced = tracePublish(topic, list);
    try {
      await this.producer.send({
        topic,
        messages: list.map((r, i) => ({
          key: r.key,
          value: r.value,
          headers: traced?.headers[i] ?? r.headers,
        })),
      });
      traced?.end();
    } catch (error) {
      traced?.end(error);
      // Not sent (or not known to be): the rows are in the table; their partitions go back to the sweep.
      const failures = (this.blocked.get(topic)?.failures ?? 0) + 1;
      const backoffMs = Math.min(5_000, 250 * 2 ** failures);
      this.blocked.set(topic, { until: Date.now() + backoffMs, failures });
      this.stats.errors++;
      for (const row of list) this.toSweep(this.modeOf(row.lease));
      this.options.log.error(
        { err: error, topic, rows: list.length, backoffMs },
        "outbox publish failed; topic held back",
      );
      return;
    }
    this.stats.published += list.length;
    this.stats.sentAsCommitted += list.length;
    for (const row of list) this.toMark.push(row.id);
    this.marking ??= this.markSent().finally(() => {
      this.marking = undefined;
    });
  }

  /**
   * Marks the rows sent as committed, as many at a time as have gathered in MARK_EVERY_MS: off the path of any
   * send, so marking rarely costs a statement a row (a row left unmarked is only sent again after a crash).
   */
  private async markSent(): Promise<void> {
    while (this.toMark.length > 0) {
      if (this.running) await Bun.sleep(MARK_EVERY_MS); // stopping: mark what was sent at once
      const ids = this.toMark.splice(0, 5000);
      const session = this.sql;
      try {
        await this.bounded(session`update outbox set published_at = now() where id = any(${ids}::bigint[])`);
      } catch (error) {
        // Sent but not marked: found by the stranded-row sweep and sent again (consumers dedupe by eventId).
        this.sessionFailed(error, session);
        return;
      }
    }
  }

  /**
   * Rows a sweep is sending: no longer held by their partitions, and remembered a while (they may be offered
   * just after: a sweep can read a row between its commit and its offer), so that none goes out twice.
   */
  private unhold(rows: OutboxRow[]): void {
    const now = Date.now();
    for (const [id, at] of this.swept) if (now - at > STRANDED_AFTER_MS) this.swept.delete(id);
    const ids = new Set(rows.map((r) => r.id));
    for (const id of ids) this.swept.set(id, now);
    for (const mode of this.partitionModes.values()) {
      if (mode.held.length > 0) mode.held = mode.held.filter((r) => !ids.has(r.id));
    }
  }

  /** Forgets the partitions this host no longer owns. */
  private forgetOthers(owned: PartitionLease[]): void {
    const current = new Set(owned.map(partitionKey));
    for (const key of this.partitionModes.keys()) if (!current.has(key)) this.partitionModes.delete(key);
  }

  private async sendTopic(topic: string, list: OutboxRow[]): Promise<void> {
    const traced = tracePublish(topic, list);
    try {
      await this.producer.send({
        topic,
        messages: list.map((r, i) => ({
          key: r.message_key,
          value: r.raw_value ?? r.value,
          headers: traced?.headers[i] ?? r.headers,
        })),
      });
      traced?.end();
    } catch (error) {
      traced?.end(error);
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
  source_group: string | null;
  source_topic: string | null;
  source_partition: number | null;
  /** Older than STRANDED_AFTER_MS. */
  old: boolean;
}

/** An outbox row a turn just committed, as its publisher is handed it. */
export interface CommittedRow {
  id: string;
  topic: string;
  key: string;
  headers: Record<string, string>;
  value: string;
  lease: PartitionLease;
}

/**
 * Whether a source partition's rows go out as committed (`direct`); a count of its rows written without being
 * offered (a sweep that saw it change cannot call the partition clean); the rows offered while it was on the sweep.
 */
interface PartitionMode {
  epoch: number;
  direct: boolean;
  generation: number;
  held: CommittedRow[];
}

function partitionKey(l: { groupId: string; topic: string; partition: number }): string {
  return `${l.groupId}\u0000${l.topic}\u0000${l.partition}`;
}

/** Rows sent as committed are marked published this often. */
const MARK_EVERY_MS = 100;

/** A direct partition's row still unpublished after this long was offered and not sent: stranded. */
const STRANDED_AFTER_MS = 5_000;
