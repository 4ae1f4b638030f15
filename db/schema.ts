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
  index,
  integer,
  jsonb,
  pgTable,
  primaryKey,
  text,
  timestamp,
  uuid,
} from "drizzle-orm/pg-core";

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
    value: text("value").notNull(),
    createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
    publishedAt: timestamp("published_at", { withTimezone: true }),
  },
  (t) => [index("outbox_unpublished_idx").on(t.id).where(sql`${t.publishedAt} is null`)],
);

/** Event ids a reactor has handled, written in the same transaction as the reactor's own effect. */
export const inbox = pgTable(
  "inbox",
  {
    consumer: text("consumer").notNull(),
    eventId: uuid("event_id").notNull(),
    handledAt: timestamp("handled_at", { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [primaryKey({ columns: [t.consumer, t.eventId] })],
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
