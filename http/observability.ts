/**
 * `GET /metrics` (Prometheus' text format, from the process's metrics: ops/metrics.ts), `GET /livez` (the
 * process runs and its event loop answers: nothing else is checked, so a dependency's outage never gets a live
 * process restarted), and the request hook: every HTTP answer timed into the metrics by method, route pattern and
 * status, and logged as one access line (with the request's id: the caller's `x-request-id` if it sent a sane
 * one, otherwise a new one; answered back in the same header).
 *
 * Traced (tracing on, runtime/tracing.ts): each request runs in a server span named after its route
 * (`POST /api/v1/bookings`), child of the caller's `traceparent` when it sent one, else the root of a new trace;
 * the commands a route sends carry it (`requestContext`'s `trace`), and the access line its trace id.
 */
import { Elysia } from "elysia";
import {
  activeTracer,
  type Logger,
  parentContext,
  type Span,
  SpanKind,
  SpanStatusCode,
  traceIdOf,
} from "../runtime/index.ts";

/** What the HTTP layer needs of the process's metrics. */
export interface HttpMetrics {
  readonly contentType: string;
  text(): Promise<string>;
  request(method: string, route: string, status: number, ms: number): void;
  socketOpened(): void;
  socketClosed(): void;
  frameSent(type: string): void;
}

/** A request being served: when it started, its id, its span (tracing on). */
interface RequestScope {
  at: number;
  id: string;
  span: Span | undefined;
}

/** Keyed by the request itself: every hook and handler of one request is handed the same `Request`. */
const scopes = new WeakMap<Request, RequestScope>();

/** The request's logger: a pino child carrying its request id and trace id (the parent when it has none). */
export function requestLog(log: Logger, request: Request): Logger {
  const scope = scopes.get(request);
  return scope ? log.child({ requestId: scope.id, traceId: traceIdOf(scope.span) }) : log;
}

/**
 * Elysia plugin for route groups: `log`, the request's logger (request id, trace id), and `trace`, its span
 * (undefined when tracing is off), to hand to the commands it sends.
 *
 * @example
 * .use(requestContext(deps.log))
 * .post("/", ({ trace }) => command(client, ref, "CREATE", payload, { ...options, trace }))
 */
export function requestContext(log: Logger) {
  return new Elysia({ name: "pitstop-request-context" }).derive({ as: "scoped" }, ({ request }) => ({
    log: requestLog(log, request),
    trace: scopes.get(request)?.span,
  }));
}

export function observabilityRoutes(metrics: HttpMetrics | undefined, log: Logger) {
  return new Elysia({ name: "observability" })
    .onRequest(({ request, set }) => {
      const given = request.headers.get("x-request-id");
      const id = given && SANE_ID.test(given) ? given : Bun.randomUUIDv7();
      // Named after the method until the route is known (after the response).
      const span = activeTracer()?.startSpan(
        request.method,
        {
          kind: SpanKind.SERVER,
          attributes: { "http.request.method": request.method, "url.path": new URL(request.url).pathname },
        },
        parentContext(request.headers),
      );
      scopes.set(request, { at: performance.now(), id, span });
      set.headers["x-request-id"] = id;
    })
    .onAfterResponse({ as: "global" }, ({ request, route, set, responseValue }) => {
      const start = scopes.get(request);
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
      if (start.span) endServerSpan(start.span, request.method, route, status);
      log.info(
        {
          requestId: start.id,
          traceId: traceIdOf(start.span),
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

/** Names the span after the route's pattern (`POST /api/v1/bookings`; the method alone when none matched). */
function endServerSpan(span: Span, method: string, route: string | undefined, status: number): void {
  if (route) {
    span.updateName(`${method} ${route}`);
    span.setAttribute("http.route", route);
  }
  span.setAttribute("http.response.status_code", status);
  // A 4xx is the caller's doing, not a failure of this server (OpenTelemetry's HTTP conventions).
  if (status >= 500) span.setStatus({ code: SpanStatusCode.ERROR });
  span.end();
}

/** A request id the caller may choose: short, printable, no spaces (it goes into logs and a header). */
const SANE_ID = /^[A-Za-z0-9._:-]{1,128}$/;
