/**
 * Pitstop's tables (drizzle). Migrations in db/migrations are generated from this file by drizzle-kit
 * (`npm run db:generate`) and committed; they are applied at every start (db/migrate.ts).
 *
 * The runtime's own tables come first; the car service's tables join them as the domain is built.
 */
import { sql } from "drizzle-orm";
import {
  bigint,
  bigserial,
  boolean,
  customType,
  index,
  integer,
  jsonb,
  pgTable,
  primaryKey,
  text,
  timestamp,
  uniqueIndex,
  uuid,
} from "drizzle-orm/pg-core";

/** Raw bytes (a Kafka record's value may be anything, and a dead letter keeps it exactly). */
const bytea = customType<{ data: Buffer; driverData: Buffer }>({ dataType: () => "bytea" });

/** The durable state of one actor, and the last mailbox offset it handled (redelivered records at or below it are skipped). */
export const actorState = pgTable(
  "actor_state",
  {
    kind: text("kind").notNull(),
    actorKey: text("actor_key").notNull(),
    state: jsonb("state").notNull(),
    version: bigint("version", { mode: "number" }).notNull().default(0),
    lastPartition: integer("last_partition"),
    lastOffset: bigint("last_offset", { mode: "bigint" }),
    /** Set when a failed message parked the key: later messages wait in dead_letter until an operator acts. */
    parkedAt: timestamp("parked_at", { withTimezone: true }),
    updatedAt: timestamp("updated_at", { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [
    primaryKey({ columns: [t.kind, t.actorKey] }),
    // "A customer's bookings / repairs / invoices": the car service's actors keep their customer in the state.
    index("actor_state_customer_idx").on(t.kind, sql`(${t.state}->>'customerId')`),
  ],
);

/** Records written in the same transaction as a turn, published to Kafka afterwards by the relay. */
export const outbox = pgTable(
  "outbox",
  {
    id: bigserial("id", { mode: "bigint" }).primaryKey(),
    topic: text("topic").notNull(),
    messageKey: text("message_key").notNull(),
    headers: jsonb("headers").$type<Record<string, string>>().notNull().default({}),
    /** The record's value as text (JSON envelopes)... */
    value: text("value"),
    /** ...or as raw bytes (a dead letter's original value). Exactly one of the two is set. */
    rawValue: bytea("raw_value"),
    /**
     * The partition lease the row was written under (its consumer group, topic, partition and epoch): the owner
     * of that partition publishes it, the next owner what a lost one left. Null for rows written outside a turn
     * (an operator's replay), which any host's relay publishes.
     */
    sourceGroup: text("source_group"),
    sourceTopic: text("source_topic"),
    sourcePartition: integer("source_partition"),
    sourceEpoch: bigint("source_epoch", { mode: "number" }),
    createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
    publishedAt: timestamp("published_at", { withTimezone: true }),
  },
  (t) => [
    index("outbox_unpublished_idx").on(t.id).where(sql`${t.publishedAt} is null`),
    index("outbox_unpublished_source_idx")
      .on(t.sourceGroup, t.sourceTopic, t.sourcePartition, t.id)
      .where(sql`${t.publishedAt} is null`),
    // Housekeeping deletes published rows by age (runtime/outbox-relay.ts).
    index("outbox_published_at_idx").on(t.publishedAt).where(sql`${t.publishedAt} is not null`),
  ],
);

/** Event ids a reactor has handled, written in the same transaction as the reactor's own effect. */
export const inbox = pgTable(
  "inbox",
  {
    consumer: text("consumer").notNull(),
    eventId: uuid("event_id").notNull(),
    handledAt: timestamp("handled_at", { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [
    primaryKey({ columns: [t.consumer, t.eventId] }),
    // Housekeeping deletes ids past retention by age (runtime/outbox-relay.ts).
    index("inbox_handled_at_idx").on(t.handledAt),
  ],
);

/** Who owns a partition of a consumer group, and since which epoch: the fence against zombie hosts. */
export const partitionOwner = pgTable(
  "partition_owner",
  {
    groupId: text("group_id").notNull(),
    topic: text("topic").notNull(),
    partition: integer("partition").notNull(),
    epoch: bigint("epoch", { mode: "number" }).notNull(),
    owner: text("owner").notNull(),
    updatedAt: timestamp("updated_at", { withTimezone: true }).notNull().defaultNow(),
    /**
     * Set when the owner gave the partition up in a rebalance while its epoch was still current: a member whose
     * turns this epoch fenced may take it back at once instead of after a session timeout (fence.ts).
     */
    releasedAt: timestamp("released_at", { withTimezone: true }),
  },
  (t) => [primaryKey({ columns: [t.groupId, t.topic, t.partition] })],
);

/** Records that could not be handled: kept here (listing, replay) and published to the source's `.dlt` topic. */
export const deadLetter = pgTable(
  "dead_letter",
  {
    id: bigserial("id", { mode: "number" }).primaryKey(),
    /** The actor kind or reactor that failed on it. */
    consumer: text("consumer").notNull(),
    sourceTopic: text("source_topic").notNull(),
    sourcePartition: integer("source_partition").notNull(),
    sourceOffset: bigint("source_offset", { mode: "bigint" }).notNull(),
    messageKey: text("message_key"),
    value: bytea("value"),
    headers: jsonb("headers").$type<Record<string, string>>().notNull().default({}),
    errorClass: text("error_class").notNull(),
    /** What the cause said of itself: a Postgres SQLSTATE (40P01: deadlock), a Node or Kafka error code. */
    errorCode: text("error_code"),
    errorMessage: text("error_message").notNull(),
    retryable: boolean("retryable").notNull(),
    attempts: integer("attempts").notNull(),
    firstFailureAt: timestamp("first_failure_at", { withTimezone: true }).notNull(),
    lastFailureAt: timestamp("last_failure_at", { withTimezone: true }).notNull(),
    host: text("host").notNull(),
    /**
     * dead: failed itself; parked: held because an earlier message of its key failed; replayed; skipped: an
     * operator discarded it (kept, with who and why, for audit).
     */
    status: text("status").$type<"dead" | "parked" | "replayed" | "skipped">().notNull(),
    replayedAt: timestamp("replayed_at", { withTimezone: true }),
    skippedAt: timestamp("skipped_at", { withTimezone: true }),
    skippedBy: text("skipped_by"),
    skipReason: text("skip_reason"),
    createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [
    uniqueIndex("dead_letter_source_idx").on(t.consumer, t.sourceTopic, t.sourcePartition, t.sourceOffset),
    index("dead_letter_key_idx").on(t.consumer, t.messageKey, t.id),
  ],
);

/**
 * Partitions an operator paused: their owner dispatches nothing new from them (running turns finish) until the
 * row is deleted. Kept here, not in a host's memory, so the pause holds across rebalances and restarts.
 */
export const partitionPause = pgTable(
  "partition_pause",
  {
    groupId: text("group_id").notNull(),
    topic: text("topic").notNull(),
    partition: integer("partition").notNull(),
    pausedBy: text("paused_by").notNull(),
    reason: text("reason"),
    pausedAt: timestamp("paused_at", { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [primaryKey({ columns: [t.groupId, t.topic, t.partition] })],
);

/** Every process's latest report of itself (ops/registry.ts writes it every few seconds): the hosts view. */
export const processReport = pgTable("process_report", {
  id: text("id").primaryKey(),
  /** The deployment it belongs to (several share a database: the tests' namespaces). */
  namespace: text("namespace").notNull(),
  role: text("role").notNull(),
  version: text("version").notNull(),
  startedAt: timestamp("started_at", { withTimezone: true }).notNull(),
  seenAt: timestamp("seen_at", { withTimezone: true }).notNull(),
  report: jsonb("report").$type<Record<string, unknown>>().notNull(),
});

/** What operators did through the ops API: who, what, to what, when, and how it ended. Append-only. */
export const opsAudit = pgTable(
  "ops_audit",
  {
    id: bigserial("id", { mode: "number" }).primaryKey(),
    /** The deployment operated on (several share a database: the tests' namespaces). */
    namespace: text("namespace").notNull(),
    at: timestamp("at", { withTimezone: true }).notNull().defaultNow(),
    who: text("who").notNull(),
    action: text("action").notNull(),
    target: jsonb("target").$type<Record<string, unknown>>().notNull(),
    outcome: jsonb("outcome").$type<Record<string, unknown>>().notNull(),
  },
  (t) => [index("ops_audit_namespace_idx").on(t.namespace, t.id)],
);

/** Durable timers set by actor turns; the owner of the key's partition fires them through the mailbox. */
export const actorTimer = pgTable(
  "actor_timer",
  {
    kind: text("kind").notNull(),
    actorKey: text("actor_key").notNull(),
    name: text("name").notNull(),
    mailbox: text("mailbox").notNull(),
    partition: integer("partition").notNull(),
    fireAt: timestamp("fire_at", { withTimezone: true }).notNull(),
    messageType: text("message_type").notNull(),
    payload: jsonb("payload").$type<Record<string, unknown>>().notNull(),
    correlationId: uuid("correlation_id").notNull(),
  },
  (t) => [
    primaryKey({ columns: [t.kind, t.actorKey, t.name] }),
    index("actor_timer_due_idx").on(t.kind, t.partition, t.fireAt),
    // A host's one-read-per-tick question (timers.ts): which partitions have anything due at all.
    index("actor_timer_fire_at_idx").on(t.fireAt),
  ],
);

// ---------------------------------------------------------------------------------------------------------------
// The car service. Entities (bookings, repairs, invoices, the job saga) are actors: their state is actor_state.
// These tables belong to the reactors, the simulated payment gateway and the HTTP edge.

/** Spare parts and their stock (inventory reactor). Stock never goes below zero. */
export const part = pgTable("part", {
  id: text("id").primaryKey(),
  name: text("name").notNull(),
  unitPrice: integer("unit_price").notNull(),
  stock: integer("stock").notNull(),
  lowStockThreshold: integer("low_stock_threshold").notNull(),
  lowStock: boolean("low_stock").notNull().default(false),
  updatedAt: timestamp("updated_at", { withTimezone: true }).notNull().defaultNow(),
});

/** Each stock change and why (the event that caused it); `shortfall` is what was used but not in stock. */
export const partMovement = pgTable(
  "part_movement",
  {
    id: bigserial("id", { mode: "number" }).primaryKey(),
    partId: text("part_id").notNull(),
    eventId: uuid("event_id").notNull(),
    repairId: text("repair_id"),
    quantity: integer("quantity").notNull(),
    shortfall: integer("shortfall").notNull().default(0),
    at: timestamp("at", { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [uniqueIndex("part_movement_event_idx").on(t.eventId, t.partId)],
);

/** Every message the notification reactor sent: one per source event and channel. */
export const notification = pgTable(
  "notification",
  {
    id: uuid("id").primaryKey(),
    sourceEventId: uuid("source_event_id").notNull(),
    sourceEventType: text("source_event_type").notNull(),
    channel: text("channel").$type<"email" | "sms" | "push">().notNull(),
    customerId: text("customer_id").notNull(),
    template: text("template").notNull(),
    subject: text("subject").notNull(),
    body: text("body").notNull(),
    correlationId: uuid("correlation_id").notNull(),
    sentAt: timestamp("sent_at", { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [
    uniqueIndex("notification_source_channel_idx").on(t.sourceEventId, t.channel),
    index("notification_customer_idx").on(t.customerId, t.sentAt),
  ],
);

/** The audit trail: one append-only row per event of every event topic. */
export const auditLog = pgTable(
  "audit_log",
  {
    id: bigserial("id", { mode: "number" }).primaryKey(),
    eventId: uuid("event_id").notNull(),
    eventType: text("event_type").notNull(),
    topic: text("topic").notNull(),
    partition: integer("partition").notNull(),
    offset: bigint("offset", { mode: "bigint" }).notNull(),
    entityId: text("entity_id").notNull(),
    correlationId: uuid("correlation_id").notNull(),
    causationId: uuid("causation_id"),
    occurredAt: timestamp("occurred_at", { withTimezone: true }).notNull(),
    payload: jsonb("payload").notNull(),
    recordedAt: timestamp("recorded_at", { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [
    uniqueIndex("audit_log_event_idx").on(t.eventId),
    index("audit_log_correlation_idx").on(t.correlationId),
  ],
);

/** Daily figures (analytics reactor): bookings, revenue, notifications by channel... Redis mirrors them. */
export const dailyStat = pgTable(
  "daily_stat",
  {
    day: text("day").notNull(),
    metric: text("metric").notNull(),
    value: bigint("value", { mode: "number" }).notNull(),
  },
  (t) => [primaryKey({ columns: [t.day, t.metric] })],
);

/**
 * Daily figures not yet folded into `daily_stat`: the analytics reactor inserts one row per event and metric
 * (insert-only: no hot row on the event's path); a folder moves them into the totals. A day's figure is the
 * total plus its pending deltas.
 */
export const dailyStatDelta = pgTable(
  "daily_stat_delta",
  {
    eventId: uuid("event_id").notNull(),
    day: text("day").notNull(),
    metric: text("metric").notNull(),
    value: bigint("value", { mode: "number" }).notNull(),
  },
  (t) => [primaryKey({ columns: [t.eventId, t.metric] }), index("daily_stat_delta_day_idx").on(t.day)],
);

/** The simulated payment gateway's own ledger: what it charged, by idempotency key. */
export const gatewayCharge = pgTable(
  "gateway_charge",
  {
    id: uuid("id").primaryKey(),
    idempotencyKey: text("idempotency_key").notNull(),
    reference: text("reference").notNull(),
    amount: integer("amount").notNull(),
    currency: text("currency").notNull(),
    cardToken: text("card_token").notNull(),
    status: text("status").$type<"approved" | "declined" | "refunded">().notNull(),
    reason: text("reason"),
    calls: integer("calls").notNull().default(1),
    createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
    refundedAt: timestamp("refunded_at", { withTimezone: true }),
  },
  (t) => [uniqueIndex("gateway_charge_key_idx").on(t.idempotencyKey)],
);

/** HTTP requests made with an Idempotency-Key: the first one's answer is the answer to every retry. */
export const idempotentRequest = pgTable(
  "idempotent_request",
  {
    principal: text("principal").notNull(),
    key: text("key").notNull(),
    route: text("route").notNull(),
    requestHash: text("request_hash").notNull(),
    statusCode: integer("status_code"),
    response: jsonb("response"),
    createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [primaryKey({ columns: [t.principal, t.key, t.route] })],
);
