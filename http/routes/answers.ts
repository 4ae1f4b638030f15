/**
 * What each route answers, for the OpenAPI document (`/docs/json`): the body of every status it can send, so a
 * generated client is typed. Documentation only — Elysia does not check answers at run time (a check on every
 * response would cost each request); `test/service/fixtures.ts` checks every answer the service tests get against
 * these schemas instead, so the document cannot drift from what is sent.
 */
import { type TSchema, t } from "elysia";
import { BOOKING_STATUSES } from "../../actors/booking/booking.ts";
import { INVOICE_STATUSES } from "../../actors/invoice/invoice.ts";
import { JOB_STATUSES } from "../../actors/job-saga/job-saga.ts";
import { REPAIR_STATUSES } from "../../actors/repair/repair.ts";
import { ID_PATTERN } from "./schemas.ts";

const Nullable = <T extends TSchema>(schema: T) => t.Union([schema, t.Null()]);
const Id = t.String({ pattern: ID_PATTERN });
const Time = t.String({ description: "ISO 8601 date-time" });
const Money = t.Integer({ description: "in the smallest unit of the currency (satang)" });
const closed = { additionalProperties: false } as const;
/** The statuses an answer can show: the actor's own list, without the "never created" one (NEW, NONE: 404). */
const Shown = (statuses: readonly string[]) =>
  t.UnionEnum(statuses.filter((s) => s !== "NEW" && s !== "NONE") as [string, ...string[]]);

/** Every refusal and failure: `retryable` says whether the same request may succeed later. */
export const ErrorAnswer = t.Object(
  {
    error: t.Object(
      {
        code: t.String(),
        message: t.String(),
        field: t.Optional(t.String({ description: "JSON pointer of the input at fault" })),
        retryable: t.Boolean(),
      },
      closed,
    ),
    details: t.Optional(t.Array(t.Object({ field: t.String(), message: t.String() }, closed))),
  },
  closed,
);

/** 202: the command is durably queued (or still being decided); its outcome will show at `statusUrl`. */
export const AcceptedAnswer = t.Object(
  {
    status: t.Literal("accepted"),
    message: t.String(),
    statusUrl: t.String(),
    messageId: t.Optional(t.String()),
    bookingId: t.Optional(Id),
  },
  closed,
);

export const BookingAnswer = t.Object(
  {
    bookingId: Id,
    status: Shown(BOOKING_STATUSES),
    customerId: Id,
    vehicleId: Id,
    serviceType: t.String(),
    bookingDate: Time,
    slotId: t.String(),
    notes: Nullable(t.String()),
    repairId: Nullable(Id),
    invoiceId: Nullable(Id),
    amount: Nullable(Money),
    reason: Nullable(t.String()),
    createdAt: Nullable(Time),
    updatedAt: Nullable(Time),
    version: t.Integer(),
  },
  closed,
);

const PartUsed = t.Object({ partId: Id, name: t.String(), quantity: t.Integer(), unitPrice: Money }, closed);

export const RepairAnswer = t.Object(
  {
    repairId: Id,
    status: Shown(REPAIR_STATUSES),
    progress: t.Integer({ minimum: 0, maximum: 100 }),
    bookingId: Id,
    customerId: Id,
    technicianId: Id,
    estimatedMinutes: t.Integer(),
    parts: t.Array(PartUsed),
    labourMinutes: t.Integer(),
    labourCost: Money,
    partsCost: Money,
    startedAt: Nullable(Time),
    completedAt: Nullable(Time),
    updatedAt: Nullable(Time),
    version: t.Integer(),
  },
  closed,
);

export const RepairStatusAnswer = t.Object(
  {
    repairId: Id,
    status: RepairAnswer.properties.status,
    progress: RepairAnswer.properties.progress,
    updatedAt: Nullable(Time),
  },
  closed,
);

export const InvoiceAnswer = t.Object(
  {
    invoiceId: Id,
    status: Shown(INVOICE_STATUSES),
    bookingId: Id,
    repairId: Id,
    customerId: Id,
    lines: t.Array(
      t.Object({ description: t.String(), quantity: t.Integer(), unitPrice: Money, amount: Money }, closed),
    ),
    amount: Money,
    currency: t.String(),
    dueAt: Nullable(Time),
    chargeId: Nullable(t.String()),
    paymentAttempts: t.Integer(),
    failureReason: Nullable(t.String()),
    createdAt: Nullable(Time),
    paidAt: Nullable(Time),
    updatedAt: Nullable(Time),
    version: t.Integer(),
  },
  closed,
);

export const JobAnswer = t.Object(
  {
    bookingId: Id,
    status: Shown(JOB_STATUSES),
    customerId: Id,
    repairId: Nullable(Id),
    invoiceId: Nullable(Id),
    amount: Nullable(Money),
    dueAt: Nullable(Time),
    bookingDate: Nullable(Time),
    history: t.Array(
      t.Object({ at: Time, step: t.String(), detail: t.Record(t.String(), t.Unknown()) }, closed),
    ),
    version: t.Integer(),
  },
  closed,
);

export const DailyAnswer = t.Object(
  {
    date: t.String({ description: "YYYY-MM-DD (UTC)" }),
    metrics: t.Record(t.String(), t.Number()),
    redis: t.Object({ bookings: Nullable(t.Number()), revenue: Nullable(t.Number()) }, closed),
  },
  closed,
);

export const PartAnswer = t.Object(
  {
    partId: Id,
    name: t.String(),
    unitPrice: Money,
    stock: t.Integer(),
    lowStockThreshold: t.Integer(),
    lowStock: t.Boolean(),
  },
  closed,
);

export const DeadLetterAnswer = t.Object(
  {
    id: t.Integer(),
    consumer: t.String(),
    sourceTopic: t.String(),
    sourcePartition: t.Integer(),
    sourceOffset: t.String({ description: "a Kafka offset (64-bit, as a string)" }),
    messageKey: Nullable(t.String()),
    value: Nullable(t.String({ description: "the record's value as UTF-8" })),
    headers: t.Record(t.String(), t.String()),
    errorClass: t.String(),
    errorCode: Nullable(t.String()),
    errorMessage: t.String(),
    retryable: t.Boolean(),
    attempts: t.Integer(),
    firstFailureAt: Time,
    lastFailureAt: Time,
    host: t.String(),
    status: t.UnionEnum(["dead", "parked", "replayed", "skipped"]),
    replayedAt: Nullable(Time),
    skippedAt: Nullable(Time),
    skippedBy: Nullable(t.String()),
    skipReason: Nullable(t.String()),
    createdAt: Time,
  },
  closed,
);

export const ReplayAnswer = t.Object({ replayed: t.Array(t.Integer()) }, closed);
export const SkipAnswer = t.Object({ skipped: t.Array(t.Integer()) }, closed);

export const GroupView = t.Object(
  {
    groupId: t.String(),
    state: t.String({ description: "Kafka's group state (Stable, PreparingRebalance, Empty...)" }),
    members: t.Integer(),
    lag: t.Integer(),
    partitions: t.Array(
      t.Object(
        {
          topic: t.String(),
          partition: t.Integer(),
          owner: Nullable(t.String({ description: "the host holding the partition's lease" })),
          epoch: Nullable(t.Integer()),
          member: Nullable(t.String({ description: "the client id of the member Kafka assigned it" })),
          committed: t.String({ description: "committed offset (-1: none)" }),
          end: t.String(),
          lag: t.Integer(),
          paused: t.Boolean({ description: "an operator paused it (held across rebalances until resumed)" }),
          pausedBy: Nullable(t.String()),
          pauseReason: Nullable(t.String()),
        },
        closed,
      ),
    ),
  },
  closed,
);

export const HostView = t.Object(
  {
    hostId: t.String(),
    role: t.String({ description: "what the process runs (PITSTOP_RUN), e.g. http,actors,reactors" }),
    version: t.String(),
    up: t.Boolean({ description: "false: it has not reported for three intervals (dead or frozen)" }),
    startedAt: Time,
    seenAt: Time,
    uptimeSeconds: t.Integer(),
    activeActors: t.Integer(),
    inFlight: t.Integer({ description: "turns and reactor events running now" }),
    fenced: t.Integer({ description: "turns refused because another host took the partition" }),
    failed: t.Integer({ description: "partition workers failed and consumers crashed" }),
    deadLetters: t.Integer(),
    groups: t.Array(
      t.Object(
        {
          groupId: t.String(),
          partitions: t.Array(
            t.Object(
              {
                topic: t.String(),
                partition: t.Integer(),
                epoch: t.Integer(),
                lag: Nullable(t.Integer()),
                backlog: t.Integer({ description: "fetched records not finished" }),
                inFlight: t.Integer(),
                held: t.Boolean({ description: "paused by an operator: nothing new starts" }),
              },
              closed,
            ),
          ),
        },
        closed,
      ),
    ),
  },
  closed,
);

export const StuckView = t.Object(
  {
    kind: t.String(),
    key: t.String(),
    status: Nullable(t.String()),
    version: t.Integer(),
    updatedAt: Time,
    idleSeconds: t.Integer(),
  },
  closed,
);

export const AuditView = t.Object(
  {
    id: t.Integer(),
    at: Time,
    who: t.String({ description: "role:subject of the token" }),
    action: t.String(),
    target: t.Record(t.String(), t.Unknown()),
    outcome: t.Record(t.String(), t.Unknown()),
  },
  closed,
);

export const PauseAnswer = t.Object(
  {
    groupId: t.String(),
    topic: t.String(),
    partition: t.Integer(),
    paused: t.Boolean(),
    changed: t.Boolean({ description: "false: it was so already" }),
  },
  closed,
);

export const ParkAnswer = t.Object(
  { kind: t.String(), key: t.String(), parked: t.Boolean(), changed: t.Boolean() },
  closed,
);

export const ActorView = t.Object(
  {
    kind: t.String(),
    key: t.String(),
    state: t.Unknown({ description: "the actor's state as committed (null: none yet)" }),
    version: t.Integer(),
    lastPartition: Nullable(t.Integer()),
    lastOffset: Nullable(t.String()),
    parked: t.Boolean(),
    parkedAt: Nullable(Time),
    updatedAt: Nullable(Time),
    timers: t.Array(t.Object({ name: t.String(), fireAt: Time, type: t.String() }, closed)),
    deadLetters: t.Array(
      t.Object(
        {
          id: t.Integer(),
          status: t.String(),
          errorClass: t.String(),
          errorCode: Nullable(t.String()),
          errorMessage: t.String(),
          source: t.String({ description: "topic[partition]@offset" }),
          createdAt: Time,
        },
        closed,
      ),
    ),
    records: t.Array(
      t.Object(
        {
          id: t.String(),
          topic: t.String(),
          type: Nullable(t.String()),
          createdAt: Time,
          publishedAt: Nullable(Time),
        },
        closed,
      ),
      {
        description: "records of this key still in the outbox (kept a while after publishing), newest first",
      },
    ),
  },
  closed,
);

const WHY: Record<number, string> = {
  200: "done",
  201: "created",
  202: "accepted: still being decided, or queued; the outcome will show at statusUrl",
  400: "the body is not JSON",
  401: "no valid bearer token",
  402: "the payment was declined",
  403: "the token's role or owner may not do this",
  404: "no such entity (or not yours)",
  409: "refused in the entity's current state (a full slot, a transition not allowed)",
  413: "the body is too large",
  422: "an input is invalid: `field` names it",
  429: "too many requests for this token: see Retry-After",
  431: "the request's headers are too large",
  500: "a fault of ours; retryable",
  503: "a dependency is unavailable, the command failed and was dead-lettered, or the service is draining; retryable",
};

type Responses = Record<
  string,
  { description: string; content: { "application/json": { schema: TSchema } } }
>;

/** OpenAPI `responses` of these statuses and bodies. */
export function documented(bodies: Record<number, TSchema>): Responses {
  const out: Responses = {};
  for (const [status, schema] of Object.entries(bodies)) {
    out[status] = { description: WHY[Number(status)] ?? "", content: { "application/json": { schema } } };
  }
  return out;
}

/** The refusals every authenticated route can give. */
const COMMON_REFUSALS = [401, 403, 413, 422, 429, 431, 500, 503] as const;

/**
 * A route's answers as OpenAPI `responses`: the given statuses with their bodies, and the error shape for the
 * refusals every authenticated route can give (plus any listed in `refusals`).
 */
export function answers(
  ok: Partial<Record<200 | 201 | 202, TSchema>>,
  refusals: readonly number[] = [],
): Responses {
  const out = documented(ok as Record<number, TSchema>);
  for (const status of [...new Set([...COMMON_REFUSALS, ...refusals])].sort()) {
    out[String(status)] = {
      description: WHY[status] ?? "refused",
      content: { "application/json": { schema: ErrorAnswer } },
    };
  }
  return out;
}
