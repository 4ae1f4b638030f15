/**
 * The car service's events: what happened, in the past tense, one TypeBox schema per type (the same schema is
 * checked where the event is read: reactors decode with it). Each event says which topic it goes to; every
 * payload carries the ids a consumer needs (booking, customer) so no consumer has to look anything up.
 */
import { type Static, type TSchema, Type } from "@sinclair/typebox";
import { TypeCompiler } from "@sinclair/typebox/compiler";
import type { EmitEffect } from "../runtime/index.ts";
import { type EventTopic, type MailboxTopic, topicIn } from "../topics/index.ts";

const Id = Type.String({ minLength: 1, maxLength: 100 });
const Money = Type.Integer({ minimum: 0 });
/** A part used in a repair, priced when it was used (repair completion, invoice lines). */
export const PartUsedSchema = Type.Object({
  partId: Id,
  name: Type.String(),
  quantity: Type.Integer({ minimum: 1 }),
  unitPrice: Money,
});
export type PartUsed = Static<typeof PartUsedSchema>;

export const RepairStage = Type.Union([
  Type.Literal("DIAGNOSING"),
  Type.Literal("REPAIRING"),
  Type.Literal("TESTING"),
]);
export type RepairStage = Static<typeof RepairStage>;

export const EVENTS = {
  "booking-events": {
    BOOKING_CREATED: Type.Object({
      bookingId: Id,
      customerId: Id,
      vehicleId: Id,
      serviceType: Type.String(),
      bookingDate: Type.String(),
      slotId: Id,
    }),
    BOOKING_REJECTED: Type.Object({ bookingId: Id, customerId: Id, slotId: Id, reason: Type.String() }),
    BOOKING_RESCHEDULED: Type.Object({
      bookingId: Id,
      customerId: Id,
      fromDate: Type.String(),
      bookingDate: Type.String(),
      slotId: Id,
    }),
    BOOKING_CANCELLED: Type.Object({ bookingId: Id, customerId: Id, reason: Type.String() }),
    BOOKING_IN_SERVICE: Type.Object({ bookingId: Id, customerId: Id, repairId: Id }),
    BOOKING_AWAITING_PAYMENT: Type.Object({ bookingId: Id, customerId: Id, invoiceId: Id, amount: Money }),
    BOOKING_PAID: Type.Object({ bookingId: Id, customerId: Id, invoiceId: Id, amount: Money }),
    BOOKING_CLOSED: Type.Object({ bookingId: Id, customerId: Id }),
  },
  "repair-events": {
    REPAIR_STARTED: Type.Object({
      repairId: Id,
      bookingId: Id,
      customerId: Id,
      technicianId: Id,
      estimatedMinutes: Type.Integer({ minimum: 1 }),
    }),
    REPAIR_IN_PROGRESS: Type.Object({
      repairId: Id,
      bookingId: Id,
      customerId: Id,
      status: RepairStage,
      progress: Type.Integer({ minimum: 0, maximum: 100 }),
    }),
    REPAIR_COMPLETED: Type.Object({
      repairId: Id,
      bookingId: Id,
      customerId: Id,
      parts: Type.Array(PartUsedSchema),
      labourMinutes: Type.Integer({ minimum: 0 }),
      labourCost: Money,
      partsCost: Money,
    }),
  },
  "payment-events": {
    INVOICE_CREATED: Type.Object({
      invoiceId: Id,
      bookingId: Id,
      repairId: Id,
      customerId: Id,
      amount: Money,
      currency: Type.String(),
      dueAt: Type.String(),
    }),
    PAYMENT_COMPLETED: Type.Object({
      invoiceId: Id,
      bookingId: Id,
      customerId: Id,
      amount: Money,
      currency: Type.String(),
      chargeId: Id,
    }),
    PAYMENT_FAILED: Type.Object({
      invoiceId: Id,
      bookingId: Id,
      customerId: Id,
      amount: Money,
      reason: Type.String(),
      attempts: Type.Integer({ minimum: 1 }),
    }),
    PAYMENT_REFUNDED: Type.Object({
      invoiceId: Id,
      bookingId: Id,
      customerId: Id,
      amount: Money,
      chargeId: Id,
    }),
    INVOICE_VOIDED: Type.Object({ invoiceId: Id, bookingId: Id, customerId: Id, reason: Type.String() }),
    INVOICE_REMINDER: Type.Object({
      invoiceId: Id,
      bookingId: Id,
      customerId: Id,
      amount: Money,
      dueAt: Type.String(),
    }),
  },
  "compensation-events": {
    ROLLBACK_BOOKING: Type.Object({
      bookingId: Id,
      customerId: Id,
      invoiceId: Type.Optional(Id),
      reason: Type.String(),
    }),
  },
  "notification-events": {
    NOTIFICATION_SENT: Type.Object({
      notificationId: Id,
      customerId: Id,
      channel: Type.Union([Type.Literal("email"), Type.Literal("sms"), Type.Literal("push")]),
      template: Type.String(),
      sourceEventId: Id,
      sourceEventType: Type.String(),
    }),
  },
} as const satisfies Record<EventTopic, Record<string, TSchema>>;

type Events = typeof EVENTS;
export type EventType = { [T in keyof Events]: keyof Events[T] & string }[keyof Events];
type SchemaOf<E extends EventType> = {
  [T in keyof Events]: E extends keyof Events[T] ? Events[T][E] : never;
}[keyof Events];
export type EventPayload<E extends EventType> = Static<SchemaOf<E>>;

const topicOfType = new Map<string, EventTopic>(
  Object.entries(EVENTS).flatMap(([topic, types]) => Object.keys(types).map((t) => [t, topic as EventTopic])),
);
const checks = new Map(
  Object.values(EVENTS).flatMap((types) =>
    Object.entries(types).map(([t, schema]) => [t, TypeCompiler.Compile(schema as TSchema)]),
  ),
);

/** The logical topic an event type belongs to. */
export function topicOf(type: EventType): EventTopic {
  return topicOfType.get(type) as EventTopic;
}

/** Whether a payload matches its event type's schema (reactors check before acting). */
export function isEvent<E extends EventType>(type: E, payload: unknown): payload is EventPayload<E> {
  return checks.get(type)?.Check(payload) ?? false;
}

/** Real topic names in a namespace (empty in the real deployment; tests use their own). */
export interface Topics {
  namespace: string;
  event(topic: EventTopic): string;
  mailbox(topic: MailboxTopic): string;
}

export function topicsIn(namespace: string): Topics {
  return {
    namespace,
    event: (topic) => topicIn(namespace, topic),
    mailbox: (topic) => topicIn(namespace, topic),
  };
}

/** The effect of emitting one event (typed by its schema), keyed by `key` or the emitting actor's key. */
export function emitted<E extends EventType>(
  topics: Topics,
  type: E,
  payload: EventPayload<E>,
  key?: string,
): EmitEffect {
  return { topic: topics.event(topicOf(type)), type, payload: payload as Record<string, unknown>, key };
}
