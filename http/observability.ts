/**
 * `GET /metrics` (Prometheus' text format, from the process's metrics: ops/metrics.ts), `GET /livez` (the
 * process runs and its event loop answers: nothing else is checked, so a dependency's outage never gets a live
 * process restarted), and the request hook: every HTTP answer timed into the metrics by method, route pattern and
 * status, and logged as one access line (with the request's id: the caller's `x-request-id` if it sent a sane
 * one, otherwise a new one; answered back in the same header).
 */
import { Elysia } from "elysia";
import type { Logger } from "../runtime/index.ts";

/** What the HTTP layer needs of the process's metrics. */
export interface HttpMetrics {
  readonly contentType: string;
  text(): Promise<string>;
  request(method: string, route: string, status: number, ms: number): void;
  socketOpened(): void;
  socketClosed(): void;
  frameSent(type: string): void;
}

export function observabilityRoutes(metrics: HttpMetrics | undefined, log: Logger) {
  const started = new WeakMap<Request, { at: number; id: string }>();
  return new Elysia({ name: "observability" })
    .onRequest(({ request, set }) => {
      const given = request.headers.get("x-request-id");
      const id = given && SANE_ID.test(given) ? given : Bun.randomUUIDv7();
      started.set(request, { at: performance.now(), id });
      set.headers["x-request-id"] = id;
    })
    .onAfterResponse({ as: "global" }, ({ request, route, set, responseValue }) => {
      const start = started.get(request);
      if (!start) return;
      const ms = performance.now() - start.at;
      const status =
        responseValue instanceof Response
          ? responseValue.status
          : typeof set.status === "number"
            ? set.status
            : 200;
      // The pattern, never the raw path: one series per route, not per booking id (or per scanner's guess).
      metrics?.request(request.method, route || "unmatched", status, ms);
      log.info(
        {
          requestId: start.id,
          method: request.method,
          route: route || undefined,
          path: new URL(request.url).pathname,
          status,
          ms: Math.round(ms * 10) / 10,
        },
        "request",
      );
    })
    .get("/livez", () => ({ status: "live" }), {
      detail: { summary: "The process runs (nothing else is checked)", tags: ["ops"] },
    })
    .get(
      "/metrics",
      async ({ set }) => {
        if (!metrics) {
          set.status = 404;
          return { error: { code: "not_found", message: "this process keeps no metrics", retryable: false } };
        }
        set.headers["content-type"] = metrics.contentType;
        return metrics.text();
      },
      {
        detail: {
          summary: "The process's metrics, in Prometheus' text format",
          tags: ["ops"],
          responses: {
            200: {
              description: "the exposition (text/plain; version=0.0.4)",
              content: { "text/plain": { schema: { type: "string" } } },
            },
          },
        },
      },
    );
}

/** A request id the caller may choose: short, printable, no spaces (it goes into logs and a header). */
const SANE_ID = /^[A-Za-z0-9._:-]{1,128}$/;
