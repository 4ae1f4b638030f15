/**
 * The notification reactor: tells the customer about their booking, repair and payment (notification-messages.ts
 * says what and on which channels). Each message is a `notification` row, unique per source event and channel;
 * only a newly written row is sent, and announced as NOTIFICATION_SENT (keyed by customer) through the outbox.
 *
 * The send happens before the transaction commits: if the commit then fails, the retry sends again. Delivery to
 * the customer is therefore at least once; the row and the NOTIFICATION_SENT event are exactly once.
 */
import { schema } from "../../db/index.ts";
import { defineReactor, type EmitEffect, type ReactorDefinition } from "../../runtime/index.ts";
import { emitted } from "../events.ts";
import { knownEvent } from "./known-event.ts";
import { notificationFor } from "./notification-messages.ts";
import type { Channel, NotificationSender, ReactorDeps } from "./reactor-deps.ts";

/** The default sender of a channel: the Postgres row is the record, so there is nothing else to do. */
const recordOnly = (channel: Channel): NotificationSender => ({ channel, send: async () => {} });

export function notificationReactor(deps: ReactorDeps): ReactorDefinition {
  const senders = new Map<Channel, NotificationSender>(
    (["email", "sms", "push"] as const).map((channel) => [
      channel,
      deps.senders?.find((s) => s.channel === channel) ?? recordOnly(channel),
    ]),
  );
  return defineReactor({
    name: "notification",
    topics: [
      deps.topics.event("booking-events"),
      deps.topics.event("repair-events"),
      deps.topics.event("payment-events"),
      deps.topics.event("compensation-events"),
    ],
    async handle(envelope, { tx }) {
      const event = knownEvent(envelope);
      const message = event && notificationFor(event);
      if (!message) return;
      const { customerId, template, subject, body } = message;
      const emit: EmitEffect[] = [];
      for (const channel of message.channels) {
        const [row] = await tx
          .insert(schema.notification)
          .values({
            id: Bun.randomUUIDv7(),
            sourceEventId: envelope.eventId,
            sourceEventType: envelope.eventType,
            channel,
            customerId,
            template,
            subject,
            body,
            correlationId: envelope.correlationId,
          })
          .onConflictDoNothing({ target: [schema.notification.sourceEventId, schema.notification.channel] })
          .returning({ id: schema.notification.id });
        if (!row) continue; // sent on this channel already
        // A sender that throws fails the turn: the row rolls back with it and the retry tries again.
        await senders.get(channel)?.send({ customerId, subject, body, template });
        emit.push(
          emitted(
            deps.topics,
            "NOTIFICATION_SENT",
            {
              notificationId: row.id,
              customerId,
              channel,
              template,
              sourceEventId: envelope.eventId,
              sourceEventType: envelope.eventType,
            },
            customerId,
          ),
        );
      }
      return { emit };
    },
  });
}
