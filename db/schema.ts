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
  (t) => [primaryKey({ columns: [t.kind, t.actorKey] })],
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
    createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
    publishedAt: timestamp("published_at", { withTimezone: true }),
  },
  (t) => [
    index("outbox_unpublished_idx").on(t.id).where(sql`${t.publishedAt} is null`),
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
    errorMessage: text("error_message").notNull(),
    retryable: boolean("retryable").notNull(),
    attempts: integer("attempts").notNull(),
    firstFailureAt: timestamp("first_failure_at", { withTimezone: true }).notNull(),
    lastFailureAt: timestamp("last_failure_at", { withTimezone: true }).notNull(),
    host: text("host").notNull(),
    /** dead: failed itself; parked: held because an earlier message of its key failed; replayed. */
    status: text("status").$type<"dead" | "parked" | "replayed">().notNull(),
    replayedAt: timestamp("replayed_at", { withTimezone: true }),
    createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [
    uniqueIndex("dead_letter_source_idx").on(t.consumer, t.sourceTopic, t.sourcePartition, t.sourceOffset),
    index("dead_letter_key_idx").on(t.consumer, t.messageKey, t.id),
  ],
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
  ],
);
