/**
 * The audit reactor: one append-only `audit_log` row per event of every event topic, with where it was read
 * (topic, partition, offset) and its correlation and causation ids, so one user action's trail can be followed.
 *
 * It records every envelope as it came, known type or not, payload on schema or not: the audit trail is what
 * went through the topics, not what the other reactors made of it.
 */
import { schema } from "../../db/index.ts";
import { defineReactor, type ReactorDefinition } from "../../runtime/index.ts";
import { eventTopics } from "../../topics/index.ts";
import type { ReactorDeps } from "./reactor-deps.ts";

export function auditReactor(deps: ReactorDeps): ReactorDefinition {
  return defineReactor({
    name: "audit",
    topics: eventTopics.map((topic) => deps.topics.event(topic)),
    async handle(envelope, { tx, topic, partition, offset }) {
      await tx
        .insert(schema.auditLog)
        .values({
          eventId: envelope.eventId,
          eventType: envelope.eventType,
          topic,
          partition,
          offset: BigInt(offset),
          entityId: envelope.entityId,
          correlationId: envelope.correlationId,
          causationId: envelope.causationId,
          occurredAt: new Date(envelope.occurredAt),
          payload: envelope.payload,
        })
        // The inbox already skips a redelivery; this keeps the row single should the reactor ever be renamed.
        .onConflictDoNothing({ target: schema.auditLog.eventId });
    },
  });
}
