/**
 * A booking (key: booking id) from request to `PAID`/`CLOSED`, or `REJECTED`/`CANCELLED`. It asks its slot for
 * a place and answers the caller once the slot said yes or no (the slot forwards the caller to it), tells the
 * job saga a job is open, starts the repair, and follows the saga's word through invoice and payment. Every
 * status change is an event on booking-events (so caches and subscribers follow it).
 *
 *   PENDING -> CONFIRMED -> IN_SERVICE -> AWAITING_PAYMENT -> PAID -> CLOSED
 *      |           |__________________________________ CANCELLED (customer, no-show, or the saga's compensation)
 *      |__ REJECTED (slot full, or the slot never answered)
 *
 * Nothing waits forever (durable timers): PENDING asks its slot again after `answerTimeoutMs`, and after three
 * unanswered asks is REJECTED (the place, if the slot took it late, is given back); CONFIRMED, IN_SERVICE and
 * AWAITING_PAYMENT sync with the job saga every `checkIntervalMs` (it repeats its last instruction, so a lost
 * one is made good). PAID, CLOSED, CANCELLED and REJECTED are terminal: no timer.
 */
import { Type } from "@sinclair/typebox";
import { defineActor, type SendEffect, type TimerEffect, type TurnResult } from "../../runtime/index.ts";
import { emitted } from "../events.ts";
import type { Refs } from "../refs.ts";
import { accept, type Reply, refuse } from "../reply.ts";
import { SERVICE_TYPES, type ServiceType } from "../service-catalogue.ts";

export const BOOKING_STATUSES = [
  "NEW",
  "PENDING",
  "CONFIRMED",
  "IN_SERVICE",
  "AWAITING_PAYMENT",
  "PAID",
  "CLOSED",
  "CANCELLED",
  "REJECTED",
] as const;
export type BookingStatus = (typeof BOOKING_STATUSES)[number];

export interface BookingState {
  bookingId: string;
  status: BookingStatus;
  customerId: string;
  vehicleId: string;
  serviceType: string;
  bookingDate: string;
  slotId: string;
  notes: string | null;
  /** A reschedule waiting for its new slot's answer. */
  pendingSlot: { slotId: string; bookingDate: string } | null;
  repairId: string | null;
  invoiceId: string | null;
  amount: number | null;
  reason: string | null;
  createdAt: string | null;
  updatedAt: string | null;
  version: number;
}

export type BookingView = Omit<BookingState, "pendingSlot">;

const Purpose = Type.Union([Type.Literal("create"), Type.Literal("reschedule")]);

export const bookingMessages = {
  CREATE: Type.Object({
    customerId: Type.String(),
    vehicleId: Type.String(),
    serviceType: Type.String(),
    bookingDate: Type.String(),
    notes: Type.Optional(Type.String()),
  }),
  SLOT_HELD: Type.Object({ slotId: Type.String(), purpose: Purpose }),
  SLOT_REFUSED: Type.Object({ slotId: Type.String(), purpose: Purpose, reason: Type.String() }),
  RESCHEDULE: Type.Object({ bookingDate: Type.String() }),
  CANCEL: Type.Object({ reason: Type.String() }),
  START_REPAIR: Type.Object({
    repairId: Type.String(),
    technicianId: Type.String(),
    estimatedMinutes: Type.Integer({ minimum: 1 }),
  }),
  MARK_AWAITING_PAYMENT: Type.Object({ invoiceId: Type.String(), amount: Type.Integer() }),
  MARK_PAID: Type.Object({ invoiceId: Type.String(), amount: Type.Integer() }),
  ROLLBACK: Type.Object({ reason: Type.String() }),
  CLOSE: Type.Object({}),
  /** The slot-answer timer firing: the slot has not answered the hold this booking sent. */
  SLOT_TIMEOUT: Type.Object({
    slotId: Type.String(),
    purpose: Purpose,
    attempt: Type.Integer({ minimum: 1 }),
  }),
  /** The sync timer firing: ask the job saga to repeat its last word. */
  SYNC: Type.Object({}),
};

export interface BookingSettings {
  /** How long to wait for the slot's answer before asking again. */
  answerTimeoutMs: number;
  /** How often a confirmed booking syncs with its job saga. */
  checkIntervalMs: number;
}

/** Unanswered asks of a slot before the booking gives up on it. */
const SLOT_ASKS = 3;
const SLOT_ANSWER = "slot-answer";
const SYNC = "sync";
/** States in which the booking keeps the place its slot gave it. */
const HOLDS_ITS_SLOT: BookingStatus[] = [
  "PENDING",
  "CONFIRMED",
  "IN_SERVICE",
  "AWAITING_PAYMENT",
  "PAID",
  "CLOSED",
];
/** States in which the booking follows the job saga (and syncs with it). */
const FOLLOWING_SAGA: BookingStatus[] = ["CONFIRMED", "IN_SERVICE", "AWAITING_PAYMENT"];

export const initialBooking = (bookingId: string): BookingState => ({
  bookingId,
  status: "NEW",
  customerId: "",
  vehicleId: "",
  serviceType: "",
  bookingDate: "",
  slotId: "",
  notes: null,
  pendingSlot: null,
  repairId: null,
  invoiceId: null,
  amount: null,
  reason: null,
  createdAt: null,
  updatedAt: null,
  version: 0,
});

/** The service type a CREATE asks for (a new booking's state does not have it yet). */
function serviceTypeOf(message: { type: string; payload: unknown }): string {
  return message.type === "CREATE" ? (message.payload as { serviceType: string }).serviceType : "";
}

export function bookingView(state: BookingState): BookingView {
  const { pendingSlot: _pending, ...view } = state;
  return view;
}

const CANCELLABLE: BookingStatus[] = ["PENDING", "CONFIRMED"];

export function bookingActor(refs: Refs, settings: BookingSettings) {
  const { topics } = refs;
  return defineActor({
    kind: "booking",
    mailbox: refs.mailboxes.booking,
    initialState: initialBooking,
    lifecycle: { statusField: "status", final: ["NEW", "PAID", "CLOSED", "CANCELLED", "REJECTED"] },
    eventState: (state) => ({ status: state.status }),
    messages: bookingMessages,
    handle(state, message, ctx): TurnResult<BookingState> {
      const now = ctx.now.toISOString();
      /** The next state (stamped with the time and a new version) and the reply: the booking, unless given. */
      const next = (changes: Partial<BookingState>, reply?: Reply<BookingView>) => {
        const s: BookingState = { ...state, ...changes, updatedAt: now, version: state.version + 1 };
        return {
          state: s,
          reply: reply ?? accept(bookingView(s)),
        };
      };
      const hold = (slotId: string, purpose: "create" | "reschedule", customerId: string): SendEffect => ({
        to: refs.slot(slotId),
        type: "HOLD",
        payload: {
          bookingId: ctx.key,
          customerId,
          capacity:
            SERVICE_TYPES[(state.serviceType || serviceTypeOf(message)) as ServiceType]?.capacityPerSlot ?? 1,
          purpose,
        },
        forwardReply: true, // the slot passes the caller on; this booking answers it after the slot's answer
      });
      const release = (slotId: string): SendEffect => ({
        to: refs.slot(slotId),
        type: "RELEASE",
        payload: { bookingId: ctx.key },
      });
      const after = (ms: number) => new Date(ctx.now.getTime() + ms);
      const awaitSlot = (slotId: string, purpose: "create" | "reschedule", attempt = 1): TimerEffect => ({
        set: SLOT_ANSWER,
        at: after(settings.answerTimeoutMs),
        type: "SLOT_TIMEOUT",
        payload: { slotId, purpose, attempt },
      });
      const syncLater: TimerEffect = {
        set: SYNC,
        at: after(settings.checkIntervalMs),
        type: "SYNC",
        payload: {},
      };
      const done: TimerEffect[] = [{ cancel: SLOT_ANSWER }, { cancel: SYNC }];
      switch (message.type) {
        case "CREATE": {
          if (state.status !== "NEW") return { state, reply: accept(bookingView(state)) }; // a copy: same booking
          const slotId = refs.slotKey(
            message.payload.serviceType as ServiceType,
            new Date(message.payload.bookingDate),
          );
          const s = next({
            status: "PENDING",
            customerId: message.payload.customerId,
            vehicleId: message.payload.vehicleId,
            serviceType: message.payload.serviceType,
            bookingDate: message.payload.bookingDate,
            slotId,
            notes: message.payload.notes ?? null,
            createdAt: now,
          });
          return {
            state: s.state,
            send: [hold(slotId, "create", message.payload.customerId)],
            timers: [awaitSlot(slotId, "create")],
          };
        }
        case "SLOT_HELD": {
          if (
            message.payload.purpose === "create" &&
            state.status === "PENDING" &&
            message.payload.slotId === state.slotId
          ) {
            const s = next({ status: "CONFIRMED" });
            return {
              ...s,
              emit: [
                emitted(topics, "BOOKING_CREATED", {
                  bookingId: ctx.key,
                  customerId: state.customerId,
                  vehicleId: state.vehicleId,
                  serviceType: state.serviceType,
                  bookingDate: state.bookingDate,
                  slotId: state.slotId,
                }),
              ],
              send: [
                {
                  to: refs.jobSaga(ctx.key),
                  type: "JOB_OPENED",
                  payload: {
                    customerId: state.customerId,
                    slotId: state.slotId,
                    bookingDate: state.bookingDate,
                  },
                },
              ],
              timers: [{ cancel: SLOT_ANSWER }, syncLater],
            };
          }
          if (
            message.payload.purpose === "reschedule" &&
            state.pendingSlot?.slotId === message.payload.slotId &&
            state.status === "CONFIRMED"
          ) {
            const s = next({
              bookingDate: state.pendingSlot.bookingDate,
              slotId: message.payload.slotId,
              pendingSlot: null,
            });
            return {
              ...s,
              emit: [
                emitted(topics, "BOOKING_RESCHEDULED", {
                  bookingId: ctx.key,
                  customerId: state.customerId,
                  fromDate: state.bookingDate,
                  bookingDate: state.pendingSlot.bookingDate,
                  slotId: message.payload.slotId,
                }),
              ],
              send: [release(state.slotId)],
              timers: [{ cancel: SLOT_ANSWER }],
            };
          }
          // A hold this booking no longer wants (cancelled or rejected meanwhile, or a slot it moved away from):
          // give the place back. A copy of the answer for the slot it holds (it asked again, or the answer came
          // twice) changes nothing, however far the booking has come since: its place stays taken.
          if (message.payload.slotId !== state.slotId || !HOLDS_ITS_SLOT.includes(state.status)) {
            return {
              state,
              send: [release(message.payload.slotId)],
              reply: refuse("conflict", `booking is ${state.status}`),
            };
          }
          return { state, reply: accept(bookingView(state)) };
        }
        case "SLOT_REFUSED": {
          if (message.payload.purpose === "create" && state.status === "PENDING") {
            const s = next(
              { status: "REJECTED", reason: message.payload.reason },
              refuse("slot_full", message.payload.reason),
            );
            return {
              ...s,
              emit: [
                emitted(topics, "BOOKING_REJECTED", {
                  bookingId: ctx.key,
                  customerId: state.customerId,
                  slotId: message.payload.slotId,
                  reason: message.payload.reason,
                }),
              ],
              timers: done,
            };
          }
          if (
            message.payload.purpose === "reschedule" &&
            state.pendingSlot?.slotId === message.payload.slotId
          ) {
            const s = next({ pendingSlot: null }, refuse("slot_full", message.payload.reason));
            return { ...s, timers: [{ cancel: SLOT_ANSWER }] };
          }
          return { state, reply: refuse("slot_full", message.payload.reason) };
        }
        case "RESCHEDULE": {
          if (state.status !== "CONFIRMED") {
            return {
              state,
              reply: refuse(
                state.status === "NEW" ? "not_found" : "conflict",
                `a ${state.status} booking cannot be rescheduled`,
              ),
            };
          }
          if (state.pendingSlot)
            return { state, reply: refuse("conflict", "a reschedule is already waiting for its slot") };
          const slotId = refs.slotKey(
            state.serviceType as ServiceType,
            new Date(message.payload.bookingDate),
          );
          if (slotId === state.slotId) {
            const s = next({ bookingDate: message.payload.bookingDate });
            return {
              ...s,
              emit: [
                emitted(topics, "BOOKING_RESCHEDULED", {
                  bookingId: ctx.key,
                  customerId: state.customerId,
                  fromDate: state.bookingDate,
                  bookingDate: message.payload.bookingDate,
                  slotId,
                }),
              ],
            };
          }
          const s = next({ pendingSlot: { slotId, bookingDate: message.payload.bookingDate } });
          return {
            state: s.state,
            send: [hold(slotId, "reschedule", state.customerId)],
            timers: [awaitSlot(slotId, "reschedule")],
          };
        }
        case "CANCEL": {
          if (state.status === "CANCELLED") return { state, reply: accept(bookingView(state)) };
          if (!CANCELLABLE.includes(state.status)) {
            return {
              state,
              reply: refuse(
                state.status === "NEW" ? "not_found" : "conflict",
                state.status === "NEW" ? "no such booking" : `a ${state.status} booking cannot be cancelled`,
              ),
            };
          }
          return cancelled(message.payload.reason, true);
        }
        case "ROLLBACK": {
          if (state.status === "CANCELLED" || state.status === "NEW") return { state };
          return cancelled(message.payload.reason, false);
        }
        case "START_REPAIR": {
          const { repairId, technicianId, estimatedMinutes } = message.payload;
          const start: SendEffect = {
            to: refs.repair(repairId),
            type: "START",
            payload: { bookingId: ctx.key, customerId: state.customerId, technicianId, estimatedMinutes },
            forwardReply: true, // the repair answers the technician
          };
          if (state.status === "IN_SERVICE" && state.repairId === repairId) return { state, send: [start] }; // a copy
          if (state.status !== "CONFIRMED") {
            const why =
              state.status === "NEW"
                ? "no such booking"
                : state.repairId
                  ? `a repair (${state.repairId}) has already started`
                  : `a ${state.status} booking cannot start a repair`;
            return { state, reply: refuse(state.status === "NEW" ? "not_found" : "conflict", why) };
          }
          const s = next({ status: "IN_SERVICE", repairId });
          return {
            state: s.state,
            emit: [
              emitted(topics, "BOOKING_IN_SERVICE", {
                bookingId: ctx.key,
                customerId: state.customerId,
                repairId,
              }),
            ],
            send: [
              start,
              { to: refs.jobSaga(ctx.key), type: "REPAIR_STARTED", payload: { repairId, technicianId } },
            ],
          };
        }
        case "MARK_AWAITING_PAYMENT": {
          if (!["CONFIRMED", "IN_SERVICE"].includes(state.status)) return { state };
          const { invoiceId, amount } = message.payload;
          return {
            ...next({ status: "AWAITING_PAYMENT", invoiceId, amount }),
            emit: [
              emitted(topics, "BOOKING_AWAITING_PAYMENT", {
                bookingId: ctx.key,
                customerId: state.customerId,
                invoiceId,
                amount,
              }),
            ],
          };
        }
        case "MARK_PAID": {
          if (state.status === "PAID" || state.status === "CLOSED") return { state };
          const s = next({
            status: "PAID",
            invoiceId: message.payload.invoiceId,
            amount: message.payload.amount,
          });
          return {
            ...s,
            timers: done,
            emit: [
              emitted(topics, "BOOKING_PAID", {
                bookingId: ctx.key,
                customerId: state.customerId,
                invoiceId: message.payload.invoiceId,
                amount: message.payload.amount,
              }),
            ],
          };
        }
        case "CLOSE": {
          if (state.status === "CLOSED") return { state, reply: accept(bookingView(state)) };
          if (state.status !== "PAID") {
            return {
              state,
              reply: refuse(
                state.status === "NEW" ? "not_found" : "conflict",
                `a ${state.status} booking cannot be closed; it closes once paid`,
              ),
            };
          }
          const s = next({ status: "CLOSED" });
          return {
            ...s,
            emit: [emitted(topics, "BOOKING_CLOSED", { bookingId: ctx.key, customerId: state.customerId })],
          };
        }
        case "SLOT_TIMEOUT": {
          const { slotId, purpose, attempt } = message.payload;
          const waiting =
            purpose === "create"
              ? state.status === "PENDING" && state.slotId === slotId
              : state.pendingSlot?.slotId === slotId;
          if (!waiting) return { state }; // answered meanwhile
          if (attempt < SLOT_ASKS) {
            // Ask again (a hold is idempotent at the slot): the first one, or its answer, may have been lost.
            return {
              state,
              send: [hold(slotId, purpose, state.customerId)],
              timers: [awaitSlot(slotId, purpose, attempt + 1)],
            };
          }
          const reason = `slot ${slotId} did not answer ${attempt} requests`;
          if (purpose === "reschedule") {
            return { ...next({ pendingSlot: null }), send: [release(slotId)] };
          }
          return {
            ...next({ status: "REJECTED", reason }, refuse("slot_full", reason)),
            emit: [
              emitted(topics, "BOOKING_REJECTED", {
                bookingId: ctx.key,
                customerId: state.customerId,
                slotId,
                reason,
              }),
            ],
            send: [release(slotId)], // had the slot taken the place late, it is given back
            timers: done,
          };
        }
        case "SYNC": {
          if (!FOLLOWING_SAGA.includes(state.status)) return { state };
          return {
            state,
            send: [
              {
                to: refs.jobSaga(ctx.key),
                type: "SYNC_BOOKING",
                payload: {
                  status: state.status,
                  customerId: state.customerId,
                  slotId: state.slotId,
                  bookingDate: state.bookingDate,
                  repairId: state.repairId,
                  invoiceId: state.invoiceId,
                },
              },
            ],
            timers: [syncLater],
          };
        }
      }

      function cancelled(reason: string, byCustomer: boolean): TurnResult<BookingState> {
        const s = next({ status: "CANCELLED", reason, pendingSlot: null });
        const send: SendEffect[] = [release(state.slotId)];
        if (state.pendingSlot) send.push(release(state.pendingSlot.slotId));
        if (byCustomer) send.push({ to: refs.jobSaga(ctx.key), type: "JOB_CANCELLED", payload: { reason } });
        return {
          ...s,
          timers: done,
          emit: [
            emitted(topics, "BOOKING_CANCELLED", {
              bookingId: ctx.key,
              customerId: state.customerId,
              reason,
            }),
          ],
          send,
        };
      }
    },
  });
}
