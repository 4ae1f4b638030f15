/**
 * The Elysia application: every route of Pitstop hangs off this one app. It receives its dependencies as
 * values (probes, clients), so tests build it in process and call `app.handle(request)`.
 */
import { Elysia } from "elysia";
import { healthRoutes, type Probe } from "./health.ts";

export interface AppDeps {
  probes: Probe[];
  healthTimeoutMs?: number;
}

export function createApp(deps: AppDeps) {
  return new Elysia({ name: "pitstop" }).use(healthRoutes(deps.probes, deps.healthTimeoutMs));
}

export type App = ReturnType<typeof createApp>;
