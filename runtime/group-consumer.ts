/**
 * One consumer-group membership: reads its topics with kafkajs `eachBatch`, hands each assigned partition's
 * records to a PartitionWorker, and commits each partition's contiguous finished position on a timer.
 *
 * What is committed when:
 * - a record's offset is "resolved" for kafkajs as soon as it is dispatched, so fetching continues while turns run;
 * - the Kafka commit is ours alone (autoCommit off): the worker's committable offset, never beyond a record whose
 *   turn has not committed in Postgres.
 *
 * Ownership: a partition of the current assignment is taken (its lease bumped, fence.ts) on assignment, or on its
 * first batch (paused until taken: eachBatch never waits on Postgres). A new worker starts at the group's committed offset, read after the lease was taken (everything
 * below it is done, so nothing above it can be skipped); a batch fetched from further on (kafkajs' own position,
 * left by an earlier owner or generation) is dropped and the partition sought back. On a rebalance (GROUP_JOIN)
 * revoked partitions stop dispatching, drain their running turns for a bounded time, commit and release the lease
 * if no one took the partition yet, and their actors are passivated. A partition whose turn was fenced is paused
 * until the group says who owns it: the next rebalance, its taker releasing it, or — still ours after a session
 * timeout with neither — taken back.
 *
 * kafkajs' pause, resume and seek throw while its consumer is not running (crashed, restarting); every call goes
 * through `onConsumer`, which skips it then: a consumer that is started again reads from the committed offsets.
 */
import type { Admin, Consumer, EachBatchPayload, Kafka } from "kafkajs";
import type { Db } from "../db/index.ts";
import { FencedError } from "./errors.ts";
import { acquireLease, currentEpoch, leaseReleased, type PartitionLease, releaseLease } from "./fence.ts";
import type { Logger } from "./logger.ts";
import { type InboundRecord, PartitionWorker } from "./partition-worker.ts";

export interface GroupConsumerOptions {
  kafka: Kafka;
  db: Db;
  log: Logger;
  hostId: string;
  groupId: string;
  topics: string[];
  handle(lease: PartitionLease, record: InboundRecord): Promise<void>;
  /** Told of each fetched batch before its records are handled (to load their actors together). */
  prefetch?(records: readonly InboundRecord[]): void;
  /** A partition's in-memory actors are no longer ours. */
  release(topic: string, partition: number): void;
  /** A partition was taken (its lease is ours now). */
  taken?(lease: PartitionLease): void;
  /** A join of the group finished, after `ms` (kafkajs' own measure of the rebalance). */
  rebalanced?(groupId: string, ms: number): void;
  maxConcurrency: number;
  maxBuffered: number;
  commitIntervalMs: number;
  drainTimeoutMs: number;
  sessionTimeoutMs: number;
  heartbeatIntervalMs: number;
  /** kafkajs' retries inside the consumer before it crashes (a crash is then restarted by us, with backoff). */
  retry: { retries: number; initialRetryTime: number; maxRetryTime: number };
  /** `kafka`'s clientId when it is this host's own across restarts (HostOptions.instanceClientId). */
  instanceClientId?: string;
}

interface Owned {
  worker: PartitionWorker;
  lease: PartitionLease;
  committed: bigint;
  /** Since when its commits have been failing (undefined while they succeed). */
  commitFailingSince?: number;
  /** The group generation (our count of GROUP_JOINs) in which the lease was taken. */
  generation: number;
}

/** kafkajs' admin with the method patches/kafkajs+2.2.4.patch adds (a LeaveGroup on a member's behalf). */
interface PatchedAdmin {
  removeGroupMembers(request: { groupId: string; memberIds: string[] }): Promise<void>;
}

const tp = (topic: string, partition: number) => `${topic}\u0000${partition}`;

/** A take slower than this is given up (and tried again while the partition stays assigned). */
const TAKE_DEADLINE_MS = 30_000;

/** A take finished after a rebalance moved its partition away: given back, not an error. */
class NoLongerAssigned extends Error {
  constructor(topic: string, partition: number) {
    super(`${topic}/${partition} is no longer assigned to this member`);
  }
}

/** `work`, or a rejection after `ms` (the work itself goes on; its late result is dropped). */
function withDeadline<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: Timer | undefined;
  return Promise.race([
    work,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} took over ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

export class GroupConsumer {
  private consumer: Consumer;
  private readonly owned = new Map<string, Owned>();
  private readonly opening = new Map<string, Promise<Owned>>();
  /** Fenced partitions, paused until the group's next word (a rebalance) or a retake after a session timeout. */
  private readonly fencedUntilRejoin = new Map<string, Timer>();
  /** Partitions an operator paused (partition_pause): their workers hold their records, now and when taken. */
  private held = new Set<string>();
  /** The partitions of the latest assignment: only these may be taken. */
  private assigned = new Set<string>();
  private generation = 0;
  private admin: Admin | undefined;
  /** Partitions whose worker failed: re-read from this offset (its first unfinished record) by a new worker. */
  private readonly rereadFrom = new Map<string, bigint>();
  private readonly startReads = new Map<string, Promise<Map<number, bigint>>>();
  private commitTimer: Timer | undefined;
  /** When the consumer last heard from its group (a heartbeat or a join): see `commit`. */
  private aliveAt = Date.now();
  private stopping = false;
  private restarting: Promise<void> | undefined;
  /** Consumers that crashed (kafkajs gives up on them): a restart that made one of them has not succeeded. */
  private readonly crashed = new WeakSet<Consumer>();
  readonly stats = {
    rebalances: 0,
    revoked: 0,
    drainTimeouts: 0,
    fencedPartitions: 0,
    commits: 0,
    crashes: 0,
    restarts: 0,
    /** Restarts because commits kept failing (a consumer stuck on a coordinator that moved). */
    stuckRestarts: 0,
    /** Restarts because the consumer stopped heartbeating (its fetch loop stalled, no crash reported). */
    silentRestarts: 0,
    workerFailures: 0,
    /** Batches fetched past a worker's next record (a stale kafkajs position), dropped and read again. */
    refetches: 0,
    /** Attempts to take a partition that failed (Postgres out of reach) and were tried again. */
    takeFailures: 0,
    /** Members left in the group by this instance's previous incarnation, removed before joining. */
    evictedMembers: 0,
  };

  constructor(private readonly options: GroupConsumerOptions) {
    this.consumer = this.createConsumer();
  }

  private createConsumer(): Consumer {
    const consumer = this.options.kafka.consumer({
      groupId: this.options.groupId,
      sessionTimeout: this.options.sessionTimeoutMs,
      heartbeatInterval: this.options.heartbeatIntervalMs,
      // How long a rebalance waits for members to rejoin. A member rejoins as soon as its next batch is
      // dispatched (turns drain after the join, not before), so a session timeout is plenty; longer only keeps a
      // dead member's partitions unserved: a host restarted after a SIGKILL waited 20 s with twice the drain.
      rebalanceTimeout: this.options.sessionTimeoutMs,
      // How long the broker holds a fetch when nothing is there (it answers as soon as a record is): what an idle
      // consumer costs (11 groups at 100 ms made 110 fetches a second) against how soon a pause, resume, seek or
      // rebalance is acted on (after the fetch in flight returns).
      maxWaitTimeInMs: 500,
      // Every crash comes to our restart(), which also drops the partitions' workers and actors: kafkajs
      // restarting itself would leave them behind.
      retry: { ...this.options.retry, restartOnFailure: async () => false },
    });
    // Heard from the group: the fetch loop is alive (kafkajs heartbeats from it, between fetches).
    const alive = () => {
      if (this.consumer === consumer) this.aliveAt = Date.now();
    };
    consumer.on(consumer.events.HEARTBEAT, alive);
    consumer.on(consumer.events.GROUP_JOIN, alive);
    consumer.on(consumer.events.GROUP_JOIN, (event) => {
      if (this.consumer !== consumer) return; // a replaced consumer's late word
      this.options.rebalanced?.(this.options.groupId, Number(event.payload.duration ?? 0));
      void this.onAssignment(event.payload.memberAssignment as Record<string, number[]>);
    });
    consumer.on(consumer.events.CRASH, (event) => {
      if (this.consumer !== consumer) return;
      this.stats.crashes++;
      const { error, restart } = event.payload as { error: Error; restart: boolean };
      this.options.log.error({ err: error, groupId: this.options.groupId, restart }, "consumer crashed");
      this.crashed.add(consumer);
      if (!restart && !this.stopping) void this.restart();
    });
    return consumer;
  }

  async start(): Promise<void> {
    this.aliveAt = Date.now();
    await this.evictPreviousIncarnation();
    await this.consumer.connect();
    for (const topic of this.options.topics) await this.consumer.subscribe({ topic, fromBeginning: true });
    await this.consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: false,
      partitionsConsumedConcurrently: 16,
      eachBatch: (payload) => this.onBatch(payload),
    });
    this.commitTimer ??= setInterval(() => void this.commit(), this.options.commitIntervalMs);
  }

  /**
   * Removes the group's members with this instance's clientId before joining: they are what its previous
   * incarnation left (a SIGKILL does not leave the group), or this process's own consumer given up by a restart.
   * Left in, every rebalance waits for them until their session times out — a restarted host would serve only a
   * session after the crash, and the partitions they held would wait as long. Best effort and bounded: if it
   * fails, the join waits for the sessions as it would have anyway.
   */
  private async evictPreviousIncarnation(): Promise<void> {
    const clientId = this.options.instanceClientId;
    if (!clientId) return;
    this.admin ??= this.options.kafka.admin();
    const admin = this.admin as Admin & Partial<PatchedAdmin>;
    if (typeof admin.removeGroupMembers !== "function") {
      // patch-package did not run (an install without scripts): say so, or restarts are slow for no visible reason.
      this.options.log.error(
        { groupId: this.options.groupId },
        "kafkajs is not patched (patches/kafkajs+2.2.4.patch): a restarted host waits out its previous members' sessions",
      );
      return;
    }
    const removeGroupMembers = admin.removeGroupMembers.bind(admin);
    let late = false; // the bound below passed: a late removal is neither counted nor told
    try {
      await withDeadline(
        (async () => {
          await admin.connect();
          const { groups } = await admin.describeGroups([this.options.groupId]);
          const members = (groups[0]?.members ?? []).filter((m) => m.clientId === clientId);
          if (members.length === 0 || late) return;
          await removeGroupMembers({
            groupId: this.options.groupId,
            memberIds: members.map((m) => m.memberId),
          });
          if (late) return;
          this.stats.evictedMembers += members.length;
          // Warn: it is routine after a crash, but if a live process shares the id (a misconfiguration), this line
          // is where its members keep disappearing from.
          this.options.log.warn(
            {
              groupId: this.options.groupId,
              members: members.map((m) => ({ memberId: m.memberId, clientHost: m.clientHost })),
            },
            "removed group members with this instance's client id (its previous incarnation's)",
          );
        })(),
        // Bounded well inside a session: on a Kafka that is slow to answer, the join should not wait on this.
        Math.min(3000, this.options.sessionTimeoutMs / 2),
        "removing the previous incarnation's members",
      );
    } catch (error) {
      late = true;
      this.options.log.warn(
        { err: error, groupId: this.options.groupId },
        "could not remove the previous incarnation's members; the join waits for their sessions",
      );
    }
  }

  /** A consumer that crashed for good is made again with backoff; the host keeps running. */
  private restart(): Promise<void> {
    this.restarting ??= (async () => {
      for (let attempt = 1; !this.stopping; attempt++) {
        await Bun.sleep(Math.min(30_000, 500 * 2 ** attempt));
        try {
          // A stalled consumer's disconnect waits for its fetch loop, which may never end: bounded.
          await withDeadline(
            this.consumer.disconnect(),
            this.options.sessionTimeoutMs,
            "disconnecting",
          ).catch(() => {});
          this.abandonAll();
          this.consumer = this.createConsumer();
          await this.start();
          // kafkajs' run() resolves even when its first join fails (a coordinator not available yet): that
          // crash came while we were restarting, so it is ours to retry, not a success.
          if (this.crashed.has(this.consumer)) throw new Error("the new consumer crashed while starting");
          this.stats.restarts++;
          this.options.log.warn({ groupId: this.options.groupId, attempt }, "consumer restarted");
          return;
        } catch (error) {
          this.options.log.error(
            { err: error, groupId: this.options.groupId, attempt },
            "consumer restart failed",
          );
        }
      }
    })().finally(() => {
      this.restarting = undefined;
      // A crash reported while this restart was finishing found it still under way: start another.
      if (this.crashed.has(this.consumer) && !this.stopping) void this.restart();
    });
    return this.restarting;
  }

  private async onBatch({ batch, resolveOffset, heartbeat }: EachBatchPayload): Promise<void> {
    if (this.stopping || batch.messages.length === 0) return;
    const id = tp(batch.topic, batch.partition);
    // A batch of a partition that is not ours in the latest assignment (fetched before a rebalance) or fenced
    // is not handled: taking its lease would fence the partition's real owner.
    if (this.fencedUntilRejoin.has(id) || !this.assigned.has(id)) return;
    const owned = this.owned.get(id);
    if (!owned) {
      // Taking waits on Postgres (the lease row stays locked while a frozen owner's transaction is open, until
      // Postgres ends it; Postgres may be out of reach): never inside eachBatch, whose loop must go on
      // heartbeating and rejoining meanwhile — a member stuck here held up its group's rebalance. The partition
      // is paused instead; the take seeks it to where its worker starts and resumes it.
      this.onConsumer("pause", (c) => c.pause([{ topic: batch.topic, partitions: [batch.partition] }]));
      this.takeWhileAssigned(batch.topic, batch.partition, this.assigned);
      return;
    }
    const fetchedFrom = BigInt((batch as unknown as { fetchedOffset: string }).fetchedOffset);
    const next = owned.worker.nextOffset;
    if (next !== undefined && fetchedFrom > next) {
      // Fetched from a position past the worker's next record (kafkajs' position of an earlier owner or
      // generation): handling it would commit past records nobody handled. Read again from the worker's.
      this.stats.refetches++;
      this.options.log.debug(
        {
          topic: batch.topic,
          partition: batch.partition,
          fetchedFrom: fetchedFrom.toString(),
          next: next.toString(),
        },
        "batch fetched past the worker's next record; re-reading from it",
      );
      this.seekBack(batch.topic, batch.partition, next);
      return;
    }
    const records = batch.messages.map((m) => toInbound(batch.topic, batch.partition, m));
    this.options.prefetch?.(records);
    owned.worker.push(records);
    const last = batch.lastOffset();
    if (last !== undefined) resolveOffset(last);
    await heartbeat();
  }

  /**
   * Takes a partition: bumps its epoch and makes its worker. Done on assignment (so timers of an idle partition
   * fire) or on its first batch, whichever comes first; both share one attempt.
   */
  private take(topic: string, partition: number): Promise<Owned> {
    const id = tp(topic, partition);
    const existing = this.owned.get(id);
    if (existing) return Promise.resolve(existing);
    let opening = this.opening.get(id);
    if (!opening) {
      const generation = this.generation;
      const { assigned, consumer } = this;
      opening = (async () => {
        const lease = await withDeadline(
          acquireLease(
            this.options.db,
            { groupId: this.options.groupId, topic, partition },
            this.options.hostId,
            this.options.log,
          ),
          TAKE_DEADLINE_MS,
          "taking the lease",
        );
        // Read after the lease is ours: no earlier owner can commit past what it handled any more, so every
        // record below this offset is done and none above it can be skipped.
        const start =
          this.rereadFrom.get(id) ??
          (await withDeadline(
            this.startOffset(topic, partition),
            TAKE_DEADLINE_MS,
            "reading the start offset",
          ));
        if (
          this.stopping ||
          this.consumer !== consumer ||
          (this.assigned !== assigned && !this.assigned.has(id))
        ) {
          // A rebalance (or a restart) moved the partition away while we were taking it: we hold its newest epoch
          // and have fenced its new owner; give it back at once (the owner polls for that: onFenced).
          await releaseLease(this.options.db, lease).catch(() => {});
          throw new NoLongerAssigned(topic, partition);
        }
        this.rereadFrom.delete(id);
        const owned: Owned = { lease, worker: this.createWorker(lease, start), committed: -1n, generation };
        if (this.held.has(id)) owned.worker.hold(true);
        this.owned.set(id, owned);
        this.seekBack(topic, partition, start);
        // kafkajs keeps a partition paused across rebalances: a pause left by a previous worker of this
        // partition (backpressure, a fence) would stall the new one forever.
        this.onConsumer("resume", (c) => c.resume([{ topic, partitions: [partition] }]));
        this.options.log.debug({ ...lease, start: start.toString(), generation }, "partition taken");
        this.options.taken?.(lease);
        return owned;
      })().finally(() => this.opening.delete(id));
      this.opening.set(id, opening);
    }
    return opening;
  }

  private createWorker(lease: PartitionLease, startOffset?: bigint): PartitionWorker {
    const { topic, partition } = lease;
    const id = tp(topic, partition);
    const worker = new PartitionWorker({
      topic,
      partition,
      startOffset,
      handle: (record) => this.options.handle(lease, record),
      maxConcurrency: this.options.maxConcurrency,
      maxBuffered: this.options.maxBuffered,
      pause: () => this.onConsumer("pause", (c) => c.pause([{ topic, partitions: [partition] }])),
      resume: () => this.onConsumer("resume", (c) => c.resume([{ topic, partitions: [partition] }])),
      onFailure: (error) => {
        if (this.owned.get(id)?.worker !== worker) return;
        this.owned.delete(id);
        this.options.release(topic, partition);
        void worker.drain(0);
        if (error instanceof FencedError) {
          this.stats.fencedPartitions++;
          this.onFenced(id, topic, partition, lease);
        } else {
          // Kafka has handed us records past the failed one: read the partition again from its first
          // unfinished record, or a new worker would start after it and commit past it.
          this.stats.workerFailures++;
          const from = worker.committable();
          if (from !== undefined) {
            this.rereadFrom.set(id, from);
            this.seekBack(topic, partition, from);
          }
          // Taken again now rather than on its next batch: a worker that had paused the partition (backpressure)
          // would get none. The take seeks to the first unfinished record and resumes the partition.
          this.takeWhileAssigned(topic, partition, this.assigned);
          this.options.log.error(
            { err: error, topic, partition, rereadFrom: from?.toString() },
            "partition worker failed; will re-read",
          );
        }
      },
    });
    return worker;
  }

  /**
   * Someone holds a newer epoch: stop fetching the partition until the group says who owns it. That is a
   * rebalance (onAssignment takes it again if it is ours); or its taker releasing it (a member that took it under
   * an assignment already superseded gives it up as soon as its group tells it: revoke); or, neither within a
   * session timeout while it is still assigned to us, we are its owner (a member that took it without being
   * assigned it would have been told so by its group by then). Then it is taken back.
   */
  private onFenced(id: string, topic: string, partition: number, lease: PartitionLease): void {
    this.onConsumer("pause", (c) => c.pause([{ topic, partitions: [partition] }]));
    clearTimeout(this.fencedUntilRejoin.get(id));
    const deadline = Date.now() + this.options.sessionTimeoutMs;
    const everyMs = Math.max(100, Math.min(500, this.options.sessionTimeoutMs / 20));
    const poll = (): void => {
      const timer: Timer = setTimeout(async () => {
        if (this.stopping || this.fencedUntilRejoin.get(id) !== timer) return; // stopped, or a rebalance came first
        const mayRetake =
          Date.now() >= deadline || (await leaseReleased(this.options.db, lease).catch(() => false));
        if (this.fencedUntilRejoin.get(id) !== timer) return;
        if (!mayRetake) return poll();
        this.fencedUntilRejoin.delete(id);
        if (this.assigned.has(id)) this.takeWhileAssigned(topic, partition, this.assigned);
      }, everyMs);
      this.fencedUntilRejoin.set(id, timer);
    };
    poll();
    this.options.log.warn(
      { groupId: this.options.groupId, topic, partition, epoch: lease.epoch, generation: this.generation },
      "partition fenced; paused until the group says who owns it",
    );
  }

  /**
   * Runs a kafkajs call that needs a running consumer (pause, resume, seek). While the consumer is not running
   * (crashed, being restarted) it is skipped: the next consumer reads every partition from its committed offset.
   */
  private onConsumer(what: string, call: (consumer: Consumer) => void): void {
    try {
      call(this.consumer);
    } catch (error) {
      this.options.log.debug(
        { err: error, groupId: this.options.groupId, what },
        "skipped: consumer not running",
      );
    }
  }

  /** Seeks a partition back (see onConsumer: skipped while the consumer is not running). */
  private seekBack(topic: string, partition: number, offset: bigint): void {
    this.onConsumer("seek", (c) => c.seek({ topic, partition, offset: offset.toString() }));
  }

  /**
   * Where a new worker of the partition starts: the group's committed offset, or the partition's first offset if
   * nothing was committed (or what was committed is gone to retention). Concurrent takes of a topic share a read.
   */
  private startOffset(topic: string, partition: number): Promise<bigint> {
    let read = this.startReads.get(topic);
    if (!read) {
      read = (async () => {
        this.admin ??= this.options.kafka.admin();
        await this.admin.connect();
        const [committed, ends] = await Promise.all([
          this.admin.fetchOffsets({ groupId: this.options.groupId, topics: [topic] }),
          this.admin.fetchTopicOffsets(topic),
        ]);
        const low = new Map(ends.map((e) => [e.partition, BigInt(e.low)]));
        const starts = new Map<number, bigint>();
        for (const c of committed[0]?.partitions ?? []) {
          const first = low.get(c.partition) ?? 0n;
          const at = BigInt(c.offset);
          starts.set(c.partition, at < first ? first : at);
        }
        for (const [p, first] of low) if (!starts.has(p)) starts.set(p, first);
        return starts;
      })().finally(() => this.startReads.delete(topic));
      this.startReads.set(topic, read);
    }
    return read.then((starts) => starts.get(partition) ?? 0n);
  }

  private async onAssignment(assignment: Record<string, number[]>): Promise<void> {
    this.stats.rebalances++;
    this.generation++;
    this.rereadFrom.clear(); // after a join, every partition is read from its committed offset
    const assigned = new Set(
      Object.entries(assignment).flatMap(([topic, ps]) => ps.map((p) => tp(topic, p))),
    );
    this.assigned = assigned;
    for (const [id, timer] of this.fencedUntilRejoin) {
      clearTimeout(timer);
      this.fencedUntilRejoin.delete(id);
    }
    const takeAssigned = () => {
      for (const id of assigned) {
        const [topic, partition] = id.split("\u0000") as [string, string];
        this.takeWhileAssigned(topic, Number(partition), assigned);
      }
    };
    const kept = [...this.owned.entries()].filter(([id]) => assigned.has(id));
    const revoked = [...this.owned.entries()].filter(([id]) => !assigned.has(id));
    takeAssigned();
    await Promise.all([
      ...revoked.map(([id, owned]) => this.revoke(id, owned)),
      ...kept.map(async ([id, owned]) => {
        // Kept across the rebalance: still ours only if nobody bumped the epoch meanwhile (we may have been away).
        const epoch = await currentEpoch(this.options.db, owned.lease).catch(() => undefined);
        if (epoch !== owned.lease.epoch && this.owned.get(id) === owned) {
          this.owned.delete(id);
          this.options.release(owned.lease.topic, owned.lease.partition);
          void owned.worker.drain(0);
          takeAssigned(); // again, from the committed offset, under a new epoch
        }
      }),
    ]);
  }

  /**
   * Takes an assigned partition, trying again with backoff while it stays assigned and untaken: an idle one gets
   * no batch that would take it, and its timers and leftover outbox rows need an owner.
   */
  private takeWhileAssigned(topic: string, partition: number, assigned: Set<string>, attempt = 1): void {
    const id = tp(topic, partition);
    if (this.stopping || this.assigned !== assigned || this.owned.has(id) || this.fencedUntilRejoin.has(id))
      return;
    this.take(topic, partition).catch((error) => {
      if (error instanceof NoLongerAssigned) return;
      this.stats.takeFailures++;
      const retryInMs = Math.min(10_000, 250 * 2 ** attempt);
      this.options.log.warn(
        { err: error, topic, partition, retryInMs },
        "could not take partition; retrying",
      );
      setTimeout(() => this.takeWhileAssigned(topic, partition, assigned, attempt + 1), retryInMs);
    });
  }

  private async revoke(id: string, owned: Owned): Promise<void> {
    this.owned.delete(id);
    this.stats.revoked++;
    const drained = await owned.worker.drain(this.options.drainTimeoutMs);
    if (!drained) this.stats.drainTimeouts++;
    // Commit only while the partition's epoch is still ours: then the next owner has not started, and our
    // commit cannot move its position backwards.
    const epoch = await currentEpoch(this.options.db, owned.lease).catch(() => undefined);
    if (epoch === owned.lease.epoch) {
      await this.commitOne(owned).catch(() => {});
      // Still ours: if we took it under an assignment already superseded, we fenced its owner; let it go on.
      await releaseLease(this.options.db, owned.lease).catch(() => {});
    }
    this.options.release(owned.lease.topic, owned.lease.partition);
    this.options.log.debug({ ...owned.lease, drained }, "partition revoked");
  }

  private abandonAll(): void {
    for (const timer of this.fencedUntilRejoin.values()) clearTimeout(timer);
    this.fencedUntilRejoin.clear();
    this.assigned = new Set();
    for (const [id, owned] of this.owned) {
      this.owned.delete(id);
      void owned.worker.drain(0);
      this.options.release(owned.lease.topic, owned.lease.partition);
    }
  }

  private async commitOne(owned: Owned): Promise<void> {
    const offset = owned.worker.committable();
    if (offset === undefined || offset <= owned.committed) return;
    await this.consumer.commitOffsets([
      { topic: owned.lease.topic, partition: owned.lease.partition, offset: offset.toString() },
    ]);
    owned.committed = offset;
    this.stats.commits++;
  }

  /**
   * Commits every owned partition's position; failures (a rebalance under way) wait for the next tick. Commits
   * failing for two session timeouts mean the consumer is stuck — kafkajs keeps the group coordinator it found
   * at the last join, and after a broker failover it sent every commit to a broker that no longer coordinates the
   * group ("not the correct coordinator", "not aware of this member") while lag grew: such a consumer is
   * made again (restart), which finds the coordinator anew and reads from the committed offsets.
   */
  async commit(): Promise<void> {
    const now = Date.now();
    const silentFor = now - this.aliveAt;
    if (silentFor > 2 * this.options.sessionTimeoutMs && !this.restarting && !this.stopping) {
      // After broker failovers a kafkajs consumer was seen neither fetching nor heartbeating, without a crash:
      // its partitions lagged for minutes while it still counted them as its own (tulios/kafkajs#659).
      this.stats.silentRestarts++;
      this.options.log.warn(
        { groupId: this.options.groupId, silentForMs: silentFor },
        "no heartbeat for two session timeouts; making the consumer again",
      );
      void this.restart();
      return;
    }
    await Promise.all(
      [...this.owned.values()].map((owned) =>
        this.commitOne(owned).then(
          () => {
            owned.commitFailingSince = undefined;
          },
          (error) => {
            owned.commitFailingSince ??= now;
            this.options.log.debug(
              { err: error, topic: owned.lease.topic, partition: owned.lease.partition },
              "commit deferred",
            );
          },
        ),
      ),
    );
    const stuckFor = Math.max(0, ...[...this.owned.values()].map((o) => now - (o.commitFailingSince ?? now)));
    if (stuckFor > 2 * this.options.sessionTimeoutMs && !this.restarting && !this.stopping) {
      this.stats.stuckRestarts++;
      this.options.log.warn(
        { groupId: this.options.groupId, stuckForMs: stuckFor },
        "commits failing for two session timeouts; making the consumer again",
      );
      void this.restart();
    }
  }

  /**
   * The partitions an operator holds now (`topic/partition` pairs of this group): owned ones stop or start
   * dispatching at once; one taken later starts held.
   */
  hold(partitions: readonly { topic: string; partition: number }[]): void {
    this.held = new Set(partitions.map((p) => tp(p.topic, p.partition)));
    for (const [id, o] of this.owned) o.worker.hold(this.held.has(id));
  }

  /** The topics this consumer reads. */
  get topics(): string[] {
    return [...this.options.topics];
  }

  /** Whether this member is handling that partition now (it took the lease). */
  owns(topic: string, partition: number): boolean {
    return this.owned.has(tp(topic, partition));
  }

  /** The leases of the partitions handled now. */
  leases(): PartitionLease[] {
    return [...this.owned.values()].map((o) => o.lease);
  }

  /** Partitions owned now, with their backlog, running turns and positions, and the ones not fetched now. */
  partitions() {
    const paused = new Set(
      (() => {
        try {
          return this.consumer.paused().flatMap((p) => p.partitions.map((n) => tp(p.topic, n)));
        } catch {
          return []; // not running
        }
      })(),
    );
    return [...this.owned.entries()].map(([id, o]) => ({
      topic: o.lease.topic,
      partition: o.lease.partition,
      epoch: o.lease.epoch,
      backlog: o.worker.backlog,
      active: o.worker.active,
      next: o.worker.nextOffset?.toString(),
      committed: o.committed.toString(),
      paused: paused.has(id),
      held: o.worker.isHeld,
    }));
  }

  /** Assigned partitions not handled now: being taken, or fenced and waiting. */
  unowned() {
    return [...this.assigned]
      .filter((id) => !this.owned.has(id))
      .map((id) => ({
        partition: id.replace("\u0000", "/"),
        fenced: this.fencedUntilRejoin.has(id),
        taking: this.opening.has(id),
      }));
  }

  /** Stops fetching, drains running turns (bounded), commits, and leaves the group. */
  async stop(): Promise<void> {
    this.stopping = true;
    clearInterval(this.commitTimer);
    const owned = [...this.owned.values()];
    const drained = await Promise.all(owned.map((o) => o.worker.drain(this.options.drainTimeoutMs)));
    this.stats.drainTimeouts += drained.filter((d) => !d).length;
    await this.commit();
    await this.consumer.disconnect();
    await this.admin?.disconnect().catch(() => {});
    for (const timer of this.fencedUntilRejoin.values()) clearTimeout(timer);
    for (const o of owned) this.options.release(o.lease.topic, o.lease.partition);
    this.owned.clear();
  }
}

function toInbound(
  topic: string,
  partition: number,
  message: EachBatchPayload["batch"]["messages"][number],
): InboundRecord {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(message.headers ?? {})) {
    if (value === undefined) continue;
    headers[name] = (Array.isArray(value) ? value[value.length - 1] : value)?.toString() ?? "";
  }
  return {
    topic,
    partition,
    offset: BigInt(message.offset),
    key: message.key ? message.key.toString() : null,
    value: message.value,
    headers,
    timestamp: message.timestamp,
  };
}
