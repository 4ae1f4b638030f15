/** The public door of `http/`. */
export { type App, type AppDeps, createApp } from "./app.ts";
export { checkHealth, type HealthReport, type Probe } from "./health.ts";
