/**
 * The job saga (key: booking id): the process manager of one car's visit, booking -> repair -> invoice ->
 * payment -> booking PAID. It keeps its history (readable at GET /api/v1/jobs/:bookingId).
 *
 *   OPEN -> REPAIRING -> INVOICING -> AWAITING_PAYMENT -> PAID
 *     |                                     |----------> COMPENSATED (payment failed: compensation-events)
 *     |----> CANCELLED (the customer cancelled before the repair)
 *
 * The booking starts the repair (it is the one that knows it is confirmed) and tells the saga.
 *
 * Compensation for a failed payment: ROLLBACK_BOOKING on compensation-events, the booking rolled back
 * (cancelled, its slot released), the invoice refunded if anything was captured or voided if not; the
 * notification reactor tells the customer. An invoice still unpaid at its due time triggers one reminder
 * (INVOICE_REMINDER), through a durable timer.
 *
 * Nothing waits forever (durable timers, guarantee 14): OPEN has a no-show deadline (the booking's time plus
 * `noShowGraceMs`: the job is cancelled and the booking rolled back, freeing the slot); REPAIRING, INVOICING and
 * AWAITING_PAYMENT check with the actor they wait on every `checkIntervalMs` (`answerTimeoutMs` while an
 * invoice is being opened) — it repeats its answer, so one lost or dead-lettered message is made good. The
 * booking syncs with the saga in the same way (SYNC_BOOKING: the saga repeats its last instruction, or catches up
 * with what the booking says). PAID, COMPENSATED and CANCELLED are terminal: no timer.
 */
import { Type } from "@sinclair/typebox";
import { defineActor, type SendEffect, type TimerEffect, type TurnResult } from "../../runtime/index.ts";
import { emitted, PartUsedSchema } from "../events.ts";
import type { Refs } from "../refs.ts";

export const JOB_STATUSES = [
  "NONE",
  "OPEN",
  "REPAIRING",
  "INVOICING",
  "AWAITING_PAYMENT",
  "PAID",
  "COMPENSATED",
  "CANCELLED",
] as const;
export type JobStatus = (typeof JOB_STATUSES)[number];

export interface JobStep {
  at: string;
  step: string;
  detail: Record<string, unknown>;
}

export interface JobState {
  bookingId: string;
  status: JobStatus;
  customerId: string;
  repairId: string | null;
  invoiceId: string | null;
  amount: number | null;
  dueAt: string | null;
  /** The booking's time (the no-show deadline counts from it). */
  bookingDate: string | null;
  /** The invoice's CREATE while it is being opened, to ask again if the invoice does not answer. */
  invoicing: Record<string, unknown> | null;
  history: JobStep[];
  version: number;
}

/** A job as its customer sees it: without the invoice command it keeps to ask again (the saga's own record). */
export type JobView = Omit<JobState, "invoicing">;

export function jobView(state: JobState): JobView {
  const { invoicing: _invoicing, ...view } = state;
  return view;
}

export const jobMessages = {
  JOB_OPENED: Type.Object({ customerId: Type.String(), slotId: Type.String(), bookingDate: Type.String() }),
  JOB_CANCELLED: Type.Object({ reason: Type.String() }),
  REPAIR_STARTED: Type.Object({ repairId: Type.String(), technicianId: Type.String() }),
  REPAIR_DONE: Type.Object({
    repairId: Type.String(),
    parts: Type.Array(PartUsedSchema),
    labourMinutes: Type.Integer({ minimum: 0 }),
    labourCost: Type.Integer({ minimum: 0 }),
    partsCost: Type.Integer({ minimum: 0 }),
  }),
  INVOICE_OPENED: Type.Object({ invoiceId: Type.String(), amount: Type.Integer(), dueAt: Type.String() }),
  PAYMENT_SETTLED: Type.Object({ invoiceId: Type.String(), amount: Type.Integer(), chargeId: Type.String() }),
  PAYMENT_FAILED: Type.Object({ invoiceId: Type.String(), reason: Type.String() }),
  /** The payment-reminder timer firing. */
  REMIND: Type.Object({}),
  /** The no-show deadline firing: the repair did not start in time. */
  NO_SHOW: Type.Object({}),
  /** The check timer firing: ask the actor the job waits on to repeat its answer. */
  CHECK: Type.Object({}),
  /** The booking saying where it stands (its sync timer): the saga repeats its last instruction or catches up. */
  SYNC_BOOKING: Type.Object({
    status: Type.String(),
    customerId: Type.String(),
    slotId: Type.String(),
    bookingDate: Type.String(),
    repairId: Type.Union([Type.String(), Type.Null()]),
    invoiceId: Type.Union([Type.String(), Type.Null()]),
  }),
};

export const initialJob = (bookingId: string): JobState => ({
  bookingId,
  status: "NONE",
  customerId: "",
  repairId: null,
  invoiceId: null,
  amount: null,
  dueAt: null,
  bookingDate: null,
  invoicing: null,
  history: [],
  version: 0,
});

export interface JobSettings {
  /** How long after an invoice is created its payment is due (then: one reminder). */
  invoiceDueMs: number;
  /** How long to wait for the invoice to open before asking again. */
  answerTimeoutMs: number;
  /** How often a waiting job checks with the repair or invoice it waits on. */
  checkIntervalMs: number;
  /** A job whose repair has not started this long after the booking's time is cancelled. */
  noShowGraceMs: number;
}

const REMINDER = "payment-reminder";
const NO_SHOW = "no-show";
const CHECK = "check";

export function jobSagaActor(refs: Refs, settings: JobSettings) {
  const { topics } = refs;
  return defineActor({
    kind: "job-saga",
    mailbox: refs.mailboxes["job-saga"],
    initialState: initialJob,
    lifecycle: { statusField: "status", final: ["NONE", "PAID", "COMPENSATED", "CANCELLED"] },
    eventState: (state) => ({ status: state.status }),
    messages: jobMessages,
    handle(state, message, ctx): TurnResult<JobState> {
      const now = ctx.now.toISOString();
      const step = (changes: Partial<JobState>, detail: Record<string, unknown> = {}): JobState => ({
        ...state,
        ...changes,
        history: [...state.history, { at: now, step: message.type, detail }],
        version: state.version + 1,
      });
      const booking = (type: string, payload: Record<string, unknown>): SendEffect => ({
        to: refs.booking(ctx.key),
        type,
        payload,
      });
      const checkIn = (ms: number): TimerEffect => ({
        set: CHECK,
        at: new Date(ctx.now.getTime() + ms),
        type: "CHECK",
        payload: {},
      });
      const noShowAt = (bookingDate: string): TimerEffect => ({
        set: NO_SHOW,
        at: new Date(new Date(bookingDate).getTime() + settings.noShowGraceMs),
        type: "NO_SHOW",
        payload: {},
      });
      const ended: TimerEffect[] = [{ cancel: REMINDER }, { cancel: CHECK }, { cancel: NO_SHOW }];
      const opened = (p: {
        customerId: string;
        slotId: string;
        bookingDate: string;
      }): TurnResult<JobState> => ({
        state: step({ status: "OPEN", customerId: p.customerId, bookingDate: p.bookingDate }, p),
        timers: [noShowAt(p.bookingDate)],
      });
      const repairing = (
        repairId: string,
        detail: Record<string, unknown>,
        base = state,
      ): TurnResult<JobState> => ({
        state: {
          ...base,
          status: "REPAIRING",
          repairId,
          history: [...base.history, { at: now, step: message.type, detail }],
          version: base.version + 1,
        },
        timers: [{ cancel: NO_SHOW }, checkIn(settings.checkIntervalMs)],
      });
      switch (message.type) {
        case "JOB_OPENED": {
          if (state.status !== "NONE") return { state };
          return opened(message.payload);
        }
        case "JOB_CANCELLED": {
          if (state.status !== "OPEN") return { state };
          return { state: step({ status: "CANCELLED" }, message.payload), timers: ended };
        }
        case "REPAIR_STARTED": {
          if (state.status !== "OPEN") return { state };
          return repairing(message.payload.repairId, message.payload);
        }
        case "REPAIR_DONE": {
          if (state.status !== "REPAIRING") return { state };
          const p = message.payload;
          const invoiceId = Bun.randomUUIDv7(); // decided once: this turn commits it with the state
          const dueAt = new Date(ctx.now.getTime() + settings.invoiceDueMs).toISOString();
          const invoicing = {
            bookingId: ctx.key,
            repairId: p.repairId,
            customerId: state.customerId,
            parts: p.parts,
            labourMinutes: p.labourMinutes,
            labourCost: p.labourCost,
            dueAt,
          };
          return {
            state: step({ status: "INVOICING", invoiceId, invoicing }, { repairId: p.repairId, invoiceId }),
            send: [{ to: refs.invoice(invoiceId), type: "CREATE", payload: invoicing }],
            timers: [checkIn(settings.answerTimeoutMs)],
          };
        }
        case "INVOICE_OPENED": {
          if (state.status !== "INVOICING") return { state };
          const p = message.payload;
          return {
            state: step({ status: "AWAITING_PAYMENT", amount: p.amount, dueAt: p.dueAt, invoicing: null }, p),
            send: [booking("MARK_AWAITING_PAYMENT", { invoiceId: p.invoiceId, amount: p.amount })],
            timers: [
              { set: REMINDER, at: new Date(p.dueAt), type: "REMIND", payload: {} },
              checkIn(settings.checkIntervalMs),
            ],
          };
        }
        case "PAYMENT_SETTLED": {
          if (state.status !== "AWAITING_PAYMENT") return { state };
          const p = message.payload;
          return {
            state: step({ status: "PAID" }, p),
            send: [booking("MARK_PAID", { invoiceId: p.invoiceId, amount: p.amount })],
            timers: ended,
          };
        }
        case "PAYMENT_FAILED": {
          if (state.status !== "AWAITING_PAYMENT") return { state };
          const p = message.payload;
          const reason = `payment failed: ${p.reason}`;
          return {
            state: step({ status: "COMPENSATED" }, p),
            emit: [
              emitted(topics, "ROLLBACK_BOOKING", {
                bookingId: ctx.key,
                customerId: state.customerId,
                invoiceId: p.invoiceId,
                reason,
              }),
            ],
            send: [
              booking("ROLLBACK", { reason }),
              { to: refs.invoice(p.invoiceId), type: "REFUND", payload: { reason } },
            ],
            timers: ended,
          };
        }
        case "REMIND": {
          if (state.status !== "AWAITING_PAYMENT" || !state.invoiceId) return { state };
          return {
            state: step({}, { invoiceId: state.invoiceId }),
            emit: [
              emitted(
                topics,
                "INVOICE_REMINDER",
                {
                  invoiceId: state.invoiceId,
                  bookingId: ctx.key,
                  customerId: state.customerId,
                  amount: state.amount ?? 0,
                  dueAt: state.dueAt ?? now,
                },
                state.invoiceId,
              ),
            ],
          };
        }
        case "NO_SHOW": {
          if (state.status !== "OPEN") return { state };
          const reason = `no-show: the repair had not started ${settings.noShowGraceMs / 60_000} min after the booking's time`;
          return {
            state: step({ status: "CANCELLED" }, { reason }),
            send: [booking("ROLLBACK", { reason })],
            timers: ended,
          };
        }
        case "CHECK": {
          // Ask again whoever the job waits on: each repeats its answer (a lost one is made good), or says nothing.
          switch (state.status) {
            case "REPAIRING":
              return {
                state,
                send: state.repairId
                  ? [{ to: refs.repair(state.repairId), type: "REPORT", payload: {} }]
                  : [],
                timers: [checkIn(settings.checkIntervalMs)],
              };
            case "INVOICING":
              return {
                state,
                send:
                  state.invoiceId && state.invoicing
                    ? [{ to: refs.invoice(state.invoiceId), type: "CREATE", payload: state.invoicing }]
                    : [],
                timers: [checkIn(settings.answerTimeoutMs)],
              };
            case "AWAITING_PAYMENT":
              return {
                state,
                send: state.invoiceId
                  ? [{ to: refs.invoice(state.invoiceId), type: "REPORT", payload: {} }]
                  : [],
                timers: [checkIn(settings.checkIntervalMs)],
              };
            default:
              return { state };
          }
        }
        case "SYNC_BOOKING": {
          const b = message.payload;
          // The booking's word first: what the saga missed of it.
          if (state.status === "NONE" && b.status === "CONFIRMED") return opened(b);
          if (state.status === "NONE" && b.status === "IN_SERVICE" && b.repairId) {
            const open = opened(b);
            return repairing(b.repairId, { repairId: b.repairId, via: "sync" }, open.state);
          }
          if (state.status === "OPEN" && b.status === "IN_SERVICE" && b.repairId) {
            return repairing(b.repairId, { repairId: b.repairId, via: "sync" });
          }
          // Then the saga's: its last instruction to the booking again, if the booking has not followed it.
          if (state.status === "AWAITING_PAYMENT" && b.status !== "AWAITING_PAYMENT" && state.invoiceId) {
            return {
              state,
              send: [
                booking("MARK_AWAITING_PAYMENT", { invoiceId: state.invoiceId, amount: state.amount ?? 0 }),
              ],
            };
          }
          if (state.status === "PAID" && state.invoiceId) {
            return {
              state,
              send: [booking("MARK_PAID", { invoiceId: state.invoiceId, amount: state.amount ?? 0 })],
            };
          }
          if (state.status === "COMPENSATED" || state.status === "CANCELLED") {
            const last = state.history.at(-1)?.detail as { reason?: string } | undefined;
            return {
              state,
              send: [booking("ROLLBACK", { reason: last?.reason ?? `the job is ${state.status}` })],
            };
          }
          return { state };
        }
      }
    },
  });
}
