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
 */
import { Type } from "@sinclair/typebox";
import { defineActor, type SendEffect, type TurnResult } from "../../runtime/index.ts";
import { emitted, PartUsedSchema } from "../events.ts";
import type { Refs } from "../refs.ts";

export type JobStatus =
  | "NONE"
  | "OPEN"
  | "REPAIRING"
  | "INVOICING"
  | "AWAITING_PAYMENT"
  | "PAID"
  | "COMPENSATED"
  | "CANCELLED";

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
  history: JobStep[];
  version: number;
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
};

export const initialJob = (bookingId: string): JobState => ({
  bookingId,
  status: "NONE",
  customerId: "",
  repairId: null,
  invoiceId: null,
  amount: null,
  dueAt: null,
  history: [],
  version: 0,
});

export interface JobSettings {
  /** How long after an invoice is created its payment is due (then: one reminder). */
  invoiceDueMs: number;
}

const REMINDER = "payment-reminder";

export function jobSagaActor(refs: Refs, settings: JobSettings) {
  const { topics } = refs;
  return defineActor({
    kind: "job-saga",
    mailbox: refs.mailboxes["job-saga"],
    initialState: initialJob,
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
      switch (message.type) {
        case "JOB_OPENED": {
          if (state.status !== "NONE") return { state };
          return { state: step({ status: "OPEN", customerId: message.payload.customerId }, message.payload) };
        }
        case "JOB_CANCELLED": {
          if (state.status !== "OPEN") return { state };
          return { state: step({ status: "CANCELLED" }, message.payload) };
        }
        case "REPAIR_STARTED": {
          if (state.status !== "OPEN") return { state };
          return {
            state: step({ status: "REPAIRING", repairId: message.payload.repairId }, message.payload),
          };
        }
        case "REPAIR_DONE": {
          if (state.status !== "REPAIRING") return { state };
          const p = message.payload;
          const invoiceId = Bun.randomUUIDv7(); // decided once: this turn commits it with the state
          const dueAt = new Date(ctx.now.getTime() + settings.invoiceDueMs).toISOString();
          return {
            state: step({ status: "INVOICING", invoiceId }, { repairId: p.repairId, invoiceId }),
            send: [
              {
                to: refs.invoice(invoiceId),
                type: "CREATE",
                payload: {
                  bookingId: ctx.key,
                  repairId: p.repairId,
                  customerId: state.customerId,
                  parts: p.parts,
                  labourMinutes: p.labourMinutes,
                  labourCost: p.labourCost,
                  dueAt,
                },
              },
            ],
          };
        }
        case "INVOICE_OPENED": {
          if (state.status !== "INVOICING") return { state };
          const p = message.payload;
          return {
            state: step({ status: "AWAITING_PAYMENT", amount: p.amount, dueAt: p.dueAt }, p),
            send: [booking("MARK_AWAITING_PAYMENT", { invoiceId: p.invoiceId, amount: p.amount })],
            timers: [{ set: REMINDER, at: new Date(p.dueAt), type: "REMIND", payload: {} }],
          };
        }
        case "PAYMENT_SETTLED": {
          if (state.status !== "AWAITING_PAYMENT") return { state };
          const p = message.payload;
          return {
            state: step({ status: "PAID" }, p),
            send: [booking("MARK_PAID", { invoiceId: p.invoiceId, amount: p.amount })],
            timers: [{ cancel: REMINDER }],
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
            timers: [{ cancel: REMINDER }],
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
      }
    },
  });
}
