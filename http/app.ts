/**
 * The Elysia application: every route of Pitstop hangs off this one app. It receives its dependencies as
 * values (probes, clients), so tests build it in process and call `app.handle(request)`. OpenAPI, generated from
 * the route schemas, is served at `/docs` (UI) and `/docs/json`.
 */
import { openapi } from "@elysiajs/openapi";
import { Elysia } from "elysia";
import type { Logger, Readiness } from "../runtime/index.ts";
import type { RouteDeps } from "./deps.ts";
import { errorHandling, HttpError } from "./errors.ts";
import { healthRoutes, type Probe, readinessRoutes } from "./health.ts";
import { storableInput } from "./input.ts";
import { bookingRoutes } from "./routes/bookings.ts";
import { operationRoutes } from "./routes/operations.ts";
import { paymentRoutes } from "./routes/payments.ts";
import { repairRoutes } from "./routes/repairs.ts";
import { statusSocket } from "./status-socket.ts";

/** Request bodies above this are refused (413, with a JSON reason) before they are read. */
export const MAX_BODY_BYTES = 64 * 1024;
/** Bun's own limit, far above ours: beyond it Bun answers 413 itself (no body), without reading more. */
const SERVER_BODY_LIMIT = 1024 * 1024;

export interface AppDeps {
  probes: Probe[];
  healthTimeoutMs?: number;
  log: Logger;
  /** The service center's routes; without them the app serves health only. */
  routes?: RouteDeps;
  /** The consumer groups' readiness (`/readyz`), when the app knows them. */
  readiness?: () => Promise<Readiness>;
  /** Whether the process is shutting down: health says so and new requests are refused (503, retryable). */
  draining?: () => boolean;
}

export function createApp(deps: AppDeps) {
  const draining = deps.draining ?? (() => false);
  // normalize: false -> unknown fields are refused (422) rather than silently dropped.
  const app = new Elysia({
    name: "pitstop",
    normalize: false,
    serve: { maxRequestBodySize: SERVER_BODY_LIMIT },
  })
    .use(errorHandling(deps.log))
    .use(storableInput())
    .onRequest(({ request }) => {
      if (draining() && new URL(request.url).pathname !== "/healthz") {
        throw new HttpError(503, "draining", "this process is shutting down; retry (another one serves)", {
          retryable: true,
          headers: { "retry-after": "1", connection: "close" },
        });
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
    .use(healthRoutes(deps.probes, deps.healthTimeoutMs, draining))
    .use(deps.readiness ? readinessRoutes(deps.readiness) : new Elysia({ name: "no-readiness" }));
  if (!deps.routes) return app;
  return app
    .use(bookingRoutes(deps.routes))
    .use(repairRoutes(deps.routes))
    .use(paymentRoutes(deps.routes))
    .use(operationRoutes(deps.routes))
    .use(statusSocket(deps.routes));
}

export type App = ReturnType<typeof createApp>;
