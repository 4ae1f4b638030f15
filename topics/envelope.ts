/**
 * The event envelope every record on an event topic carries, as one TypeBox schema: the TS type is derived
 * from it, and it is checked both when a record is encoded and when one is decoded.
 *
 * @example
 * const bytes = encodeEnvelope(newEnvelope({ eventType: "BOOKING_CREATED", entityId: id, payload }));
 * const envelope = decodeEnvelope(bytes); // throws EnvelopeError (not retryable) on a bad record
 */
import { type Static, type TSchema, Type } from "@sinclair/typebox";
import { TypeCompiler } from "@sinclair/typebox/compiler";

export const CURRENT_SCHEMA_VERSION = 1;

// Patterns, not TypeBox `format`s: formats are looked up in TypeBox's one process-wide registry, where a plugin
// may have put its own (Elysia's OpenAPI plugin registers a valibot parse for "uuid", ~60x slower than a regex,
// and it was 11% of the CPU of a busy process checking envelopes).
const UUID_PATTERN = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$";
const DATE_TIME_PATTERN = "^\\d{4}-\\d{2}-\\d{2}T\\d{2}:\\d{2}:\\d{2}(\\.\\d+)?(Z|[+-]\\d{2}:\\d{2})$";
const Uuid = Type.String({ pattern: UUID_PATTERN });

/** An actor as one of its turns left it: what `source` and `causeSource` hold. */
const Source = Type.Object(
  {
    kind: Type.String({ minLength: 1, maxLength: 100 }),
    key: Type.String({ minLength: 1, maxLength: 200 }),
    version: Type.Integer({ minimum: 1 }),
    state: Type.Record(Type.String(), Type.Unknown()),
  },
  { additionalProperties: false },
);

export const EnvelopeSchema = Type.Object(
  {
    eventId: Uuid,
    /** Past tense, upper snake case: BOOKING_CREATED. */
    eventType: Type.String({ pattern: "^[A-Z][A-Z0-9_]*$", maxLength: 64 }),
    /** The id of the entity the event is about; also the record's key, so one entity's events stay in order. */
    entityId: Type.String({ minLength: 1, maxLength: 200 }),
    /** ISO 8601 instant, UTC. */
    occurredAt: Type.String({ pattern: DATE_TIME_PATTERN }),
    schemaVersion: Type.Integer({ minimum: 1 }),
    /** The id shared by everything one user action caused. */
    correlationId: Uuid,
    /** The id of the message that caused this one; null for a first cause (an HTTP request). */
    causationId: Type.Union([Uuid, Type.Null()]),
    payload: Type.Record(Type.String(), Type.Unknown()),
    /**
     * Who emitted it and what it said of itself right after: the actor (kind and key), the version its turn
     * committed, and what its definition chose to tell of its new state (`eventState`: a status, a progress).
     * Absent on records made outside an actor's turn. A reader wanting the emitter's state as of this record
     * reads it here, never from the store (which may be further on by then).
     */
    source: Type.Optional(Source),
    /**
     * The `source` of the message whose turn emitted this one, when it had one: the actor that asked for this
     * turn, as it was then (a booking's START sent to a repair: the booking, IN_SERVICE, behind REPAIR_STARTED).
     */
    causeSource: Type.Optional(Source),
  },
  { additionalProperties: false },
);

export type EventSource = Static<typeof Source>;

export type Envelope<P extends Record<string, unknown> = Record<string, unknown>> = Omit<
  Static<typeof EnvelopeSchema>,
  "payload"
> & { payload: P };

/** A record that is not a valid envelope: never retryable, it goes to the dead-letter topic. */
export class EnvelopeError extends Error {
  override name = "EnvelopeError";
  readonly retryable = false;
  constructor(
    message: string,
    readonly problems: { path: string; message: string }[] = [],
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

const checkEnvelope = TypeCompiler.Compile(EnvelopeSchema);

/** The pattern lets through dates that are not (2026-13-45T...): an envelope's instant must be a real one. */
function realInstant(value: unknown): boolean {
  const at = (value as { occurredAt?: unknown }).occurredAt;
  return typeof at !== "string" || !Number.isNaN(Date.parse(at));
}

/** Validates `value` against a compiled schema; throws EnvelopeError listing every problem. */
function assertValid<T extends TSchema>(
  check: ReturnType<typeof TypeCompiler.Compile<T>>,
  value: unknown,
  what: string,
): asserts value is Static<T> {
  if (check.Check(value) && realInstant(value)) return;
  const problems = [...check.Errors(value)]
    .slice(0, 10)
    .map((e) => ({ path: e.path || "/", message: e.message }));
  if (problems.length === 0) problems.push({ path: "/occurredAt", message: "Expected a real instant" });
  throw new EnvelopeError(`${what}: ${problems.map((p) => `${p.path} ${p.message}`).join("; ")}`, problems);
}

export interface NewEnvelope<P extends Record<string, unknown>> {
  eventType: string;
  entityId: string;
  payload: P;
  correlationId?: string;
  causationId?: string | null;
  occurredAt?: Date;
  eventId?: string;
  source?: EventSource;
  causeSource?: EventSource;
}

/** Builds an envelope with a fresh time-ordered id; a new correlation starts when none is given. */
export function newEnvelope<P extends Record<string, unknown>>(input: NewEnvelope<P>): Envelope<P> {
  const eventId = input.eventId ?? Bun.randomUUIDv7();
  return {
    eventId,
    eventType: input.eventType,
    entityId: input.entityId,
    occurredAt: (input.occurredAt ?? new Date()).toISOString(),
    schemaVersion: CURRENT_SCHEMA_VERSION,
    correlationId: input.correlationId ?? eventId,
    causationId: input.causationId ?? null,
    payload: input.payload,
    ...(input.source ? { source: input.source } : {}),
    ...(input.causeSource ? { causeSource: input.causeSource } : {}),
  };
}

/** JSON bytes of a valid envelope; throws EnvelopeError before anything invalid can reach a topic. */
export function encodeEnvelope(envelope: Envelope): Buffer {
  assertValid(checkEnvelope, envelope, "invalid envelope");
  return Buffer.from(JSON.stringify(envelope));
}

/** The envelope in a record's value; throws EnvelopeError for missing, non-JSON or invalid values. */
export function decodeEnvelope(value: Buffer | string | null | undefined): Envelope {
  if (value === null || value === undefined || value.length === 0) {
    throw new EnvelopeError("record has no value");
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(typeof value === "string" ? value : value.toString("utf8"));
  } catch (cause) {
    throw new EnvelopeError("record value is not JSON", [], { cause });
  }
  assertValid(checkEnvelope, parsed, "record is not a valid envelope");
  return parsed as Envelope;
}
