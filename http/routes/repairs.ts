/** Repairs: start (the seed's `POST /api/v1/repairs/start`), progress, complete, read. Technicians drive them. */
import { Type } from "@sinclair/typebox";
import { Elysia, t } from "elysia";
import type { BookingState } from "../../actors/booking/booking.ts";
import type { RepairState } from "../../actors/repair/repair.ts";
import { authentication, requireRole } from "../auth.ts";
import { command } from "../commands.ts";
import type { RouteDeps } from "../deps.ts";
import { forbidden, unprocessable } from "../errors.ts";
import { idempotently } from "../idempotency.ts";
import { requestContext } from "../observability.ts";
import { AcceptedAnswer, answers, RepairAnswer, RepairStatusAnswer } from "./answers.ts";
import { Id, IdParams, ListQuery, pageSize, strict } from "./schemas.ts";

const Stage = t.UnionEnum(["DIAGNOSING", "REPAIRING", "TESTING"]);

export function repairRoutes(deps: RouteDeps) {
  const { entities, client, refs } = deps;
  const url = (id: string) => `/api/v1/repairs/${id}`;
  const technicianOf = (principal: { sub: string; role: string }, technicianId: string | undefined) => {
    if (principal.role === "technician" && technicianId !== undefined && technicianId !== principal.sub) {
      throw forbidden("a technician acts under their own id: technicianId must be yours or left out");
    }
    return technicianId ?? principal.sub;
  };
  return new Elysia({ prefix: "/api/v1/repairs", normalize: false })
    .use(authentication(deps.tokens, deps.limiter))
    .use(requestContext(deps.log))
    .post(
      "/start",
      async ({ principal, body, headers, set, trace }) => {
        requireRole(principal, "technician", "admin");
        const technicianId = technicianOf(principal, body.technicianId);
        await entities.read<BookingState>("booking", body.bookingId, principal);
        return idempotently(
          deps.sql,
          principal,
          "POST /api/v1/repairs/start",
          headers["idempotency-key"],
          body,
          set,
          async ({ messageId, entityId: repairId }) => {
            // The booking decides (it knows whether it is confirmed) and passes the request on to the new repair.
            const answer = await command(
              client,
              refs.booking(body.bookingId),
              "START_REPAIR",
              { repairId, technicianId, estimatedMinutes: body.estimatedTime },
              { messageId, timeoutMs: deps.askTimeoutMs, statusUrl: url(repairId), okStatus: 201, trace },
            );
            if (answer.status === 201 || answer.status === 202) set.headers.location = url(repairId);
            return answer;
          },
        );
      },
      {
        body: t.Object(
          {
            bookingId: Id,
            technicianId: t.Optional(Id),
            /** Minutes the repair is expected to take. */
            estimatedTime: Type.Integer({ minimum: 1, maximum: 10_080 }),
          },
          strict,
        ),
        detail: {
          summary: "Start the repair of a confirmed booking",
          tags: ["repairs"],
          responses: answers({ 201: RepairAnswer, 202: AcceptedAnswer }, [400, 404, 409]),
        },
      },
    )
    .post(
      "/:id/progress",
      async ({ principal, params, body, set, trace }) => {
        requireRole(principal, "technician", "admin");
        await entities.read("repair", params.id, principal);
        const answer = await command(
          client,
          refs.repair(params.id),
          "PROGRESS",
          { status: body.status, progress: body.progress, technicianId: technicianOf(principal, undefined) },
          { messageId: Bun.randomUUIDv7(), timeoutMs: deps.askTimeoutMs, statusUrl: url(params.id), trace },
        );
        set.status = answer.status;
        return answer.body;
      },
      {
        params: IdParams,
        body: t.Object({ status: Stage, progress: Type.Integer({ minimum: 0, maximum: 100 }) }, strict),
        detail: {
          summary: "Report progress: DIAGNOSING -> REPAIRING -> TESTING, with a percentage",
          tags: ["repairs"],
          responses: answers({ 200: RepairAnswer, 202: AcceptedAnswer }, [400, 404, 409]),
        },
      },
    )
    .post(
      "/:id/complete",
      async ({ principal, params, body, set, trace }) => {
        requireRole(principal, "technician", "admin");
        await entities.read("repair", params.id, principal);
        const ids = [...new Set(body.parts.map((p) => p.partId))];
        const known = ids.length
          ? await deps.sql<{ id: string; name: string; unit_price: number }[]>`
              select id, name, unit_price from part where id in ${deps.sql(ids)}`
          : [];
        const byId = new Map(known.map((p) => [p.id, p]));
        const parts = body.parts.map((p, i) => {
          const found = byId.get(p.partId);
          if (!found) throw unprocessable(`unknown part ${p.partId}`, `/parts/${i}/partId`);
          return { partId: p.partId, name: found.name, quantity: p.quantity, unitPrice: found.unit_price };
        });
        const answer = await command(
          client,
          refs.repair(params.id),
          "COMPLETE",
          { parts, labourMinutes: body.labourMinutes, technicianId: technicianOf(principal, undefined) },
          { messageId: Bun.randomUUIDv7(), timeoutMs: deps.askTimeoutMs, statusUrl: url(params.id), trace },
        );
        set.status = answer.status;
        return answer.body;
      },
      {
        params: IdParams,
        body: t.Object(
          {
            parts: t.Array(
              t.Object({ partId: Id, quantity: Type.Integer({ minimum: 1, maximum: 100 }) }, strict),
              { maxItems: 50 },
            ),
            labourMinutes: Type.Integer({ minimum: 0, maximum: 10_000 }),
          },
          strict,
        ),
        detail: {
          summary: "Complete a repair (after TESTING) with the parts used and the labour",
          tags: ["repairs"],
          responses: answers({ 200: RepairAnswer, 202: AcceptedAnswer }, [400, 404, 409]),
        },
      },
    )
    .get(
      "",
      async ({ principal, query }) => {
        const customerId = principal.role === "customer" ? principal.sub : query.customerId;
        return entities.listOf<RepairState>("repair", customerId, pageSize(query.limit, 50, 200));
      },
      {
        query: ListQuery,
        detail: {
          summary: "Your repairs (staff: all, or ?customerId=)",
          tags: ["repairs"],
          responses: answers({ 200: t.Array(RepairAnswer) }),
        },
      },
    )
    .get(
      "/:id",
      async ({ principal, params }) => entities.read<RepairState>("repair", params.id, principal),
      {
        params: IdParams,
        detail: {
          summary: "One repair",
          tags: ["repairs"],
          responses: answers({ 200: RepairAnswer }, [404]),
        },
      },
    )
    .get(
      "/:id/status",
      async ({ principal, params }) => {
        const repair = await entities.read<RepairState>("repair", params.id, principal);
        return {
          repairId: repair.repairId,
          status: repair.status,
          progress: repair.progress,
          updatedAt: repair.updatedAt,
        };
      },
      {
        params: IdParams,
        detail: {
          summary: "A repair's stage and percentage",
          tags: ["repairs"],
          responses: answers({ 200: RepairStatusAnswer }, [404]),
        },
      },
    );
}
