/** The invoice actor's decisions, broker-free: its handler called directly with a fake gateway. */
import { describe, expect, test } from "bun:test";
import type { TurnContext } from "../../runtime/index.ts";
import { topicsIn } from "../events.ts";
import { refsIn } from "../refs.ts";
import { type InvoiceState, initialInvoice, invoiceActor } from "./invoice.ts";
import { type ChargeRequest, GatewayTimeoutError, type PaymentGateway } from "./payment-gateway.ts";

const refs = refsIn(topicsIn(""));
const ctx = (attempt = 1): TurnContext => ({
  kind: "invoice",
  key: "inv-1",
  topic: "invoice-mailbox",
  partition: 0,
  offset: "0",
  attempt,
  now: new Date("2026-12-01T10:00:00Z"),
});
const envelope = {} as never; // the handler does not read the envelope

function fakeGateway(answers: ("approve" | "decline" | "timeout")[]) {
  const calls: ChargeRequest[] = [];
  const refunds: string[] = [];
  const gateway: PaymentGateway = {
    async charge(request) {
      calls.push(request);
      const answer = answers[Math.min(calls.length - 1, answers.length - 1)];
      if (answer === "timeout") throw new GatewayTimeoutError("no answer");
      return answer === "approve"
        ? { status: "approved", chargeId: "ch-1" }
        : { status: "declined", reason: "card declined" };
    },
    async refund(chargeId) {
      refunds.push(chargeId);
    },
  };
  return { gateway, calls, refunds };
}

async function turn(
  actor: ReturnType<typeof invoiceActor>,
  state: InvoiceState,
  type: string,
  payload: unknown,
) {
  return actor.handle(state, { type, payload, envelope } as never, ctx());
}

async function openInvoice(actor: ReturnType<typeof invoiceActor>) {
  const result = await turn(actor, initialInvoice("inv-1"), "CREATE", {
    bookingId: "b-1",
    repairId: "r-1",
    customerId: "c-1",
    parts: [{ partId: "P", name: "Part", quantity: 2, unitPrice: 1000 }],
    labourMinutes: 30,
    labourCost: 40_000,
    dueAt: "2026-12-02T10:00:00Z",
  });
  return result.state;
}

describe("invoice", () => {
  test("is created with its lines and amount, and tells the saga", async () => {
    const actor = invoiceActor(refs, fakeGateway(["approve"]).gateway, {
      paymentAttempts: 3,
      paymentRetryMs: 0,
    });
    const result = await turn(actor, initialInvoice("inv-1"), "CREATE", {
      bookingId: "b-1",
      repairId: "r-1",
      customerId: "c-1",
      parts: [{ partId: "P", name: "Part", quantity: 2, unitPrice: 1000 }],
      labourMinutes: 30,
      labourCost: 40_000,
      dueAt: "2026-12-02T10:00:00Z",
    });
    expect(result.state).toMatchObject({ status: "OPEN", amount: 42_000 });
    expect(result.emit?.map((e) => [e.type, e.payload.amount])).toEqual([["INVOICE_CREATED", 42_000]]);
    expect(result.send?.map((s) => [s.to.kind, s.to.key, s.type])).toEqual([
      ["job-saga", "b-1", "INVOICE_OPENED"],
    ]);
  });

  test("paid once: a second PAY answers with the paid invoice and does not call the gateway again", async () => {
    const fake = fakeGateway(["approve"]);
    const actor = invoiceActor(refs, fake.gateway, { paymentAttempts: 3, paymentRetryMs: 0 });
    const paid = await turn(actor, await openInvoice(actor), "PAY", {
      cardToken: "tok_visa",
      idempotencyKey: "k",
    });
    expect(paid.state).toMatchObject({ status: "PAID", chargeId: "ch-1" });
    expect(paid.emit?.map((e) => e.type)).toEqual(["PAYMENT_COMPLETED"]);
    expect(fake.calls.map((c) => c.idempotencyKey)).toEqual(["inv-1/k"]);
    const again = await turn(actor, paid.state, "PAY", { cardToken: "tok_visa", idempotencyKey: "other" });
    expect(again.state).toBe(paid.state);
    expect(again.reply).toMatchObject({ accepted: true });
    expect(fake.calls).toHaveLength(1);
  });

  test("a gateway that keeps timing out is tried paymentAttempts times with the same key, then the payment fails", async () => {
    const fake = fakeGateway(["timeout"]);
    const actor = invoiceActor(refs, fake.gateway, { paymentAttempts: 3, paymentRetryMs: 0 });
    const failed = await turn(actor, await openInvoice(actor), "PAY", {
      cardToken: "tok_timeout",
      idempotencyKey: "k",
    });
    expect(fake.calls.map((c) => c.idempotencyKey)).toEqual(["inv-1/k", "inv-1/k", "inv-1/k"]);
    expect(failed.state).toMatchObject({ status: "FAILED", paymentAttempts: 3 });
    expect(failed.reply).toEqual({
      accepted: false,
      code: "payment_declined",
      reason: "payment gateway did not answer after 3 attempts",
    });
    expect(failed.send?.map((s) => s.type)).toEqual(["PAYMENT_FAILED"]);
  });

  test("a declined payment asked again with its key answers the decline again (402), not 'cannot be paid'; another key gets the conflict", async () => {
    const fake = fakeGateway(["decline"]);
    const actor = invoiceActor(refs, fake.gateway, { paymentAttempts: 3, paymentRetryMs: 0 });
    const failed = await turn(actor, await openInvoice(actor), "PAY", {
      cardToken: "tok_declined",
      idempotencyKey: "k",
    });
    expect(failed.reply).toMatchObject({ accepted: false, code: "payment_declined" });
    const retried = await turn(actor, failed.state, "PAY", {
      cardToken: "tok_declined",
      idempotencyKey: "k",
    });
    expect(retried.reply).toEqual(failed.reply);
    expect(retried.state).toBe(failed.state); // nothing charged, nothing changed
    const other = await turn(actor, failed.state, "PAY", { cardToken: "tok_visa", idempotencyKey: "k2" });
    expect(other.reply).toMatchObject({ accepted: false, code: "conflict" });
    expect(fake.calls).toHaveLength(1);
  });

  test("compensation refunds a paid invoice through the gateway, and voids an unpaid one", async () => {
    const fake = fakeGateway(["approve"]);
    const actor = invoiceActor(refs, fake.gateway, { paymentAttempts: 3, paymentRetryMs: 0 });
    const open = await openInvoice(actor);
    const paid = await turn(actor, open, "PAY", { cardToken: "tok_visa", idempotencyKey: "k" });
    const refunded = await turn(actor, paid.state, "REFUND", { reason: "job rolled back" });
    expect(refunded.state.status).toBe("REFUNDED");
    expect(refunded.emit?.map((e) => [e.type, e.payload.amount])).toEqual([["PAYMENT_REFUNDED", 42_000]]);
    expect(fake.refunds).toEqual(["ch-1"]);
    const voided = await turn(actor, open, "REFUND", { reason: "payment failed" });
    expect(voided.state.status).toBe("VOID");
    expect(voided.emit?.map((e) => e.type)).toEqual(["INVOICE_VOIDED"]);
  });
});
