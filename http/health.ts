/**
 * `GET /healthz`: each dependency as up or down with the time its check took, and 503 when any is down.
 * Every check runs at once, each bounded by a timeout, so one hung dependency cannot hang the answer.
 */
import { Elysia, t } from "elysia";
import type { Readiness } from "../runtime/index.ts";
import { documented } from "./routes/answers.ts";

/** One dependency's check: resolves when it answers, throws (or times out) when it does not. */
export interface Probe {
  name: string;
  check(): Promise<unknown>;
}

const DependencyStatus = t.Object({
  status: t.Union([t.Literal("up"), t.Literal("down")]),
  latencyMs: t.Number(),
  error: t.Optional(t.String()),
});

export const HealthReport = t.Object({
  /** draining: the process is shutting down (SIGTERM); requests in flight finish, new ones go elsewhere. */
  status: t.Union([t.Literal("up"), t.Literal("down"), t.Literal("draining")]),
  dependencies: t.Record(t.String(), DependencyStatus),
});

export type HealthReport = typeof HealthReport.static;

const ReadinessAnswer = t.Object(
  {
    status: t.Union([t.Literal("ready"), t.Literal("not_ready")]),
    reasons: t.Array(t.String()),
    groups: t.Array(
      t.Object({
        groupId: t.String(),
        state: t.String(),
        members: t.Integer(),
        partitions: t.Integer(),
        unassigned: t.Array(t.String()),
        lag: t.Integer(),
        maxPartitionLag: t.Integer(),
      }),
    ),
  },
  { additionalProperties: false },
);
const readinessAnswers = documented({ 200: ReadinessAnswer, 503: ReadinessAnswer });

export async function checkHealth(probes: Probe[], timeoutMs: number): Promise<HealthReport> {
  const entries = await Promise.all(
    probes.map(async (probe) => {
      const started = performance.now();
      let timer: Timer | undefined;
      try {
        await Promise.race([
          probe.check(),
          new Promise((_, reject) => {
            timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
          }),
        ]);
        return [probe.name, { status: "up" as const, latencyMs: elapsed(started) }] as const;
      } catch (error) {
        const message = error instanceof Error ? error.message : String(error);
        return [
          probe.name,
          { status: "down" as const, latencyMs: elapsed(started), error: message },
        ] as const;
      } finally {
        clearTimeout(timer);
      }
    }),
  );
  const dependencies = Object.fromEntries(entries);
  const status = entries.every(([, d]) => d.status === "up") ? "up" : "down";
  return { status, dependencies };
}

function elapsed(started: number): number {
  return Math.round((performance.now() - started) * 10) / 10;
}

/**
 * `GET /readyz`: whether the work is flowing — every consumer group has a member, every partition an owner, and
 * none is further behind than allowed; 503 with the reasons otherwise. (`/healthz` stays about dependencies.)
 */
export function readinessRoutes(check: () => Promise<Readiness>, timeoutMs = 5000) {
  return new Elysia({ name: "readiness" }).get(
    "/readyz",
    async ({ set }) => {
      let timer: Timer | undefined;
      try {
        const readiness = await Promise.race([
          check(),
          new Promise<never>((_, reject) => {
            timer = setTimeout(
              () => reject(new Error(`no answer from Kafka within ${timeoutMs} ms`)),
              timeoutMs,
            );
          }),
        ]);
        set.status = readiness.ready ? 200 : 503;
        return {
          status: readiness.ready ? "ready" : "not_ready",
          reasons: readiness.reasons,
          groups: readiness.groups.map(({ positions: _, ...group }) => group),
        };
      } catch (error) {
        set.status = 503;
        return {
          status: "not_ready",
          reasons: [`cannot read the groups: ${(error as Error).message}`],
          groups: [],
        };
      } finally {
        clearTimeout(timer);
      }
    },
    {
      detail: {
        summary:
          "Whether every consumer group has members, every partition an owner, and lag is bounded; 503 otherwise",
        tags: ["ops"],
        responses: readinessAnswers,
      },
    },
  );
}

export function healthRoutes(probes: Probe[], timeoutMs = 2000, draining: () => boolean = () => false) {
  return new Elysia({ name: "health" }).get(
    "/healthz",
    async ({ set }) => {
      const report = await checkHealth(probes, timeoutMs);
      if (draining()) {
        set.status = 503;
        return { ...report, status: "draining" as const };
      }
      set.status = report.status === "up" ? 200 : 503;
      return report;
    },
    {
      response: { 200: HealthReport, 503: HealthReport },
      detail: { summary: "Each dependency as up or down with latency; 503 when any is down", tags: ["ops"] },
    },
  );
}
