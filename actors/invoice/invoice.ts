/**
 * An invoice (key: invoice id), opened by the job saga when a repair completes, paid through the payment
 * gateway, refunded or voided when the saga compensates.
 *
 *   OPEN -> PAID -> REFUNDED
 *     |---> FAILED -> VOID
 *     |---> VOID
 *
 * Paying calls the gateway inside the turn with an idempotency key derived from the invoice and the request's
 * key, so neither a retried HTTP request nor a redelivered or retried turn can charge twice. A gateway that does
 * not answer is tried `paymentAttempts` times, `paymentRetryMs` apart (the seed's 3 x 1 s), then the payment
 * counts as failed.
 */
import { Type } from "@sinclair/typebox";
import { defineActor, type TurnResult } from "../../runtime/index.ts";
import { emitted, type PartUsed, PartUsedSchema } from "../events.ts";
import type { Refs } from "../refs.ts";
import { accept, type Reply, refuse } from "../reply.ts";
import { CURRENCY } from "../service-catalogue.ts";
import { GatewayTimeoutError, type PaymentGateway } from "./payment-gateway.ts";

export const INVOICE_STATUSES = ["NEW", "OPEN", "PAID", "FAILED", "REFUNDED", "VOID"] as const;
export type InvoiceStatus = (typeof INVOICE_STATUSES)[number];

export interface InvoiceLine {
  description: string;
  quantity: number;
  unitPrice: number;
  amount: number;
}

export interface InvoiceState {
  invoiceId: string;
  status: InvoiceStatus;
  bookingId: string;
  repairId: string;
  customerId: string;
  lines: InvoiceLine[];
  amount: number;
  currency: string;
  dueAt: string | null;
  chargeId: string | null;
  paymentAttempts: number;
  failureReason: string | null;
  /** The Idempotency-Key of the payment that decided the invoice (a retry of it gets the same answer). */
  paymentKey?: string | null;
  createdAt: string | null;
  paidAt: string | null;
  updatedAt: string | null;
  version: number;
}

/** An invoice as its customer sees it: without the key of the payment that decided it (the actor's own record). */
export type InvoiceView = Omit<InvoiceState, "paymentKey">;

export function invoiceView(state: InvoiceState): InvoiceView {
  const { paymentKey: _key, ...view } = state;
  return view;
}

export const invoiceMessages = {
  CREATE: Type.Object({
    bookingId: Type.String(),
    repairId: Type.String(),
    customerId: Type.String(),
    parts: Type.Array(PartUsedSchema),
    labourMinutes: Type.Integer({ minimum: 0 }),
    labourCost: Type.Integer({ minimum: 0 }),
    dueAt: Type.String(),
  }),
  PAY: Type.Object({ cardToken: Type.String(), idempotencyKey: Type.String() }),
  REFUND: Type.Object({ reason: Type.String() }),
  /** The job saga asking where the payment stands: the outcome is told again (a lost one is made good). */
  REPORT: Type.Object({}),
};

export const initialInvoice = (invoiceId: string): InvoiceState => ({
  invoiceId,
  status: "NEW",
  bookingId: "",
  repairId: "",
  customerId: "",
  lines: [],
  amount: 0,
  currency: CURRENCY,
  dueAt: null,
  chargeId: null,
  paymentAttempts: 0,
  failureReason: null,
  createdAt: null,
  paidAt: null,
  updatedAt: null,
  version: 0,
});

export function invoiceLines(parts: PartUsed[], labourMinutes: number, labourCost: number): InvoiceLine[] {
  return [
    ...parts.map((p) => ({
      description: p.name,
      quantity: p.quantity,
      unitPrice: p.unitPrice,
      amount: p.quantity * p.unitPrice,
    })),
    { description: `Labour, ${labourMinutes} min`, quantity: 1, unitPrice: labourCost, amount: labourCost },
  ];
}

export interface InvoiceSettings {
  paymentAttempts: number;
  paymentRetryMs: number;
}

export function invoiceActor(refs: Refs, gateway: PaymentGateway, settings: InvoiceSettings) {
  const { topics } = refs;
  return defineActor({
    kind: "invoice",
    mailbox: refs.mailboxes.invoice,
    initialState: initialInvoice,
    lifecycle: { statusField: "status", final: ["NEW", "PAID", "FAILED", "REFUNDED", "VOID"] },
    eventState: (state) => ({ status: state.status }),
    messages: invoiceMessages,
    async handle(state, message, ctx): Promise<TurnResult<InvoiceState>> {
      const now = ctx.now.toISOString();
      const next = (changes: Partial<InvoiceState>, reply?: Reply<InvoiceState>) => {
        const s: InvoiceState = { ...state, ...changes, updatedAt: now, version: state.version + 1 };
        return { state: s, reply: reply ?? accept(s) };
      };
      const ids = { invoiceId: ctx.key, bookingId: state.bookingId, customerId: state.customerId };
      switch (message.type) {
        case "CREATE": {
          if (state.status !== "NEW") {
            // A copy (the saga asks again when no answer came): tell it again that the invoice is open.
            if (state.bookingId !== message.payload.bookingId) return { state };
            return {
              state,
              send: [
                {
                  to: refs.jobSaga(state.bookingId),
                  type: "INVOICE_OPENED",
                  payload: {
                    invoiceId: ctx.key,
                    amount: state.amount,
                    dueAt: state.dueAt ?? message.payload.dueAt,
                  },
                },
              ],
            };
          }
          const p = message.payload;
          const lines = invoiceLines(p.parts, p.labourMinutes, p.labourCost);
          const amount = lines.reduce((sum, line) => sum + line.amount, 0);
          const s = next({
            status: "OPEN",
            bookingId: p.bookingId,
            repairId: p.repairId,
            customerId: p.customerId,
            lines,
            amount,
            dueAt: p.dueAt,
            createdAt: now,
          });
          const facts = { invoiceId: ctx.key, bookingId: p.bookingId, customerId: p.customerId };
          return {
            ...s,
            emit: [
              emitted(topics, "INVOICE_CREATED", {
                ...facts,
                repairId: p.repairId,
                amount,
                currency: CURRENCY,
                dueAt: p.dueAt,
              }),
            ],
            send: [
              {
                to: refs.jobSaga(p.bookingId),
                type: "INVOICE_OPENED",
                payload: { invoiceId: ctx.key, amount, dueAt: p.dueAt },
              },
            ],
          };
        }
        case "PAY": {
          if (state.status === "PAID") return { state, reply: accept(state) }; // paid already: no second charge
          if (state.status === "NEW") return { state, reply: refuse("not_found", `no invoice ${ctx.key}`) };
          const { cardToken, idempotencyKey } = message.payload;
          if (
            (state.status === "FAILED" || state.status === "VOID") &&
            state.failureReason &&
            state.paymentKey === idempotencyKey
          ) {
            // The declined payment asked again (its first answer lost): the decline stands, and says so.
            return { state, reply: refuse("payment_declined", state.failureReason) };
          }
          if (state.status !== "OPEN") {
            return { state, reply: refuse("conflict", `a ${state.status} invoice cannot be paid`) };
          }
          const outcome = await chargeWithRetries(cardToken, `${ctx.key}/${idempotencyKey}`);
          const attempts = state.paymentAttempts + outcome.calls;
          if (outcome.status === "approved") {
            const s = next({
              status: "PAID",
              chargeId: outcome.chargeId,
              paymentAttempts: attempts,
              paidAt: now,
            });
            return {
              ...s,
              emit: [
                emitted(topics, "PAYMENT_COMPLETED", {
                  ...ids,
                  amount: state.amount,
                  currency: state.currency,
                  chargeId: outcome.chargeId,
                }),
              ],
              send: [
                {
                  to: refs.jobSaga(state.bookingId),
                  type: "PAYMENT_SETTLED",
                  payload: { invoiceId: ctx.key, amount: state.amount, chargeId: outcome.chargeId },
                },
              ],
            };
          }
          const s = next(
            {
              status: "FAILED",
              failureReason: outcome.reason,
              paymentAttempts: attempts,
              paymentKey: idempotencyKey,
            },
            refuse("payment_declined", outcome.reason),
          );
          return {
            ...s,
            emit: [
              emitted(topics, "PAYMENT_FAILED", {
                ...ids,
                amount: state.amount,
                reason: outcome.reason,
                attempts: outcome.calls,
              }),
            ],
            send: [
              {
                to: refs.jobSaga(state.bookingId),
                type: "PAYMENT_FAILED",
                payload: { invoiceId: ctx.key, reason: outcome.reason },
              },
            ],
          };
        }
        case "REPORT": {
          if (state.status === "PAID" && state.chargeId) {
            return {
              state,
              send: [
                {
                  to: refs.jobSaga(state.bookingId),
                  type: "PAYMENT_SETTLED",
                  payload: { invoiceId: ctx.key, amount: state.amount, chargeId: state.chargeId },
                },
              ],
            };
          }
          if (state.status === "FAILED") {
            return {
              state,
              send: [
                {
                  to: refs.jobSaga(state.bookingId),
                  type: "PAYMENT_FAILED",
                  payload: { invoiceId: ctx.key, reason: state.failureReason ?? "payment failed" },
                },
              ],
            };
          }
          return { state }; // still open (nothing to tell), or already settled by compensation
        }
        case "REFUND": {
          const reason = message.payload.reason;
          if (state.status === "PAID" && state.chargeId) {
            await gateway.refund(state.chargeId);
            const s = next({ status: "REFUNDED" });
            return {
              ...s,
              emit: [
                emitted(topics, "PAYMENT_REFUNDED", {
                  ...ids,
                  amount: state.amount,
                  chargeId: state.chargeId,
                }),
              ],
            };
          }
          if (state.status === "OPEN" || state.status === "FAILED") {
            const s = next({ status: "VOID", failureReason: state.failureReason ?? reason });
            return { ...s, emit: [emitted(topics, "INVOICE_VOIDED", { ...ids, reason })] };
          }
          return { state };
        }
      }

      /** Calls the gateway until it answers or the attempts run out; the key makes every call the same charge. */
      async function chargeWithRetries(cardToken: string, idempotencyKey: string) {
        for (let call = 1; ; call++) {
          try {
            const result = await gateway.charge({
              idempotencyKey,
              reference: ctx.key,
              amount: state.amount,
              currency: state.currency,
              cardToken,
            });
            return { ...result, calls: call };
          } catch (error) {
            if (!(error instanceof GatewayTimeoutError)) throw error; // e.g. our database: the turn is retried
            if (call >= settings.paymentAttempts) {
              return {
                status: "declined" as const,
                reason: `payment gateway did not answer after ${call} attempts`,
                calls: call,
              };
            }
            await Bun.sleep(settings.paymentRetryMs);
          }
        }
      }
    },
  });
}
