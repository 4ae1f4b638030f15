import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { type Json, openSocket, type Service, slotTime, startService } from "./fixtures.ts";

let service: Service;
beforeAll(async () => {
  // Invoices fall due 1.5 s after they are created, so the reminder is observable in a test.
  service = await startService({ INVOICE_DUE_MS: "1500" });
}, 120_000);
afterAll(() => service?.stop(), 60_000);

const uid = () => Bun.randomUUIDv7().slice(-8);
const randomHours = () => 24 + Math.floor(Math.random() * 24 * 300);

async function poll<T>(read: () => Promise<T | undefined>, what: string, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const value = await read();
    if (value !== undefined) return value;
    await Bun.sleep(50);
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** Books, starts, runs and completes a repair; returns the ids once the invoice is open. */
async function jobAwaitingPayment(customer: string, technician: string) {
  const booked = await service.call("POST", "/api/v1/bookings", {
    token: customer,
    body: { vehicleId: "car-9", serviceType: "BRAKE_SERVICE", bookingDate: slotTime(randomHours()) },
  });
  expect(booked.status).toBe(201);
  const bookingId: string = booked.body.bookingId;
  const started = await service.call("POST", "/api/v1/repairs/start", {
    token: technician,
    body: { bookingId, estimatedTime: 60 },
  });
  expect(started.status).toBe(201);
  const repairId: string = started.body.repairId;
  for (const [status, progress] of [
    ["DIAGNOSING", 10],
    ["TESTING", 80],
  ] as const) {
    const step = await service.call("POST", `/api/v1/repairs/${repairId}/progress`, {
      token: technician,
      body: { status, progress },
    });
    expect(step.status).toBe(200);
  }
  const done = await service.call("POST", `/api/v1/repairs/${repairId}/complete`, {
    token: technician,
    body: { parts: [{ partId: "BRAKE-PAD-F", quantity: 1 }], labourMinutes: 30 },
  });
  expect(done.status).toBe(200);
  const booking = await poll(async () => {
    const r = await service.call("GET", `/api/v1/bookings/${bookingId}`, { token: customer });
    return r.body.status === "AWAITING_PAYMENT" ? r.body : undefined;
  }, "the booking to await payment");
  return { bookingId, repairId, invoiceId: booking.invoiceId as string, slotId: booking.slotId as string };
}

describe("slot capacity", () => {
  test("50 concurrent bookings for a slot of capacity 3: exactly 3 confirmed, 47 refused with a clear reason", async () => {
    const bookingDate = slotTime(randomHours(), 15);
    const tokens = await Promise.all(
      Array.from({ length: 50 }, (_, i) => service.token("customer", `racer-${uid()}-${i}`)),
    );
    const answers = await Promise.all(
      tokens.map((token, i) =>
        service.call("POST", "/api/v1/bookings", {
          token,
          body: { vehicleId: `car-${i}`, serviceType: "TIRE_CHANGE", bookingDate },
        }),
      ),
    );
    const confirmed = answers.filter((a) => a.status === 201);
    const refused = answers.filter((a) => a.status === 409);
    expect(confirmed.length).toBe(3);
    expect(refused.length).toBe(47);
    for (const a of confirmed) expect(a.body.status).toBe("CONFIRMED");
    for (const a of refused) {
      expect(a.body.error.code).toBe("slot_full");
      expect(a.body.error.message).toMatch(/is full: 3 of 3 places taken/);
    }
    // A cancellation frees a place: the next request for that slot is confirmed.
    const first = confirmed[0]?.body;
    const owner = tokens[answers.indexOf(confirmed[0] as (typeof answers)[number])] as string;
    const cancelled = await service.call("POST", `/api/v1/bookings/${first.bookingId}/cancel`, {
      token: owner,
      body: { reason: "plans changed" },
    });
    expect(cancelled.status).toBe(200);
    expect(cancelled.body.status).toBe("CANCELLED");
    const late = await service.call("POST", "/api/v1/bookings", {
      token: await service.token("customer", `late-${uid()}`),
      body: { vehicleId: "car-late", serviceType: "TIRE_CHANGE", bookingDate },
    });
    expect(late.status).toBe(201);
  }, 60_000);
});

describe("payment", () => {
  test("a declined payment is compensated: booking cancelled, slot released, invoice voided, the customer told", async () => {
    const customerId = `cust-${uid()}`;
    const customer = await service.token("customer", customerId);
    const technician = await service.token("technician", `tech-${uid()}`);
    const { bookingId, invoiceId, slotId } = await jobAwaitingPayment(customer, technician);
    const socket = await openSocket(`${service.wsUrl}?token=${customer}`);
    socket.send({ type: "subscribe", bookingId });
    await socket.waitFor((f) => f.type === "subscribed", "subscription");

    const declined = await service.call("POST", "/api/v1/payments", {
      token: customer,
      body: { invoiceId, cardToken: "tok_declined" },
    });
    expect(declined.status).toBe(402);
    expect(declined.body.error).toEqual({
      code: "payment_declined",
      message: "card declined",
      retryable: false,
    });

    const booking = await poll(async () => {
      const r = await service.call("GET", `/api/v1/bookings/${bookingId}`, { token: customer });
      return r.body.status === "CANCELLED" ? r.body : undefined;
    }, "the booking to be rolled back");
    expect(booking.reason).toBe("payment failed: card declined");
    const invoice = await poll(async () => {
      const r = await service.call("GET", `/api/v1/invoices/${invoiceId}`, { token: customer });
      return r.body.status === "VOID" ? r.body : undefined;
    }, "the invoice to be voided");
    expect(invoice.failureReason).toBe("card declined");
    const job = await service.call("GET", `/api/v1/jobs/${bookingId}`, { token: customer });
    expect(job.body.status).toBe("COMPENSATED");
    // The slot lets the booking go: RELEASE is the cancelled booking's own message to its slot, a hop after
    // the booking reads CANCELLED, so it is waited for rather than read at once.
    const holds = await poll(async () => {
      const [slot] = await service.system.routes.sql<{ state: { holds: Record<string, unknown> } }[]>`
        select state from actor_state where kind = 'slot' and actor_key = ${slotId}`;
      const keys = Object.keys(slot?.state.holds ?? {});
      return keys.includes(bookingId) ? undefined : keys;
    }, "the slot to release the booking");
    expect(holds).not.toContain(bookingId);
    // Told: the rollback notification, by email and SMS.
    const told = await poll(async () => {
      const rows = await service.system.routes.sql<{ channel: string }[]>`
        select channel from notification where customer_id = ${customerId} and template = 'booking-rolled-back'`;
      return rows.length === 2 ? rows.map((r) => r.channel).sort() : undefined;
    }, "the rollback notifications");
    expect(told).toEqual(["email", "sms"]);
    await socket.waitFor((f) => f.type === "status" && f.event === "ROLLBACK_BOOKING", "the rollback frame");
    await socket.waitFor(
      (f) => f.type === "status" && f.event === "BOOKING_CANCELLED",
      "the cancellation frame",
    );
    socket.close();
  }, 60_000);

  test("a payment repeated with the same Idempotency-Key charges once and answers the same", async () => {
    const customer = await service.token("customer", `cust-${uid()}`);
    const technician = await service.token("technician", `tech-${uid()}`);
    const { invoiceId } = await jobAwaitingPayment(customer, technician);
    const key = `pay-${uid()}`;
    const pay = () =>
      service.call("POST", "/api/v1/payments", {
        token: customer,
        body: { invoiceId, cardToken: "tok_visa" },
        headers: { "idempotency-key": key },
      });
    const first = await pay();
    const again = await pay();
    expect(first.status).toBe(200);
    expect(again.status).toBe(200);
    expect(again.body).toEqual(first.body);
    expect(again.headers.get("idempotent-replayed")).toBe("true");
    // Another key on a paid invoice: answered with the paid invoice, no second charge.
    const other = await service.call("POST", "/api/v1/payments", {
      token: customer,
      body: { invoiceId, cardToken: "tok_visa" },
      headers: { "idempotency-key": `${key}-other` },
    });
    expect(other.status).toBe(200);
    expect(other.body.status).toBe("PAID");
    const charges = await service.system.routes.sql<{ status: string }[]>`
      select status from gateway_charge where reference = ${invoiceId}`;
    expect([...charges]).toEqual([{ status: "approved" }]);
    // The same key with a different body is refused.
    const reused = await service.call("POST", "/api/v1/payments", {
      token: customer,
      body: { invoiceId, cardToken: "tok_mastercard" },
      headers: { "idempotency-key": key },
    });
    expect(reused.status).toBe(422);
  }, 60_000);

  test("a gateway that times out once is retried with the same key: one charge, paid", async () => {
    const customer = await service.token("customer", `cust-${uid()}`);
    const technician = await service.token("technician", `tech-${uid()}`);
    const { invoiceId, bookingId } = await jobAwaitingPayment(customer, technician);
    const paid = await service.call("POST", "/api/v1/payments", {
      token: customer,
      body: { invoiceId, cardToken: "tok_flaky" },
    });
    expect(paid.status).toBe(200);
    expect(paid.body).toMatchObject({ status: "PAID", paymentAttempts: 2 });
    const charges = await service.system.routes.sql<{ calls: number; status: string }[]>`
      select calls, status from gateway_charge where reference = ${invoiceId}`;
    expect([...charges]).toEqual([{ calls: 2, status: "approved" }]);
    await poll(async () => {
      const r = await service.call("GET", `/api/v1/bookings/${bookingId}`, { token: customer });
      return r.body.status === "PAID" ? true : undefined;
    }, "the booking to be paid");
  }, 60_000);

  test("an invoice left unpaid past its due time gets one reminder through the saga's durable timer", async () => {
    const customerId = `cust-${uid()}`;
    const customer = await service.token("customer", customerId);
    const technician = await service.token("technician", `tech-${uid()}`);
    const { bookingId } = await jobAwaitingPayment(customer, technician);
    const reminded = await poll(async () => {
      const rows = await service.system.routes.sql<{ channel: string }[]>`
        select channel from notification where customer_id = ${customerId} and template = 'payment-reminder'`;
      return rows.length === 2 ? rows.map((r) => r.channel).sort() : undefined;
    }, "the payment reminder");
    expect(reminded).toEqual(["email", "sms"]);
    const job = await service.call("GET", `/api/v1/jobs/${bookingId}`, { token: customer });
    expect(job.body.history.filter((h: { step: string }) => h.step === "REMIND").length).toBe(1);
    expect(job.body.status).toBe("AWAITING_PAYMENT");
  }, 60_000);
});

describe("reschedule", () => {
  test("a confirmed booking moves to a free slot (the old place is freed); a full slot refuses and the booking stays", async () => {
    const customer = await service.token("customer", `cust-${uid()}`);
    // Three different hours, so the three slots never coincide.
    const base = randomHours();
    const from = slotTime(base, 10);
    const booked = await service.call("POST", "/api/v1/bookings", {
      token: customer,
      body: { vehicleId: "car-m", serviceType: "INSPECTION", bookingDate: from },
    });
    expect(booked.status).toBe(201);
    const { bookingId, slotId: oldSlot } = booked.body;

    // Fill another slot, then try to move there: refused, nothing changes.
    const full = slotTime(base + 1, 0);
    for (let i = 0; i < 3; i++) {
      const other = await service.call("POST", "/api/v1/bookings", {
        token: await service.token("customer", `filler-${uid()}`),
        body: { vehicleId: `f-${i}`, serviceType: "INSPECTION", bookingDate: full },
      });
      expect(other.status).toBe(201);
    }
    const refused = await service.call("POST", `/api/v1/bookings/${bookingId}/reschedule`, {
      token: customer,
      body: { bookingDate: full },
    });
    expect(refused.status).toBe(409);
    expect(refused.body.error.code).toBe("slot_full");
    const unchanged = await service.call("GET", `/api/v1/bookings/${bookingId}`, { token: customer });
    expect(unchanged.body).toMatchObject({ bookingDate: from, slotId: oldSlot, status: "CONFIRMED" });

    const to = slotTime(base + 2, 45);
    const moved = await service.call("POST", `/api/v1/bookings/${bookingId}/reschedule`, {
      token: customer,
      body: { bookingDate: to },
    });
    expect(moved.status).toBe(200);
    expect(moved.body).toMatchObject({ bookingDate: to, status: "CONFIRMED" });
    expect(moved.body.slotId).not.toBe(oldSlot);
    // The old slot let go of the booking; the new one holds it.
    const holds = async (slot: string) => {
      const [row] = await service.system.routes.sql<{ state: { holds: Record<string, unknown> } }[]>`
        select state from actor_state where kind = 'slot' and actor_key = ${slot}`;
      return Object.keys(row?.state.holds ?? {});
    };
    await poll(
      async () => ((await holds(oldSlot)).includes(bookingId) ? undefined : true),
      "the old slot to free",
    );
    expect(await holds(moved.body.slotId)).toContain(bookingId);
    // Bad input on the command routes: 422 with the field, never a 5xx.
    const bad = await service.call("POST", `/api/v1/bookings/${bookingId}/reschedule`, {
      token: customer,
      body: { bookingDate: "soon" },
    });
    expect(bad.status).toBe(422);
    expect(bad.body.error.field).toBe("/bookingDate");
    const extra = await service.call("POST", `/api/v1/bookings/${bookingId}/cancel`, {
      token: customer,
      body: { reason: "x", refund: "all" },
    });
    expect(extra.status).toBe(422);
    const early = await service.call("POST", `/api/v1/bookings/${bookingId}/close`, {
      token: await service.token("technician", `tech-${uid()}`),
    });
    expect(early.status).toBe(409);
    expect(early.body.error.message).toBe("a CONFIRMED booking cannot be closed; it closes once paid");
  }, 60_000);
});

describe("idempotent creation and a gateway that never answers", () => {
  test("the same Idempotency-Key books once: the same booking, replayed; the key with another body is refused", async () => {
    const customer = await service.token("customer", `cust-${uid()}`);
    const body = { vehicleId: "car-i", serviceType: "GENERAL_REPAIR", bookingDate: slotTime(randomHours()) };
    const key = `book-${uid()}`;
    const [first, second] = await Promise.all(
      [0, 1].map(() =>
        service.call("POST", "/api/v1/bookings", {
          token: customer,
          body,
          headers: { "idempotency-key": key },
        }),
      ),
    );
    // Two at once: one runs, the other is told it is still running (409) or gets the stored answer.
    const answers = [first, second].map((a) => a?.status).sort();
    expect([["201", "409"].join(), ["201", "201"].join()]).toContain(answers.join());
    const again = await service.call("POST", "/api/v1/bookings", {
      token: customer,
      body,
      headers: { "idempotency-key": key },
    });
    expect(again.status).toBe(201);
    expect(again.headers.get("idempotent-replayed")).toBe("true");
    const created = [first, second].find((a) => a?.status === 201);
    expect(again.body.bookingId).toBe(created?.body.bookingId);
    const mine = await service.call("GET", "/api/v1/bookings", { token: customer });
    expect(mine.body.map((b: Json) => b.bookingId)).toEqual([created?.body.bookingId]);
    const reused = await service.call("POST", "/api/v1/bookings", {
      token: customer,
      body: { ...body, vehicleId: "another-car" },
      headers: { "idempotency-key": key },
    });
    expect(reused.status).toBe(422);
    expect(reused.body.error.message).toBe("this Idempotency-Key was used for a different request");
  }, 60_000);

  test("a gateway that never answers is tried 3 times, then the payment fails and the job is compensated", async () => {
    const customer = await service.token("customer", `cust-${uid()}`);
    const technician = await service.token("technician", `tech-${uid()}`);
    const { invoiceId, bookingId } = await jobAwaitingPayment(customer, technician);
    const failed = await service.call("POST", "/api/v1/payments", {
      token: customer,
      body: { invoiceId, cardToken: "tok_timeout" },
    });
    expect(failed.status).toBe(402);
    expect(failed.body.error.message).toBe("payment gateway did not answer after 3 attempts");
    const invoice = await poll(async () => {
      const r = await service.call("GET", `/api/v1/invoices/${invoiceId}`, { token: customer });
      return r.body.status === "VOID" ? r.body : undefined;
    }, "the invoice to be voided");
    expect(invoice.paymentAttempts).toBe(3);
    await poll(async () => {
      const r = await service.call("GET", `/api/v1/bookings/${bookingId}`, { token: customer });
      return r.body.status === "CANCELLED" ? true : undefined;
    }, "the booking to be rolled back");
  }, 60_000);
});
