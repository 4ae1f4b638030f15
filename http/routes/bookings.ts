/** Bookings: create (the seed's `POST /api/v1/bookings`), read, list, reschedule, cancel, close. */
import { Elysia, t } from "elysia";
import { type BookingState, bookingView } from "../../actors/booking/booking.ts";
import { serviceTypes } from "../../actors/service-catalogue.ts";
import { authentication, requireRole } from "../auth.ts";
import { command } from "../commands.ts";
import type { RouteDeps } from "../deps.ts";
import { forbidden, unprocessable } from "../errors.ts";
import { idempotently } from "../idempotency.ts";
import { requestContext } from "../observability.ts";
import { AcceptedAnswer, answers, BookingAnswer } from "./answers.ts";
import { bookingTime, Id, IdParams, ListQuery, pageSize, strict } from "./schemas.ts";

const CreateBooking = t.Object(
  {
    customerId: t.Optional(Id),
    vehicleId: Id,
    serviceType: t.UnionEnum(serviceTypes as [string, ...string[]]),
    bookingDate: t.String({ minLength: 1, maxLength: 40 }),
    notes: t.Optional(t.String({ maxLength: 500 })),
  },
  strict,
);

export function bookingRoutes(deps: RouteDeps) {
  const { entities, client, refs } = deps;
  const url = (id: string) => `/api/v1/bookings/${id}`;
  const remember = async (answer: { status: number; view?: unknown }, id: string) => {
    if (answer.view) await entities.remember("booking", id, answer.view as BookingState);
  };
  return new Elysia({ prefix: "/api/v1/bookings", normalize: false })
    .use(authentication(deps.tokens, deps.limiter))
    .use(requestContext(deps.log))
    .post(
      "",
      async ({ body, principal, headers, set, trace }) => {
        requireRole(principal, "customer", "admin");
        let customerId = body.customerId;
        if (principal.role === "customer") {
          if (customerId !== undefined && customerId !== principal.sub) {
            throw forbidden("a customer books for themselves: customerId must be your own or left out");
          }
          customerId = principal.sub;
        } else if (!customerId) {
          throw unprocessable("customerId is required when an admin books", "/customerId");
        }
        const at = bookingTime(body.bookingDate, "/bookingDate");
        return idempotently(
          deps.sql,
          principal,
          "POST /api/v1/bookings",
          headers["idempotency-key"],
          body,
          set,
          async ({ messageId, entityId: id }) => {
            // One account must not take every slot of a day (OWASP API4). Counted from the bookings' states, so
            // creates of one customer racing each other may pass it together by a few: a bound, not a ledger.
            if (
              deps.maxOpenBookings > 0 &&
              (await entities.openBookings(customerId)) >= deps.maxOpenBookings
            ) {
              return {
                status: 409,
                body: {
                  error: {
                    code: "too_many_open_bookings",
                    message: `at most ${deps.maxOpenBookings} bookings may be open at once; finish or cancel one first`,
                    retryable: false,
                  },
                },
              };
            }
            const answer = await command(
              client,
              refs.booking(id),
              "CREATE",
              {
                customerId,
                vehicleId: body.vehicleId,
                serviceType: body.serviceType,
                bookingDate: at.toISOString(),
                ...(body.notes !== undefined ? { notes: body.notes } : {}),
              },
              { messageId, timeoutMs: deps.askTimeoutMs, statusUrl: url(id), okStatus: 201, trace },
            );
            await remember(answer, id);
            const decided = asDecided(answer, url(id));
            // Still deciding: the answer names the booking too, so a client can follow it.
            const final =
              decided.status === 202
                ? { ...decided, body: { ...(decided.body as object), bookingId: id } }
                : decided;
            if (final.status === 201 || final.status === 202) set.headers.location = url(id);
            return final;
          },
        );
      },
      {
        body: CreateBooking,
        detail: {
          summary: "Book a slot (201 confirmed, 409 slot full, 202 still deciding)",
          tags: ["bookings"],
          responses: answers({ 201: BookingAnswer, 202: AcceptedAnswer }, [400, 409]),
        },
      },
    )
    .get(
      "",
      async ({ principal, query }) => {
        const customerId =
          principal.role === "customer"
            ? principal.sub
            : typeof query.customerId === "string"
              ? query.customerId
              : undefined;
        const list = await entities.listOf<BookingState>(
          "booking",
          customerId,
          pageSize(query.limit, 50, 200),
        );
        return list.map(bookingView);
      },
      {
        query: ListQuery,
        detail: {
          summary: "Your bookings (staff: all, or ?customerId=)",
          tags: ["bookings"],
          responses: answers({ 200: t.Array(BookingAnswer) }),
        },
      },
    )
    .get(
      "/:id",
      async ({ principal, params }) =>
        bookingView(await entities.read<BookingState>("booking", params.id, principal)),
      {
        params: IdParams,
        detail: {
          summary: "One booking",
          tags: ["bookings"],
          responses: answers({ 200: BookingAnswer }, [404]),
        },
      },
    )
    .post(
      "/:id/reschedule",
      async ({ principal, params, body, set, trace }) => {
        requireRole(principal, "customer", "admin");
        await entities.read("booking", params.id, principal);
        const at = bookingTime(body.bookingDate, "/bookingDate");
        const answer = await command(
          client,
          refs.booking(params.id),
          "RESCHEDULE",
          { bookingDate: at.toISOString() },
          { messageId: Bun.randomUUIDv7(), timeoutMs: deps.askTimeoutMs, statusUrl: url(params.id), trace },
        );
        await remember(answer, params.id);
        set.status = answer.status;
        return answer.body;
      },
      {
        params: IdParams,
        body: t.Object({ bookingDate: t.String({ minLength: 1, maxLength: 40 }) }, strict),
        detail: {
          summary: "Move a confirmed booking to another time",
          tags: ["bookings"],
          responses: answers({ 200: BookingAnswer, 202: AcceptedAnswer }, [400, 404, 409]),
        },
      },
    )
    .post(
      "/:id/cancel",
      async ({ principal, params, body, set, trace }) => {
        requireRole(principal, "customer", "admin");
        await entities.read("booking", params.id, principal);
        const answer = await command(
          client,
          refs.booking(params.id),
          "CANCEL",
          { reason: body?.reason ?? `cancelled by ${principal.role}` },
          { messageId: Bun.randomUUIDv7(), timeoutMs: deps.askTimeoutMs, statusUrl: url(params.id), trace },
        );
        await remember(answer, params.id);
        set.status = answer.status;
        return answer.body;
      },
      {
        params: IdParams,
        body: t.Optional(
          t.Object({ reason: t.Optional(t.String({ minLength: 1, maxLength: 300 })) }, strict),
        ),
        detail: {
          summary: "Cancel a booking before its repair starts (frees the slot)",
          tags: ["bookings"],
          responses: answers({ 200: BookingAnswer, 202: AcceptedAnswer }, [400, 404, 409]),
        },
      },
    )
    .post(
      "/:id/close",
      async ({ principal, params, set, trace }) => {
        requireRole(principal, "technician", "admin");
        await entities.read("booking", params.id, principal);
        const answer = await command(
          client,
          refs.booking(params.id),
          "CLOSE",
          {},
          { messageId: Bun.randomUUIDv7(), timeoutMs: deps.askTimeoutMs, statusUrl: url(params.id), trace },
        );
        await remember(answer, params.id);
        set.status = answer.status;
        return answer.body;
      },
      {
        params: IdParams,
        detail: {
          summary: "Close a paid job (the car was collected)",
          tags: ["bookings"],
          responses: answers({ 200: BookingAnswer, 202: AcceptedAnswer }, [400, 404, 409]),
        },
      },
    );
}

/**
 * A create's answer by what the booking is now: a copy of a create (a retry with its key) is answered with the
 * booking as it stands, which may still be deciding or already refused. 201 means confirmed, 409 refused (the
 * slot was full or never answered), 202 with the status URL still deciding — for the first answer and every
 * replay of it (202 is never stored, so a later retry looks again).
 */
function asDecided<A extends { status: number; body: unknown; view?: unknown }>(
  answer: A,
  statusUrl: string,
): A {
  if (answer.status !== 201) return answer;
  const booking = answer.view as BookingState | undefined;
  if (!booking || booking.status === "PENDING") {
    return {
      ...answer,
      status: 202,
      body: { status: "accepted", message: "the booking is still waiting for its slot", statusUrl },
    };
  }
  if (booking.status === "REJECTED") {
    return {
      ...answer,
      status: 409,
      body: {
        error: {
          code: "slot_full",
          message: booking.reason ?? "the slot could not take this booking",
          retryable: false,
        },
      },
    };
  }
  return answer; // confirmed, or past it
}
