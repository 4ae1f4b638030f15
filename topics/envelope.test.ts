import { describe, expect, test } from "bun:test";
import { decodeEnvelope, EnvelopeError, encodeEnvelope, newEnvelope } from "./envelope.ts";

const valid = () =>
  newEnvelope({ eventType: "BOOKING_CREATED", entityId: "booking-1", payload: { customerId: "c-1" } });

function errorOf(run: () => unknown): EnvelopeError {
  try {
    run();
  } catch (error) {
    if (error instanceof EnvelopeError) return error;
    throw error;
  }
  throw new Error("expected an EnvelopeError");
}

describe("event envelope", () => {
  test("a new envelope starts its own correlation and has no cause", () => {
    const envelope = valid();
    expect(envelope.correlationId).toBe(envelope.eventId);
    expect(envelope.causationId).toBeNull();
    expect(envelope.schemaVersion).toBe(1);
    expect(Number.isNaN(Date.parse(envelope.occurredAt))).toBe(false);
  });

  test("encode then decode gives back the same envelope", () => {
    const envelope = newEnvelope({
      eventType: "REPAIR_STARTED",
      entityId: "repair-9",
      payload: { progress: 0 },
      correlationId: Bun.randomUUIDv7(),
      causationId: Bun.randomUUIDv7(),
    });
    expect(decodeEnvelope(encodeEnvelope(envelope))).toEqual(envelope);
  });

  test("encoding refuses an invalid envelope and names the field", () => {
    const error = errorOf(() => encodeEnvelope({ ...valid(), eventType: "booking created" }));
    expect(error.retryable).toBe(false);
    expect(error.problems.map((p) => p.path)).toContain("/eventType");
  });

  test("decoding refuses an empty value, bad JSON, wrong types, bad formats and unknown fields", () => {
    const good = valid();
    const cases: [string, Buffer | null][] = [
      ["record has no value", null],
      ["record value is not JSON", Buffer.from("{nope")],
      ["/eventId", Buffer.from(JSON.stringify({ ...good, eventId: "not-a-uuid" }))],
      ["/occurredAt", Buffer.from(JSON.stringify({ ...good, occurredAt: "yesterday" }))],
      ["/schemaVersion", Buffer.from(JSON.stringify({ ...good, schemaVersion: "1" }))],
      ["/payload", Buffer.from(JSON.stringify({ ...good, payload: [1, 2] }))],
      ["/extra", Buffer.from(JSON.stringify({ ...good, extra: true }))],
      ["/entityId", Buffer.from(JSON.stringify({ ...good, entityId: undefined }))],
    ];
    for (const [expected, bytes] of cases) {
      const error = errorOf(() => decodeEnvelope(bytes));
      const text = `${error.message} ${error.problems.map((p) => p.path).join(" ")}`;
      expect(text).toContain(expected);
    }
  });
});
