/**
 * Nothing waits forever (guarantee 14), broker-free: every state of a booking or a job saga that waits on another
 * actor or a person holds a durable timer, and when it fires the entity moves on — asks again, gives up and
 * says so, or repeats its last word to whoever missed it. Handlers are called directly (Given / When / Then).
 */
import { describe, expect, test } from "bun:test";
import type { TurnContext, TurnResult } from "../runtime/index.ts";
import { type BookingState, bookingActor, initialBooking } from "./booking/booking.ts";
import { topicsIn } from "./events.ts";
import { invoiceActor } from "./invoice/invoice.ts";
import { initialJob, type JobState, jobSagaActor } from "./job-saga/job-saga.ts";
import { refsIn } from "./refs.ts";
import { initialRepair, repairActor } from "./repair/repair.ts";

const refs = refsIn(topicsIn(""));
const settings = {
  invoiceDueMs: 86_400_000,
  answerTimeoutMs: 30_000,
  checkIntervalMs: 600_000,
  noShowGraceMs: 3_600_000,
  paymentAttempts: 3,
  paymentRetryMs: 0,
};
const now = new Date("2026-12-01T10:00:00Z");
const ctx = (kind: string, key: string): TurnContext => ({
  kind,
  key,
  topic: `${kind}-mailbox`,
  partition: 0,
  offset: "0",
  attempt: 1,
  now,
});
const booking = bookingActor(refs, settings);
const saga = jobSagaActor(refs, settings);
const envelope = {} as never;
function bookingTurn(state: BookingState, type: string, payload: unknown) {
  return booking.handle(
    state,
    { type, payload, envelope } as never,
    ctx("booking", "b-1"),
  ) as TurnResult<BookingState>;
}
function sagaTurn(state: JobState, type: string, payload: unknown) {
  return saga.handle(
    state,
    { type, payload, envelope } as never,
    ctx("job-saga", "b-1"),
  ) as TurnResult<JobState>;
}
const timerNames = (r: TurnResult<unknown>) =>
  (r.timers ?? []).map((t) => ("set" in t ? `set ${t.set} ${t.at.toISOString()}` : `cancel ${t.cancel}`));
const sends = (r: TurnResult<unknown>) => (r.send ?? []).map((s) => `${s.to.kind}/${s.to.key} ${s.type}`);

const create = {
  customerId: "c-1",
  vehicleId: "v-1",
  serviceType: "OIL_CHANGE",
  bookingDate: "2026-12-05T09:00:00.000Z",
};
const pending = bookingTurn(initialBooking("b-1"), "CREATE", create);
const slotId = pending.state.slotId;

describe("a booking waiting for its slot", () => {
  test("a new booking asks its slot and sets a deadline for the answer", () => {
    expect(pending.state.status).toBe("PENDING");
    expect(sends(pending)).toEqual([`slot/${slotId} HOLD`]);
    expect(timerNames(pending)).toEqual(["set slot-answer 2026-12-01T10:00:30.000Z"]);
  });

  test("no answer in time: it asks again, up to three times, then is rejected, says so, and gives any late place back", () => {
    const second = bookingTurn(pending.state, "SLOT_TIMEOUT", { slotId, purpose: "create", attempt: 1 });
    expect(sends(second)).toEqual([`slot/${slotId} HOLD`]);
    expect(second.timers?.[0]).toMatchObject({ set: "slot-answer", payload: { attempt: 2 } });
    const third = bookingTurn(pending.state, "SLOT_TIMEOUT", { slotId, purpose: "create", attempt: 2 });
    expect(third.timers?.[0]).toMatchObject({ set: "slot-answer", payload: { attempt: 3 } });
    const given = bookingTurn(pending.state, "SLOT_TIMEOUT", { slotId, purpose: "create", attempt: 3 });
    expect(given.state).toMatchObject({
      status: "REJECTED",
      reason: `slot ${slotId} did not answer 3 requests`,
    });
    expect(given.emit?.map((e) => e.type)).toEqual(["BOOKING_REJECTED"]);
    expect(sends(given)).toEqual([`slot/${slotId} RELEASE`]);
    expect(timerNames(given)).toEqual(["cancel slot-answer", "cancel sync"]);
  });

  test("a late copy of the slot's answer (it was asked again) keeps the place however far the booking has come; a cancelled booking gives it back", () => {
    const held = bookingTurn(pending.state, "SLOT_HELD", { slotId, purpose: "create" }).state;
    for (const status of ["CONFIRMED", "IN_SERVICE", "AWAITING_PAYMENT", "PAID", "CLOSED"] as const) {
      const copy = bookingTurn({ ...held, status }, "SLOT_HELD", { slotId, purpose: "create" });
      expect(sends(copy)).toEqual([]);
      expect(copy.state.status).toBe(status);
    }
    const cancelled = bookingTurn(held, "CANCEL", { reason: "x" }).state;
    expect(sends(bookingTurn(cancelled, "SLOT_HELD", { slotId, purpose: "create" }))).toEqual([
      `slot/${slotId} RELEASE`,
    ]);
  });

  test("an answer cancels the deadline; confirmed, the booking starts syncing with its job", () => {
    const held = bookingTurn(pending.state, "SLOT_HELD", { slotId, purpose: "create" });
    expect(held.state.status).toBe("CONFIRMED");
    expect(timerNames(held)).toEqual(["cancel slot-answer", "set sync 2026-12-01T10:10:00.000Z"]);
    const late = bookingTurn(held.state, "SLOT_TIMEOUT", { slotId, purpose: "create", attempt: 1 });
    expect(late).toEqual({ state: held.state }); // answered meanwhile: nothing
    const refused = bookingTurn(pending.state, "SLOT_REFUSED", { slotId, purpose: "create", reason: "full" });
    expect(refused.state.status).toBe("REJECTED");
    expect(timerNames(refused)).toEqual(["cancel slot-answer", "cancel sync"]);
  });
});

describe("a confirmed booking and its job saga", () => {
  const confirmed = bookingTurn(pending.state, "SLOT_HELD", { slotId, purpose: "create" }).state;
  const open = sagaTurn(initialJob("b-1"), "JOB_OPENED", {
    customerId: "c-1",
    slotId,
    bookingDate: create.bookingDate,
  });

  test("the booking's sync timer tells the saga where it stands, and is set again; a terminal booking stops", () => {
    const sync = bookingTurn(confirmed, "SYNC", {});
    expect(sends(sync)).toEqual(["job-saga/b-1 SYNC_BOOKING"]);
    expect(sync.send?.[0]?.payload).toMatchObject({
      status: "CONFIRMED",
      slotId,
      bookingDate: create.bookingDate,
    });
    expect(timerNames(sync)).toEqual(["set sync 2026-12-01T10:10:00.000Z"]);
    const cancelled = bookingTurn(confirmed, "CANCEL", { reason: "changed my mind" });
    expect(timerNames(cancelled)).toEqual(["cancel slot-answer", "cancel sync"]);
    expect(bookingTurn(cancelled.state, "SYNC", {})).toEqual({ state: cancelled.state });
  });

  test("a saga that never heard of the job (JOB_OPENED lost) opens it from the booking's sync", () => {
    const synced = sagaTurn(initialJob("b-1"), "SYNC_BOOKING", {
      status: "CONFIRMED",
      customerId: "c-1",
      slotId,
      bookingDate: create.bookingDate,
      repairId: null,
      invoiceId: null,
    });
    expect(synced.state).toMatchObject({
      status: "OPEN",
      customerId: "c-1",
      bookingDate: create.bookingDate,
    });
    expect(timerNames(synced)).toEqual(["set no-show 2026-12-05T10:00:00.000Z"]);
  });

  test("an open job has a no-show deadline: the repair not started by then, the job is cancelled and the booking rolled back", () => {
    expect(timerNames(open)).toEqual(["set no-show 2026-12-05T10:00:00.000Z"]);
    const noShow = sagaTurn(open.state, "NO_SHOW", {});
    expect(noShow.state.status).toBe("CANCELLED");
    expect(sends(noShow)).toEqual(["booking/b-1 ROLLBACK"]);
    const started = sagaTurn(open.state, "REPAIR_STARTED", { repairId: "r-1", technicianId: "t-1" });
    expect(timerNames(started)).toEqual(["cancel no-show", "set check 2026-12-01T10:10:00.000Z"]);
    expect(sagaTurn(started.state, "NO_SHOW", {})).toEqual({ state: started.state });
  });

  test("a repairing job checks with its repair; a completed repair tells it again (REPAIR_DONE lost)", () => {
    const repairing = sagaTurn(open.state, "REPAIR_STARTED", { repairId: "r-1", technicianId: "t-1" }).state;
    const check = sagaTurn(repairing, "CHECK", {});
    expect(sends(check)).toEqual(["repair/r-1 REPORT"]);
    expect(timerNames(check)).toEqual(["set check 2026-12-01T10:10:00.000Z"]);
    const repair = repairActor(refs);
    const inProgress = { ...initialRepair("r-1"), status: "REPAIRING" as const, bookingId: "b-1" };
    expect(
      repair.handle(inProgress, { type: "REPORT", payload: {}, envelope } as never, ctx("repair", "r-1")),
    ).toEqual({
      state: inProgress,
    });
    const completed = {
      ...inProgress,
      status: "COMPLETED" as const,
      labourMinutes: 30,
      labourCost: 100,
      partsCost: 0,
    };
    const told = repair.handle(
      completed,
      { type: "REPORT", payload: {}, envelope } as never,
      ctx("repair", "r-1"),
    );
    expect(sends(told as TurnResult<unknown>)).toEqual(["job-saga/b-1 REPAIR_DONE"]);
  });

  test("an invoicing job asks its invoice again until it answers; an open invoice answers a copy of its CREATE", async () => {
    const repairing = sagaTurn(open.state, "REPAIR_STARTED", { repairId: "r-1", technicianId: "t-1" }).state;
    const done = sagaTurn(repairing, "REPAIR_DONE", {
      repairId: "r-1",
      parts: [],
      labourMinutes: 30,
      labourCost: 100,
      partsCost: 0,
    });
    expect(done.state.status).toBe("INVOICING");
    expect(timerNames(done)).toEqual(["set check 2026-12-01T10:00:30.000Z"]);
    const again = sagaTurn(done.state, "CHECK", {});
    const invoiceId = done.state.invoiceId as string;
    expect(sends(again)).toEqual([`invoice/${invoiceId} CREATE`]);
    expect(again.send?.[0]?.payload).toEqual(done.send?.[0]?.payload);
    const invoice = invoiceActor(
      refs,
      { charge: async () => ({ status: "declined", reason: "x" }), refund: async () => {} },
      settings,
    );
    const created = await invoice.handle(
      (await import("./invoice/invoice.ts")).initialInvoice(invoiceId),
      { type: "CREATE", payload: done.send?.[0]?.payload, envelope } as never,
      ctx("invoice", invoiceId),
    );
    const copy = await invoice.handle(
      created.state,
      { type: "CREATE", payload: done.send?.[0]?.payload, envelope } as never,
      ctx("invoice", invoiceId),
    );
    expect(sends(copy)).toEqual(["job-saga/b-1 INVOICE_OPENED"]);
  });

  test("a job awaiting payment checks with its invoice, which tells it again how the payment went (PAYMENT_SETTLED lost)", async () => {
    const awaiting: JobState = { ...open.state, status: "AWAITING_PAYMENT", invoiceId: "inv-1", amount: 500 };
    const check = sagaTurn(awaiting, "CHECK", {});
    expect(sends(check)).toEqual(["invoice/inv-1 REPORT"]);
    expect(timerNames(check)).toEqual(["set check 2026-12-01T10:10:00.000Z"]);
    const invoice = invoiceActor(
      refs,
      { charge: async () => ({ status: "approved", chargeId: "ch" }), refund: async () => {} },
      settings,
    );
    const { initialInvoice } = await import("./invoice/invoice.ts");
    const paid = {
      ...initialInvoice("inv-1"),
      status: "PAID" as const,
      bookingId: "b-1",
      amount: 500,
      chargeId: "ch-1",
    };
    const told = await invoice.handle(
      paid,
      { type: "REPORT", payload: {}, envelope } as never,
      ctx("invoice", "inv-1"),
    );
    expect(sends(told)).toEqual(["job-saga/b-1 PAYMENT_SETTLED"]);
    const settled = sagaTurn(awaiting, "PAYMENT_SETTLED", {
      invoiceId: "inv-1",
      amount: 500,
      chargeId: "ch-1",
    });
    expect(settled.state.status).toBe("PAID");
    expect(timerNames(settled)).toEqual(["cancel payment-reminder", "cancel check", "cancel no-show"]);
  });

  test("a paid job repeats MARK_PAID to a booking that syncs still awaiting payment (MARK_PAID lost)", () => {
    const paid: JobState = { ...open.state, status: "PAID", invoiceId: "inv-1", amount: 500 };
    const synced = sagaTurn(paid, "SYNC_BOOKING", {
      status: "AWAITING_PAYMENT",
      customerId: "c-1",
      slotId,
      bookingDate: create.bookingDate,
      repairId: "r-1",
      invoiceId: "inv-1",
    });
    expect(sends(synced)).toEqual(["booking/b-1 MARK_PAID"]);
    const markPaid = bookingTurn({ ...confirmed, status: "AWAITING_PAYMENT" }, "MARK_PAID", {
      invoiceId: "inv-1",
      amount: 500,
    });
    expect(markPaid.state.status).toBe("PAID");
    expect(timerNames(markPaid)).toEqual(["cancel slot-answer", "cancel sync"]);
  });
});
