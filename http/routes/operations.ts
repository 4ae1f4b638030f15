/**
 * For staff: the day's figures (analytics), parts stock, and dead letters for operators: list, replay (by id, or
 * a whole key in order: a redrive) and skip (discarded with a reason, kept for audit). Replays and skips are
 * audited (ops-audit.ts).
 */

import { Type } from "@sinclair/typebox";
import { Elysia, t } from "elysia";
import { dailyFigures } from "../../actors/reactors/analytics.ts";
import { listDeadLetters, replayDeadLetters, skipDeadLetters } from "../../runtime/index.ts";
import { authentication, requireRole } from "../auth.ts";
import type { RouteDeps } from "../deps.ts";
import { unprocessable } from "../errors.ts";
import { audited } from "../ops-audit.ts";
import { answers, DailyAnswer, DeadLetterAnswer, PartAnswer, ReplayAnswer, SkipAnswer } from "./answers.ts";
import { Id, Limit, pageSize, strict } from "./schemas.ts";

const DAY = /^\d{4}-\d{2}-\d{2}$/;

export function operationRoutes(deps: RouteDeps) {
  return new Elysia({ prefix: "/api/v1", normalize: false })
    .use(authentication(deps.tokens, deps.limiter))
    .get(
      "/analytics/daily",
      async ({ principal, query }) => {
        requireRole(principal, "admin");
        const day = query.date ?? new Date().toISOString().slice(0, 10);
        if (!DAY.test(day) || Number.isNaN(Date.parse(day)))
          throw unprocessable("date must be YYYY-MM-DD", "date");
        const metrics = await dailyFigures(deps.sql, day);
        const live = await deps.redis
          .mget(`daily:bookings:${day}`, `daily:revenue:${day}`)
          .catch(() => [null, null] as (string | null)[]);
        return {
          date: day,
          metrics,
          redis: {
            bookings: live[0] === null ? null : Number(live[0]),
            revenue: live[1] === null ? null : Number(live[1]),
          },
        };
      },
      {
        query: t.Object({ date: t.Optional(t.String({ maxLength: 10 })) }),
        detail: {
          summary: "The day's bookings, revenue and notifications (admin)",
          tags: ["operations"],
          responses: answers({ 200: DailyAnswer }),
        },
      },
    )
    .get(
      "/parts",
      async ({ principal }) => {
        requireRole(principal, "technician", "admin");
        const rows = await deps.sql<
          {
            id: string;
            name: string;
            unit_price: number;
            stock: number;
            low_stock_threshold: number;
            low_stock: boolean;
          }[]
        >`select id, name, unit_price, stock, low_stock_threshold, low_stock from part order by id`;
        return rows.map((r) => ({
          partId: r.id,
          name: r.name,
          unitPrice: r.unit_price,
          stock: r.stock,
          lowStockThreshold: r.low_stock_threshold,
          lowStock: r.low_stock,
        }));
      },
      {
        detail: {
          summary: "Spare parts and their stock",
          tags: ["operations"],
          responses: answers({ 200: t.Array(PartAnswer) }),
        },
      },
    )
    .get(
      "/ops/dead-letters",
      async ({ principal, query }) => {
        requireRole(principal, "admin");
        const letters = await listDeadLetters(deps.db, {
          consumer: query.consumer,
          topic: query.topic,
          key: query.key,
          status: query.status,
          limit: pageSize(query.limit, 100, 500),
          newestFirst: query.order === "newest",
        });
        return letters.map(({ value, sourceOffset, ...rest }) => ({
          ...rest,
          sourceOffset: sourceOffset.toString(),
          value: value ? value.toString("utf8") : null,
        }));
      },
      {
        query: t.Object({
          consumer: t.Optional(Id),
          topic: t.Optional(t.String({ minLength: 1, maxLength: 300 })),
          key: t.Optional(t.String({ maxLength: 200 })),
          // (not t.UnionEnum: Elysia fills an optional UnionEnum in a query with its first value)
          status: t.Optional(
            t.Union([t.Literal("dead"), t.Literal("parked"), t.Literal("replayed"), t.Literal("skipped")]),
          ),
          limit: Limit,
          order: t.Optional(t.Union([t.Literal("oldest"), t.Literal("newest")])),
        }),
        detail: {
          summary: "Dead letters, oldest first, or newest first with order=newest (admin)",
          tags: ["operations"],
          responses: answers({ 200: t.Array(DeadLetterAnswer) }),
        },
      },
    )
    .post(
      "/ops/dead-letters/replay",
      async ({ principal, body }) => {
        requireRole(principal, "admin");
        const byKey = body.consumer !== undefined && body.key !== undefined;
        if (!body.ids?.length && !byKey) {
          throw unprocessable("give ids, or a consumer and a key", body.ids ? "/ids" : "/consumer");
        }
        const request = body.ids?.length
          ? { ids: body.ids }
          : { consumer: body.consumer as string, key: body.key as string };
        return audited(deps, principal, "dead-letters.replay", request, async (tx) => ({
          replayed: await replayDeadLetters(tx, request),
        }));
      },
      {
        body: t.Object(
          {
            ids: t.Optional(t.Array(Type.Integer({ minimum: 1 }), { maxItems: 500 })),
            consumer: t.Optional(Id),
            key: t.Optional(t.String({ minLength: 1, maxLength: 200 })),
          },
          strict,
        ),
        detail: {
          summary: "Replay dead letters by id, or a key's letters in order (admin)",
          tags: ["operations"],
          responses: answers({ 200: ReplayAnswer }, [400]),
        },
      },
    )
    .post(
      "/ops/dead-letters/skip",
      async ({ principal, body }) => {
        requireRole(principal, "admin");
        const who = `${principal.role}:${principal.sub}`;
        return audited(deps, principal, "dead-letters.skip", body, async (tx) => ({
          skipped: await skipDeadLetters(tx, body.ids, who, body.reason),
        }));
      },
      {
        body: t.Object(
          {
            ids: t.Array(Type.Integer({ minimum: 1 }), { minItems: 1, maxItems: 500 }),
            reason: t.String({ minLength: 1, maxLength: 500 }),
          },
          strict,
        ),
        detail: {
          summary:
            "Skip dead letters: never replayed, kept with who skipped them and why (admin). Letters already replayed or skipped are left",
          tags: ["operations"],
          responses: answers({ 200: SkipAnswer }, [400]),
        },
      },
    );
}
