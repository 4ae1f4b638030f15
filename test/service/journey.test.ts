import { afterAll, beforeAll, expect, test } from "bun:test";
import { openSocket, type Service, slotTime, startService } from "./fixtures.ts";

let service: Service;
beforeAll(async () => {
  service = await startService();
}, 120_000);
afterAll(() => service?.stop(), 60_000);

const uid = () => Bun.randomUUIDv7().slice(-8);
const randomHours = () => 24 + Math.floor(Math.random() * 24 * 300);

test("the whole job: book -> repair progress -> complete -> invoice -> pay -> PAID -> CLOSED, the customer's WebSocket seeing every step in order", async () => {
  const customerId = `cust-${uid()}`;
  const customer = await service.token("customer", customerId);
  const technician = await service.token("technician", `tech-${uid()}`);
  const socket = await openSocket(`${service.wsUrl}?token=${customer}`);

  // Flow 1: booking.
  const bookingDate = slotTime(randomHours(), 30);
  const booked = await service.call("POST", "/api/v1/bookings", {
    token: customer,
    body: { vehicleId: "car-1", serviceType: "OIL_CHANGE", bookingDate },
  });
  expect(booked.status).toBe(201);
  expect(booked.body).toMatchObject({ status: "CONFIRMED", customerId, vehicleId: "car-1", bookingDate });
  const bookingId: string = booked.body.bookingId;
  expect(booked.headers.get("location")).toBe(`/api/v1/bookings/${bookingId}`);
  socket.send({ type: "subscribe", bookingId });
  const subscribed = await socket.waitFor((f) => f.type === "subscribed", "booking subscription");
  expect(subscribed.current).toMatchObject({ bookingId, status: "CONFIRMED" });

  // Flow 2: repair, with progress.
  const started = await service.call("POST", "/api/v1/repairs/start", {
    token: technician,
    body: { bookingId, estimatedTime: 90 },
  });
  expect(started.status).toBe(201);
  expect(started.body).toMatchObject({ status: "STARTED", bookingId, customerId, estimatedMinutes: 90 });
  const repairId: string = started.body.repairId;
  socket.send({ type: "subscribe", repairId });
  await socket.waitFor((f) => f.type === "subscribed" && f.entity === "repair", "repair subscription");
  for (const [status, progress] of [
    ["DIAGNOSING", 20],
    ["REPAIRING", 60],
    ["TESTING", 90],
  ] as const) {
    const step = await service.call("POST", `/api/v1/repairs/${repairId}/progress`, {
      token: technician,
      body: { status, progress },
    });
    expect(step.status).toBe(200);
    expect(step.body).toMatchObject({ status, progress });
  }
  const completed = await service.call("POST", `/api/v1/repairs/${repairId}/complete`, {
    token: technician,
    body: {
      parts: [
        { partId: "OIL-5W30-4L", quantity: 1 },
        { partId: "FILTER-OIL", quantity: 1 },
      ],
      labourMinutes: 45,
    },
  });
  expect(completed.status).toBe(200);
  expect(completed.body).toMatchObject({
    status: "COMPLETED",
    progress: 100,
    partsCost: 145_000,
    labourCost: 60_000,
  });

  // Flow 3: the invoice follows; the customer pays it.
  const awaiting = await waitForBooking(bookingId, customer, "AWAITING_PAYMENT");
  const invoiceId: string = awaiting.invoiceId;
  const invoice = await service.call("GET", `/api/v1/invoices/${invoiceId}`, { token: customer });
  expect(invoice.status).toBe(200);
  expect(invoice.body).toMatchObject({
    status: "OPEN",
    amount: 205_000,
    currency: "THB",
    bookingId,
    repairId,
  });
  const paid = await service.call("POST", "/api/v1/payments", {
    token: customer,
    body: { invoiceId, cardToken: "tok_visa" },
    headers: { "idempotency-key": `pay-${uid()}` },
  });
  expect(paid.status).toBe(200);
  expect(paid.body).toMatchObject({ status: "PAID", amount: 205_000 });
  await waitForBooking(bookingId, customer, "PAID");

  const closed = await service.call("POST", `/api/v1/bookings/${bookingId}/close`, { token: technician });
  expect(closed.status).toBe(200);
  expect(closed.body.status).toBe("CLOSED");

  // The saga's history, step by step.
  const job = await service.call("GET", `/api/v1/jobs/${bookingId}`, { token: customer });
  expect(job.status).toBe(200);
  expect(job.body.status).toBe("PAID");
  expect(job.body.history.map((h: { step: string }) => h.step)).toEqual([
    "JOB_OPENED",
    "REPAIR_STARTED",
    "REPAIR_DONE",
    "INVOICE_OPENED",
    "PAYMENT_SETTLED",
  ]);

  // The WebSocket saw every step, in order.
  const last = await socket.waitFor(
    (f) => f.type === "status" && f.event === "BOOKING_CLOSED",
    "BOOKING_CLOSED frame",
  );
  expect(last.id).toBe(bookingId);
  const repairFrames = socket.frames.filter((f) => f.type === "status" && f.entity === "repair");
  expect(
    dedupe(repairFrames).map((f) => [f.event, f.detail.status ?? null, f.detail.progress ?? null]),
  ).toEqual([
    ["REPAIR_STARTED", null, null],
    ["REPAIR_IN_PROGRESS", "DIAGNOSING", 20],
    ["REPAIR_IN_PROGRESS", "REPAIRING", 60],
    ["REPAIR_IN_PROGRESS", "TESTING", 90],
    ["REPAIR_COMPLETED", null, null],
  ]);
  const bookingEvents = dedupe(
    socket.frames.filter((f) => f.type === "status" && f.entity === "booking"),
  ).map((f) => f.event);
  // Every step reached the booking's subscribers; the booking's own changes in the order they happened (frames
  // of different entities, e.g. the repair's and the invoice's, come from different partitions: no order between them).
  for (const step of ["REPAIR_STARTED", "REPAIR_COMPLETED", "INVOICE_CREATED", "PAYMENT_COMPLETED"]) {
    expect(bookingEvents).toContain(step);
  }
  // (BOOKING_CREATED may come before the subscription or after it: the subscribe raced the status reactor.)
  expect(bookingEvents.filter((e) => e.startsWith("BOOKING_") && e !== "BOOKING_CREATED")).toEqual([
    "BOOKING_IN_SERVICE",
    "BOOKING_AWAITING_PAYMENT",
    "BOOKING_PAID",
    "BOOKING_CLOSED",
  ]);
  socket.close();
}, 120_000);

/** Frames are at least once: keep the first of each eventId. */
function dedupe<F extends { eventId: string }>(frames: F[]): F[] {
  const seen = new Set<string>();
  return frames.filter((f) => !seen.has(f.eventId) && seen.add(f.eventId));
}

async function waitForBooking(bookingId: string, token: string, status: string) {
  const deadline = Date.now() + 30_000;
  let last: unknown;
  while (Date.now() < deadline) {
    const response = await service.call("GET", `/api/v1/bookings/${bookingId}`, { token });
    last = response.body;
    if (response.status === 200 && response.body.status === status) return response.body;
    await Bun.sleep(50);
  }
  throw new Error(`booking ${bookingId} did not reach ${status}: ${JSON.stringify(last)}`);
}
