/**
 * The Elysia application: every route of Pitstop hangs off this one app. It receives its dependencies as
 * values (probes, clients), so tests build it in process and call `app.handle(request)`. OpenAPI, generated from
 * the route schemas, is served at `/docs` (UI) and `/docs/json`.
 */
import { openapi } from "@elysiajs/openapi";
import { Elysia } from "elysia";
import type { Logger, Readiness } from "../runtime/index.ts";
import { consolePage } from "./console/console-page.ts";
import { liveSocket } from "./console/live-socket.ts";
import type { RouteDeps } from "./deps.ts";
import { errorHandling, HttpError } from "./errors.ts";
import { type GroupHealth, healthRoutes, type Probe, readinessRoutes } from "./health.ts";
import { storableInput } from "./input.ts";
import { type HttpMetrics, observabilityRoutes } from "./observability.ts";
import { bookingRoutes } from "./routes/bookings.ts";
import { operationRoutes } from "./routes/operations.ts";
import { opsRoutes } from "./routes/ops.ts";
import { opsControlRoutes } from "./routes/ops-controls.ts";
import { paymentRoutes } from "./routes/payments.ts";
import { repairRoutes } from "./routes/repairs.ts";
import { statusSocket } from "./status-socket.ts";

/** Request bodies above this are refused (413, with a JSON reason) before they are read. */
export const MAX_BODY_BYTES = 64 * 1024;
/** Bun's own limit, far above ours: beyond it Bun answers 413 itself (no body), without reading more. */
const SERVER_BODY_LIMIT = 1024 * 1024;
/** Request headers above this (a huge token, a cookie pile) are refused: 431 with a JSON reason. */
export const MAX_HEADER_BYTES = 16 * 1024;
/**
 * The flags `bun` serves with (`npm start`, and every process the tests and the fault harness spawn): Bun's own
 * header limit (16 KiB by default, answered with an empty 431 before the app sees the request) raised far above
 * ours, so the app refuses oversized headers itself, with the error shape. Beyond 256 KiB Bun still does.
 */
export const BUN_SERVE_FLAGS = ["--max-http-header-size=262144"];

export interface AppDeps {
  probes: Probe[];
  healthTimeoutMs?: number;
  log: Logger;
  /** The service center's routes; without them the app serves health only. */
  routes?: RouteDeps;
  /** Whether this process can serve (`/readyz`), when the app knows its groups. */
  readiness?: () => Promise<Readiness>;
  /** Each group's lag and this process's share of its partitions (`/healthz`). */
  groupHealth?: () => Promise<GroupHealth[]>;
  /**
   * Where the process is in its shutdown: `draining`, health says so and requests are still served (those sent
   * just before the signal arrive now); `closing`, new requests are refused too (503, retryable).
   */
  shutdown?: () => "running" | "draining" | "closing";
  /** The process's metrics: `/metrics`, and every request timed into them. */
  metrics?: HttpMetrics;
}

export function createApp(deps: AppDeps) {
  const phase = deps.shutdown ?? (() => "running" as const);
  const draining = () => phase() !== "running";
  // normalize: false -> unknown fields are refused (422) rather than silently dropped.
  const app = new Elysia({
    name: "pitstop",
    normalize: false,
    serve: { maxRequestBodySize: SERVER_BODY_LIMIT },
  })
    .use(observabilityRoutes(deps.metrics, deps.log))
    .use(errorHandling(deps.log))
    .use(storableInput())
    .onRequest(({ request }) => {
      const path = new URL(request.url).pathname;
      if (phase() === "closing" && path !== "/healthz" && path !== "/livez" && path !== "/metrics") {
        throw new HttpError(503, "draining", "this process is shutting down; retry (another one serves)", {
          retryable: true,
          headers: { "retry-after": "1", connection: "close" },
        });
      }
      let headerBytes = 0;
      request.headers.forEach((value, name) => {
        headerBytes += name.length + value.length + 4;
      });
      if (headerBytes > MAX_HEADER_BYTES) {
        throw new HttpError(
          431,
          "headers_too_large",
          `the request's headers are ${headerBytes} bytes; at most ${MAX_HEADER_BYTES} are accepted`,
        );
      }
      const length = Number(request.headers.get("content-length") ?? 0);
      if (length > MAX_BODY_BYTES) {
        throw new HttpError(
          413,
          "too_large",
          `the body is ${length} bytes; at most ${MAX_BODY_BYTES} are accepted`,
        );
      }
    })
    .use(
      openapi({
        path: "/docs",
        documentation: {
          info: {
            title: "Pitstop",
            version: "0.1.0",
            description:
              "The online car service center: book a slot, follow the repair live, pay the invoice. Bearer JWT with roles customer, technician, admin (`npm run token`).",
          },
          components: {
            securitySchemes: { bearer: { type: "http", scheme: "bearer", bearerFormat: "JWT" } },
          },
          security: [{ bearer: [] }],
        },
      }),
    )
    .use(healthRoutes(deps.probes, deps.healthTimeoutMs, draining, deps.groupHealth))
    .use(
      deps.readiness
        ? readinessRoutes(deps.readiness, undefined, draining)
        : new Elysia({ name: "no-readiness" }),
    );
  if (!deps.routes) return app;
  return app
    .use(bookingRoutes(deps.routes))
    .use(repairRoutes(deps.routes))
    .use(paymentRoutes(deps.routes))
    .use(operationRoutes(deps.routes))
    .use(opsRoutes(deps.routes))
    .use(opsControlRoutes(deps.routes))
    .use(statusSocket(deps.routes))
    .use(liveSocket(deps.routes))
    .use(consolePage());
}

export type App = ReturnType<typeof createApp>;
