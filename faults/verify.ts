/**
 * Reading a fault run back, once the system is quiet: everything the clients were told, every record on Kafka,
 * every row in Postgres and every cached entry in Redis, checked against each other. Each check counts
 * violations; a healthy run has zero everywhere. The run has a database and a namespace of its own, so every
 * row and record read here is the run's.
 */
import type { Kafka } from "kafkajs";
import postgres from "postgres";
import { createDomain } from "../actors/index.ts";
import { consumerGroupsOf, openRedis } from "../runtime/index.ts";
import { decodeEnvelope, type Envelope, eventTopics, mailboxTopics, topicIn } from "../topics/index.ts";
import type { LoadReport } from "./load.ts";

/** A record read back from a topic: decoded, or why not. */
export interface ReadRecord {
  topic: string;
  partition: number;
  offset: string;
  key: string | null;
  envelope?: Envelope;
}

export interface PoisonSent {
  /** Mailbox topic (the namespace's) and the kind that reads it. */
  topic: string;
  kind: string;
  what: string;
}

export interface Verification {
  lost: { count: number; examples: string[] };
  duplicateEffects: { count: number; examples: string[] };
  orderViolations: { count: number; examples: string[] };
  staleWrites: { count: number; examples: string[] };
  sagaViolations: { count: number; examples: string[] };
  deadLetters: { expected: number; found: number; unexpected: string[] };
  staleCacheReads: { count: number; examples: string[] };
  facts: Record<string, number>;
}

interface Deps {
  kafka: Kafka;
  databaseUrl: string;
  redisUrl: string;
  namespace: string;
  baseUrl: string;
  adminToken: string;
}

/** The namespace's domain definitions (its actors and reactors), as its hosts make them. */
function domainOf(namespace: string) {
  const redis = openRedis("redis://127.0.0.1:1/0"); // never connected: the definitions only hold it
  const domain = createDomain({
    namespace,
    sql: undefined as never,
    redis,
    settings: {
      invoiceDueMs: 1,
      paymentAttempts: 1,
      paymentRetryMs: 0,
      answerTimeoutMs: 1,
      checkIntervalMs: 1,
      noShowGraceMs: 0,
    },
  });
  redis.disconnect();
  return domain;
}

/** The consumer groups of the namespace and the topics each reads (as its hosts name them). */
export function groupsOf(namespace: string) {
  return consumerGroupsOf({ ...domainOf(namespace), groupPrefix: `pitstop-${namespace}` });
}

/**
 * Who must handle each record: every actor kind its mailbox's, every reactor its topics' (the reactors share one
 * consumer group, but each keeps its own inbox rows and dead letters, under its name).
 */
export function readersOf(namespace: string): { consumer: string; topics: string[] }[] {
  const domain = domainOf(namespace);
  return [
    ...domain.actors.map((a) => ({ consumer: a.kind, topics: [a.mailbox] })),
    ...domain.reactors.map((r) => ({ consumer: r.name, topics: r.topics })),
  ];
}

/** Each group's committed offset and each topic's end, for every partition the namespace's groups read. */
export async function positionsOf(kafka: Kafka, namespace: string) {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const ends = new Map<string, bigint>();
    const committed = new Map<string, bigint>();
    for (const group of groupsOf(namespace)) {
      for (const topic of await admin.fetchOffsets({ groupId: group.groupId, topics: group.topics })) {
        if (![...ends.keys()].some((k) => k.startsWith(`${topic.topic}[`))) {
          for (const o of await admin.fetchTopicOffsets(topic.topic))
            ends.set(`${topic.topic}[${o.partition}]`, BigInt(o.high));
        }
        for (const p of topic.partitions) {
          committed.set(
            `${group.groupId} ${topic.topic}[${p.partition}]`,
            BigInt(p.offset) < 0n ? 0n : BigInt(p.offset),
          );
        }
      }
    }
    return { ends, committed };
  } finally {
    await admin.disconnect();
  }
}

/** Total lag of the namespace's groups (committed offset to end, every partition), and partitions behind. */
export async function lagOf(kafka: Kafka, namespace: string): Promise<{ total: number; behind: string[] }> {
  const positions = await positionsOf(kafka, namespace);
  return behindOf(positions, positions.ends);
}

/** How far the committed offsets are behind `ends` (the topics' ends now, or as they were at some moment). */
export function behindOf(
  { committed }: { committed: Map<string, bigint> },
  ends: Map<string, bigint>,
): { total: number; behind: string[] } {
  let total = 0;
  const behind: string[] = [];
  for (const [id, at] of committed) {
    const end = ends.get(id.slice(id.indexOf(" ") + 1)) ?? 0n;
    if (end > at) {
      total += Number(end - at);
      behind.push(`${id} ${end - at}`);
    }
  }
  return { total, behind };
}

/** Outbox rows not published yet, and timers already due (work still in flight). */
export async function inFlight(databaseUrl: string): Promise<{ outbox: number; dueTimers: number }> {
  const sql = postgres(databaseUrl, { max: 1, onnotice: () => {} });
  try {
    const [row] = await sql<{ outbox: number; timers: number }[]>`
      select (select count(*)::int from outbox where published_at is null) as outbox,
             (select count(*)::int from actor_timer where fire_at <= now() - interval '2 seconds') as timers`;
    return { outbox: row?.outbox ?? 0, dueTimers: row?.timers ?? 0 };
  } finally {
    await sql.end();
  }
}

/** Every record of the namespace's event and mailbox topics, read from the start to the end. */
export async function readAll(kafka: Kafka, namespace: string): Promise<ReadRecord[]> {
  const topics = [...eventTopics, ...mailboxTopics].map((t) => topicIn(namespace, t));
  const admin = kafka.admin();
  await admin.connect();
  const ends = new Map<string, number>();
  let expected = 0;
  for (const topic of topics) {
    for (const o of await admin.fetchTopicOffsets(topic)) {
      ends.set(`${topic}/${o.partition}`, Number(o.high));
      expected += Number(o.high) - Number(o.low);
    }
  }
  await admin.disconnect();
  const records: ReadRecord[] = [];
  if (expected === 0) return records;
  const consumer = kafka.consumer({
    groupId: `faults-reader-${Bun.randomUUIDv7()}`,
    maxBytes: 50 * 1024 * 1024,
  });
  await consumer.connect();
  await consumer.subscribe({ topics, fromBeginning: true });
  let seen = 0;
  const done = new Promise<void>((resolve) => {
    void consumer.run({
      eachBatch: async ({ batch }) => {
        for (const m of batch.messages) {
          let envelope: Envelope | undefined;
          try {
            envelope = decodeEnvelope(m.value);
          } catch {}
          records.push({
            topic: batch.topic,
            partition: batch.partition,
            offset: m.offset,
            key: m.key?.toString() ?? null,
            envelope,
          });
          seen++;
        }
        if (seen >= expected) resolve();
      },
    });
  });
  await Promise.race([done, Bun.sleep(120_000)]);
  await consumer.disconnect();
  return records;
}

const RANKS: Record<string, Record<string, number>> = {
  "booking-events": {
    BOOKING_CREATED: 1,
    BOOKING_RESCHEDULED: 2,
    BOOKING_IN_SERVICE: 3,
    BOOKING_AWAITING_PAYMENT: 4,
    BOOKING_PAID: 5,
    BOOKING_CLOSED: 6,
    BOOKING_CANCELLED: 99,
    BOOKING_REJECTED: 99,
  },
  "repair-events": { REPAIR_STARTED: 1, REPAIR_IN_PROGRESS: 2, REPAIR_COMPLETED: 9 },
  "payment-events": {
    INVOICE_CREATED: 1,
    PAYMENT_COMPLETED: 2,
    PAYMENT_FAILED: 2,
    PAYMENT_REFUNDED: 3,
    INVOICE_VOIDED: 3,
  },
};
const STAGE_RANK: Record<string, number> = { DIAGNOSING: 2, REPAIRING: 3, TESTING: 4 };

/** Checks everything; the system must be quiet (zero lag, nothing in flight). */
export async function verify(
  deps: Deps,
  load: LoadReport,
  poison: PoisonSent[],
  records: ReadRecord[],
): Promise<Verification> {
  const sql = postgres(deps.databaseUrl, { max: 4, onnotice: () => {} });
  const redis = openRedis(deps.redisUrl);
  const v: Verification = {
    lost: { count: 0, examples: [] },
    duplicateEffects: { count: 0, examples: [] },
    orderViolations: { count: 0, examples: [] },
    staleWrites: { count: 0, examples: [] },
    sagaViolations: { count: 0, examples: [] },
    deadLetters: { expected: 0, found: 0, unexpected: [] },
    staleCacheReads: { count: 0, examples: [] },
    facts: {},
  };
  const note = (check: { count: number; examples: string[] }, what: string) => {
    check.count++;
    if (check.examples.length < 10) check.examples.push(what);
  };
  try {
    const ns = deps.namespace;
    const bare = (topic: string) => (ns ? topic.slice(ns.length + 1) : topic);
    const states = new Map<string, Record<string, unknown> & { status: string; version: number }>();
    for (const row of await sql<{ kind: string; actor_key: string; state: never; version: string }[]>`
      select kind, actor_key, state, version from actor_state`) {
      states.set(`${row.kind}/${row.actor_key}`, {
        ...(row.state as object),
        rowVersion: Number(row.version),
      } as never);
    }
    const state = (kind: string, key: string | undefined) => (key ? states.get(`${kind}/${key}`) : undefined);

    // 1. Every record was handled by every consumer that reads it: an inbox row, or a dead letter.
    const inbox = new Set(
      (await sql<{ consumer: string; event_id: string }[]>`select consumer, event_id from inbox`).map(
        (r) => `${r.consumer}/${r.event_id}`,
      ),
    );
    const letters = await sql<
      {
        consumer: string;
        source_topic: string;
        source_partition: number;
        source_offset: string;
        status: string;
        error_class: string;
        error_code: string | null;
        message_key: string | null;
      }[]
    >`select consumer, source_topic, source_partition, source_offset, status, error_class, error_code, message_key from dead_letter`;
    const lettered = new Set(
      letters.map((l) => `${l.consumer}/${l.source_topic}/${l.source_partition}/${l.source_offset}`),
    );
    const readers = new Map<string, string[]>();
    for (const g of readersOf(ns))
      for (const t of g.topics) readers.set(t, [...(readers.get(t) ?? []), g.consumer]);
    const published = new Map<string, number>();
    for (const r of records) {
      for (const consumer of readers.get(r.topic) ?? []) {
        const handled =
          (r.envelope && inbox.has(`${consumer}/${r.envelope.eventId}`)) ||
          lettered.has(`${consumer}/${r.topic}/${r.partition}/${r.offset}`);
        if (!handled)
          note(
            v.lost,
            `${consumer} never handled ${r.topic}[${r.partition}]@${r.offset} ${r.envelope?.eventType ?? "(undecodable)"}`,
          );
      }
      if (r.envelope) published.set(r.envelope.eventId, (published.get(r.envelope.eventId) ?? 0) + 1);
    }
    v.facts.records = records.length;
    v.facts.publishedTwice = [...published.values()].filter((n) => n > 1).length;

    // 2. What the clients were told holds.
    for (const c of load.chains) {
      const booking = state("booking", c.bookingId);
      if (c.confirmed && (!booking || ["NEW", "PENDING", "REJECTED"].includes(booking.status))) {
        note(v.lost, `booking ${c.bookingId} answered confirmed is ${booking?.status ?? "missing"}`);
      }
      const job = state("job-saga", c.bookingId);
      if (
        c.repairCompleted &&
        !["INVOICING", "AWAITING_PAYMENT", "PAID", "COMPENSATED"].includes(job?.status ?? "")
      ) {
        note(v.lost, `job ${c.bookingId} of a completed repair is ${job?.status ?? "missing"}`);
      }
      const invoice = state("invoice", c.invoiceId);
      if (c.payment === "PAID") {
        if (invoice?.status !== "PAID")
          note(v.lost, `invoice ${c.invoiceId} answered PAID is ${invoice?.status}`);
        if (!["PAID", "CLOSED"].includes(booking?.status ?? ""))
          note(v.lost, `booking ${c.bookingId} paid is ${booking?.status}`);
        if (job?.status !== "PAID") note(v.lost, `job ${c.bookingId} paid is ${job?.status}`);
      }
      if (c.payment === "DECLINED") {
        if (!["FAILED", "VOID"].includes(invoice?.status ?? ""))
          note(v.lost, `invoice ${c.invoiceId} declined is ${invoice?.status}`);
        if (booking?.status !== "CANCELLED")
          note(v.lost, `booking ${c.bookingId} declined is ${booking?.status}`);
        if (job?.status !== "COMPENSATED") note(v.lost, `job ${c.bookingId} declined is ${job?.status}`);
      }
    }

    // 3. Effects once: charges, the day's figures against the distinct events, audit rows, invoices per job.
    const events = new Map<string, Envelope & { topic: string }>();
    for (const r of records) {
      if (r.envelope && eventTopics.includes(bare(r.topic) as never))
        events.set(r.envelope.eventId, { ...r.envelope, topic: r.topic });
    }
    const charges = await sql<{ reference: string; status: string; amount: number }[]>`
      select reference, status, amount from gateway_charge`;
    const approvedBy = new Map<string, number>();
    for (const ch of charges) {
      if (ch.status !== "declined") approvedBy.set(ch.reference, (approvedBy.get(ch.reference) ?? 0) + 1);
    }
    for (const [invoiceId, n] of approvedBy)
      if (n > 1) note(v.duplicateEffects, `invoice ${invoiceId} charged ${n} times`);
    const distinct = (type: string) => [...events.values()].filter((e) => e.eventType === type);
    const expectedFigures: Record<string, number> = {
      bookings: distinct("BOOKING_CREATED").length,
      cancellations: distinct("BOOKING_CANCELLED").length,
      payments: distinct("PAYMENT_COMPLETED").length,
      revenue: distinct("PAYMENT_COMPLETED").reduce((s, e) => s + Number(e.payload.amount), 0),
      payment_failures: distinct("PAYMENT_FAILED").length,
    };
    for (const channel of ["email", "sms", "push"]) {
      expectedFigures[`notifications.${channel}`] = distinct("NOTIFICATION_SENT").filter(
        (e) => e.payload.channel === channel,
      ).length;
    }
    const figures = new Map(
      (
        await sql<{ metric: string; value: string }[]>`select metric, sum(value)::bigint as value from (
            select metric, value from daily_stat union all select metric, value from daily_stat_delta) as f
          group by metric`
      ).map((r) => [r.metric, Number(r.value)]),
    );
    for (const [metric, want] of Object.entries(expectedFigures)) {
      const got = figures.get(metric) ?? 0;
      if (got > want) note(v.duplicateEffects, `daily ${metric} is ${got}, its distinct events ${want}`);
      if (got < want) note(v.lost, `daily ${metric} is ${got}, its distinct events ${want}`);
    }
    // One audit row per event. (Counted per event, not against the read-back's total: the system stays live
    // while it is read back, and an event published after the read began is audited all the same.)
    for (const row of await sql<{ event_id: string; n: number }[]>`
      select event_id, count(*)::int as n from audit_log group by event_id having count(*) > 1`)
      note(v.duplicateEffects, `event ${row.event_id} audited ${row.n} times`);
    for (const [bookingId, n] of countBy(
      distinct("INVOICE_CREATED").map((e) => String(e.payload.bookingId)),
    )) {
      if (n > 1) note(v.duplicateEffects, `booking ${bookingId} invoiced ${n} times`);
    }
    for (const type of ["BOOKING_CREATED", "REPAIR_COMPLETED", "PAYMENT_COMPLETED"]) {
      for (const [entity, n] of countBy(distinct(type).map((e) => e.entityId))) {
        if (n > 1) note(v.duplicateEffects, `${entity}: ${n} distinct ${type} events`);
      }
    }
    v.facts.events = events.size;

    // 4. Per-entity order: each entity's events, first copies in log order, follow its lifecycle.
    const firstSeen = new Set<string>();
    const lastRank = new Map<string, { rank: number; type: string }>();
    const sorted = records
      .filter((r) => r.envelope && RANKS[bare(r.topic)])
      .sort(
        (a, b) =>
          a.topic.localeCompare(b.topic) || a.partition - b.partition || Number(a.offset) - Number(b.offset),
      );
    for (const r of sorted) {
      const e = r.envelope as Envelope;
      if (firstSeen.has(e.eventId)) continue;
      firstSeen.add(e.eventId);
      const ranks = RANKS[bare(r.topic)] as Record<string, number>;
      let rank = ranks[e.eventType];
      if (rank === undefined) continue;
      if (e.eventType === "REPAIR_IN_PROGRESS")
        rank = (STAGE_RANK[String(e.payload.status)] ?? 2) + Number(e.payload.progress) / 1000;
      const entity = `${bare(r.topic)}/${r.key}`;
      const before = lastRank.get(entity);
      if (before && rank < before.rank)
        note(v.orderViolations, `${entity}: ${e.eventType} after ${before.type}`);
      if (!before || rank >= before.rank) lastRank.set(entity, { rank, type: e.eventType });
    }

    // 5. Fencing: under one partition, rows written under an older epoch never follow rows of a newer one.
    const rows = await sql<{ source: string; id: string; epoch: string }[]>`
      select source_group || '/' || source_topic || '/' || source_partition as source, id, source_epoch as epoch
      from outbox where source_group is not null order by source, id`;
    const newest = new Map<string, number>();
    for (const r of rows) {
      const seen = newest.get(r.source) ?? 0;
      if (Number(r.epoch) < seen)
        note(v.staleWrites, `${r.source}: row ${r.id} of epoch ${r.epoch} after epoch ${seen}`);
      else newest.set(r.source, Number(r.epoch));
    }
    v.facts.outboxRows = rows.length;

    // 6. Sagas: nothing waiting without a timer; no slot over capacity or holding for a dead booking; money.
    const timers = new Set(
      (await sql<{ kind: string; actor_key: string }[]>`select kind, actor_key from actor_timer`).map(
        (t) => `${t.kind}/${t.actor_key}`,
      ),
    );
    const waiting: Record<string, string[]> = {
      booking: ["PENDING", "CONFIRMED", "IN_SERVICE", "AWAITING_PAYMENT"],
      "job-saga": ["OPEN", "REPAIRING", "INVOICING", "AWAITING_PAYMENT"],
    };
    // A timer that just fired is gone while its message is on the way to the actor, which sets the next one:
    // such an entity is looked at again (the system is still live); one still waiting without any is a violation.
    const suspects = [...states].filter(
      ([id, s]) => waiting[id.split("/")[0] as string]?.includes(s.status) && !timers.has(id),
    );
    for (const [id, s] of await stillWithoutTimer(sql, suspects))
      note(v.sagaViolations, `${id} is ${s.status} with no timer`);
    for (const [id, s] of states) {
      const kind = id.split("/")[0] as string;
      if (kind === "slot") {
        const holds = Object.keys((s.holds as Record<string, unknown>) ?? {});
        if (holds.length > 3) note(v.sagaViolations, `${id} holds ${holds.length} of 3 places`);
        for (const bookingId of holds) {
          const b = state("booking", bookingId);
          if (!b || ["CANCELLED", "REJECTED"].includes(b.status))
            note(
              v.sagaViolations,
              `${id} still holds a place for ${b?.status ?? "missing"} booking ${bookingId}`,
            );
        }
      }
      if (
        kind === "booking" &&
        ["CONFIRMED", "IN_SERVICE", "AWAITING_PAYMENT", "PAID", "CLOSED"].includes(s.status)
      ) {
        const slot = state("slot", String(s.slotId));
        if (!(slot?.holds as Record<string, unknown> | undefined)?.[id.slice("booking/".length)]) {
          note(v.sagaViolations, `${id} is ${s.status} without its place in ${s.slotId}`);
        }
      }
      if (kind === "invoice") {
        const approved = charges.filter(
          (ch) => ch.reference === id.slice("invoice/".length) && ch.status === "approved",
        ).length;
        const refunded = charges.filter(
          (ch) => ch.reference === id.slice("invoice/".length) && ch.status === "refunded",
        ).length;
        const ok =
          (s.status === "PAID" && approved === 1 && refunded === 0) ||
          (s.status === "REFUNDED" && approved === 0 && refunded === 1) ||
          (!["PAID", "REFUNDED"].includes(s.status) && approved === 0);
        if (!ok)
          note(
            v.sagaViolations,
            `${id} is ${s.status} with ${approved} approved and ${refunded} refunded charges`,
          );
      }
    }
    const paidTotal = [...states]
      .filter(([id, s]) => id.startsWith("invoice/") && s.status === "PAID")
      .reduce((sum, [, s]) => sum + Number(s.amount), 0);
    const charged = charges.filter((ch) => ch.status === "approved").reduce((sum, ch) => sum + ch.amount, 0);
    if (paidTotal !== charged)
      note(v.sagaViolations, `charges minus refunds ${charged} against paid invoices ${paidTotal}`);
    v.facts.paidInvoices = [...states].filter(
      ([id, s]) => id.startsWith("invoice/") && s.status === "PAID",
    ).length;

    // 7. Dead letters: exactly the poison that reached an actor.
    const httpPoison = load.chains.filter(
      (c) => c.poison && (c.poison.status >= 500 || c.poison.status < 300),
    ).length;
    v.deadLetters.expected = httpPoison + poison.length;
    const dead = letters.filter((l) => l.status === "dead");
    v.deadLetters.found = dead.length;
    v.deadLetters.unexpected = summarize(
      dead.map((l) => `${l.consumer} ${l.error_class}${l.error_code ? ` ${l.error_code}` : ""}`),
    );

    // 8. Caches: Redis and HTTP reads agree with Postgres once the system is quiet.
    const cached = async (key: string) => {
      const raw = await redis.get(key);
      return raw ? (JSON.parse(raw) as { version: number; status: string }) : undefined;
    };
    for (const [id, s] of states) {
      const [kind, key] = id.split("/") as [string, string];
      if (kind === "booking" || kind === "invoice") {
        const c = await cached(`${kind}:${key}`);
        if (c && c.version !== s.version)
          note(
            v.staleCacheReads,
            `${kind}:${key} cached v${c.version} ${c.status}, Postgres v${s.version} ${s.status}`,
          );
      }
      if (kind === "repair") {
        const version = await redis.hget(`repair:status:${key}`, "version");
        if (version !== null && Number(version) !== s.version)
          note(v.staleCacheReads, `repair:status:${key} v${version}, Postgres v${s.version}`);
      }
    }
    for (const c of load.chains.filter((c) => c.bookingId).slice(0, 200)) {
      const s = state("booking", c.bookingId);
      if (!s || s.status === "NEW") continue;
      const response = await fetch(`${deps.baseUrl}/api/v1/bookings/${c.bookingId}`, {
        headers: { authorization: `Bearer ${deps.adminToken}` },
      });
      const body = (await response.json()) as { status?: string; version?: number };
      if (body.version !== s.version)
        note(
          v.staleCacheReads,
          `GET booking ${c.bookingId}: v${body.version} ${body.status}, Postgres v${s.version} ${s.status}`,
        );
    }
    v.facts.bookings = [...states.keys()].filter((k) => k.startsWith("booking/")).length;
    return v;
  } finally {
    redis.disconnect();
    await sql.end();
  }
}

function countBy(values: string[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const v of values) counts.set(v, (counts.get(v) ?? 0) + 1);
  return counts;
}

function summarize(values: string[]): string[] {
  return [...countBy(values)].map(([v, n]) => `${n} x ${v}`);
}

/** The suspects that, over three looks 2 s apart, never had a timer and never moved on from where they were. */
async function stillWithoutTimer<S extends { version: number }>(
  sql: postgres.Sql,
  suspects: [string, S][],
): Promise<[string, S][]> {
  let left = suspects;
  for (let look = 0; look < 3 && left.length > 0; look++) {
    await Bun.sleep(2000);
    const now = await sql<{ id: string; version: string; timer: boolean }[]>`
      select s.kind || '/' || s.actor_key as id, s.version,
        exists (select 1 from actor_timer t where t.kind = s.kind and t.actor_key = s.actor_key) as timer
      from actor_state s where s.kind || '/' || s.actor_key in ${sql(left.map(([id]) => id))}`;
    const fine = new Set(
      now
        .filter((r) => r.timer || Number(r.version) !== left.find(([id]) => id === r.id)?.[1].version)
        .map((r) => r.id),
    );
    left = left.filter(([id]) => !fine.has(id));
  }
  return left;
}
