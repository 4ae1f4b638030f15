/** The public door of `http/`. */
export { type App, type AppDeps, BUN_SERVE_FLAGS, createApp } from "./app.ts";
export { createTokens, type Principal, ROLES, type Role, type Tokens } from "./auth.ts";
export type { RouteDeps } from "./deps.ts";
export { createEntities, type Entities } from "./entities.ts";
export { checkHealth, type HealthReport, type Probe } from "./health.ts";
export { type RateLimiter, rateLimiter } from "./rate-limit.ts";
