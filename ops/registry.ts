/**
 * The process registry behind the hosts view: every process writes a row of `process_report` (its role, version,
 * start, and a summary of its host: partitions owned per group with their backlog, active actors, turns in
 * flight, fenced and failed counts) every few seconds, and deletes it when it stops. A row not refreshed for
 * three intervals is a process that died or froze: the view shows it as down (its partitions' new owners show in
 * the group view). Nothing here is on a turn's path: a failed write is logged and tried at the next tick.
 */
import type postgres from "postgres";
import pkg from "../package.json" with { type: "json" };
import type { Host, Logger } from "../runtime/index.ts";

export const REPORT_INTERVAL_MS = 5000;

export interface ProcessIdentity {
  id: string;
  namespace: string;
  /** What it runs (PITSTOP_RUN), e.g. "http,actors". */
  role: string;
}

/** What a process says of its host in its report. */
export interface HostSummary {
  groups: Record<
    string,
    { topic: string; partition: number; epoch: number; backlog: number; active: number; held: boolean }[]
  >;
  activeActors: number;
  inFlight: number;
  fenced: number;
  failed: number;
  deadLetters: number;
}

export function summarize(host: Host | undefined): HostSummary {
  const empty: HostSummary = {
    groups: {},
    activeActors: 0,
    inFlight: 0,
    fenced: 0,
    failed: 0,
    deadLetters: 0,
  };
  if (!host) return empty;
  const stats = host.stats();
  const actors = Object.values(stats.actors);
  const reactors = Object.values(stats.reactors);
  const consumers = Object.entries(stats.consumers);
  return {
    groups: Object.fromEntries(
      consumers.map(([groupId, c]) => [
        groupId,
        c.partitions.map((p) => ({
          topic: p.topic,
          partition: p.partition,
          epoch: p.epoch,
          backlog: p.backlog,
          active: p.active,
          held: p.held,
        })),
      ]),
    ),
    activeActors: actors.reduce((n, a) => n + a.active, 0),
    inFlight: consumers.reduce((n, [, c]) => n + c.partitions.reduce((m, p) => m + p.active, 0), 0),
    fenced: actors.reduce((n, a) => n + a.fenced, 0) + reactors.reduce((n, r) => n + r.fenced, 0),
    failed: consumers.reduce((n, [, c]) => n + c.workerFailures + c.crashes, 0),
    deadLetters:
      actors.reduce((n, a) => n + a.deadLetters, 0) + reactors.reduce((n, r) => n + r.deadLetters, 0),
  };
}

/** Starts reporting this process; `stop()` deletes its row. */
export function reportProcess(options: {
  sql: postgres.Sql;
  log: Logger;
  identity: ProcessIdentity;
  host: () => Host | undefined;
  intervalMs?: number;
}) {
  const { sql, identity } = options;
  const startedAt = new Date().toISOString();
  let timer: Timer | undefined;
  let stopped = false;
  const write = async () => {
    try {
      await sql`insert into process_report (id, namespace, role, version, started_at, seen_at, report)
        values (${identity.id}, ${identity.namespace}, ${identity.role}, ${pkg.version}, ${startedAt}, now(),
          ${JSON.stringify(summarize(options.host()))}::jsonb)
        on conflict (id) do update set seen_at = excluded.seen_at, report = excluded.report`;
    } catch (error) {
      options.log.debug({ err: error }, "writing the process report failed; trying at the next tick");
    }
  };
  const tick = async () => {
    await write();
    if (!stopped) timer = setTimeout(tick, options.intervalMs ?? REPORT_INTERVAL_MS);
  };
  void tick();
  return {
    /** Writes the report now (after a change an operator should see at once). */
    refresh: write,
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await sql`delete from process_report where id = ${identity.id}`.catch(() => {});
    },
  };
}

export interface ProcessRow {
  id: string;
  role: string;
  version: string;
  started_at: Date | string;
  seen_at: Date | string;
  up: boolean;
  report: HostSummary;
}

/** The processes of a namespace seen in the last `keepSeconds`, and whether each is up (reported lately). */
export async function processesOf(sql: postgres.Sql, namespace: string, keepSeconds = 300) {
  return sql<ProcessRow[]>`
    select id, role, version, started_at, seen_at, report,
      seen_at > now() - make_interval(secs => ${(3 * REPORT_INTERVAL_MS) / 1000}) as up
    from process_report
    where namespace = ${namespace} and seen_at > now() - make_interval(secs => ${keepSeconds})
    order by id`;
}
