/**
 * The process's own checks:
 * - `GET /healthz`: each dependency as up or down with the time its check took, 503 when any is down; plus, when
 *   the process knows them, each consumer group's lag and how many of its partitions this process owns.
 * - `GET /readyz`: whether this process can serve (the composition root decides what that takes: its
 *   dependencies up, the partitions assigned to it taken, the groups' work flowing) and is not draining.
 * - `GET /livez` (observability.ts): the process runs.
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

/** A consumer group as this process sees it: its lag (all members) and its partitions this process owns. */
const GroupHealth = t.Object({
  groupId: t.String(),
  lag: t.Integer(),
  maxPartitionLag: t.Integer(),
  /** Partitions whose lease this process holds and handles now. */
  owned: t.Integer(),
  /** Partitions assigned to this process not handled yet (being taken, or fenced and waiting). */
  unowned: t.Integer(),
});
export type GroupHealth = typeof GroupHealth.static;

export const HealthReport = t.Object({
  /** draining: the process is shutting down (SIGTERM); requests in flight finish, new ones go elsewhere. */
  status: t.Union([t.Literal("up"), t.Literal("down"), t.Literal("draining")]),
  dependencies: t.Record(t.String(), DependencyStatus),
  /** Absent when the process has no groups, or Kafka did not answer in time. */
  groups: t.Optional(t.Array(GroupHealth)),
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
export function readinessRoutes(
  check: () => Promise<Readiness>,
  timeoutMs = 5000,
  draining: () => boolean = () => false,
) {
  return new Elysia({ name: "readiness" }).get(
    "/readyz",
    async ({ set }) => {
      if (draining()) {
        set.status = 503;
        return { status: "not_ready", reasons: ["draining: this process is shutting down"], groups: [] };
      }
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
          "Whether this process can serve: its dependencies up, the partitions assigned to it taken, every group with members and bounded lag, not draining; 503 with the reasons otherwise",
        tags: ["ops"],
        responses: readinessAnswers,
      },
    },
  );
}

export function healthRoutes(
  probes: Probe[],
  timeoutMs = 2000,
  draining: () => boolean = () => false,
  groups?: () => Promise<GroupHealth[]>,
) {
  return new Elysia({ name: "health" }).get(
    "/healthz",
    async ({ set }) => {
      const [report, lag] = await Promise.all([
        checkHealth(probes, timeoutMs),
        groupsWithin(groups, timeoutMs),
      ]);
      const full = lag ? { ...report, groups: lag } : report;
      if (draining()) {
        set.status = 503;
        return { ...full, status: "draining" as const };
      }
      set.status = report.status === "up" ? 200 : 503;
      return full;
    },
    {
      response: { 200: HealthReport, 503: HealthReport },
      detail: {
        summary:
          "Each dependency as up or down with latency, each group's lag and the partitions this process owns; 503 when a dependency is down",
        tags: ["ops"],
      },
    },
  );
}

/** The groups' health, or undefined when there is none to give or Kafka does not answer in time. */
async function groupsWithin(
  groups: (() => Promise<GroupHealth[]>) | undefined,
  timeoutMs: number,
): Promise<GroupHealth[] | undefined> {
  if (!groups) return undefined;
  let timer: Timer | undefined;
  try {
    return await Promise.race([
      groups(),
      new Promise<undefined>((resolve) => {
        timer = setTimeout(() => resolve(undefined), timeoutMs);
      }),
    ]);
  } catch {
    return undefined;
  } finally {
    clearTimeout(timer);
  }
}
