/**
 * What operators see of the runtime (admin): the processes and the partitions each owns with their lag; every
 * consumer group's partitions with their owner, epoch, committed and end offsets, lag and pause; one actor's
 * state, position, parking, pending timers, recent records and dead letters; stuck work; the audit of operations.
 * The same views are `npm run ops -- hosts|groups|actor|stuck|audit` (scripts/ops.ts calls these routes). What
 * operators do (pause, park, skip...) is ops-controls.ts.
 */
import { Elysia, t } from "elysia";
import { pausedPartitions } from "../../runtime/index.ts";
import { authentication, requireRole } from "../auth.ts";
import type { RouteDeps } from "../deps.ts";
import { notFound, unprocessable } from "../errors.ts";
import { ActorView, AuditView, answers, GroupView, HostView, StuckView } from "./answers.ts";
import { Id, Limit, pageSize } from "./schemas.ts";

const byPartition = (a: { topic: string; partition: number }, b: { topic: string; partition: number }) =>
  a.topic === b.topic ? a.partition - b.partition : a.topic < b.topic ? -1 : 1;
const partitionId = (groupId: string, topic: string, partition: number) =>
  `${groupId}\u0000${topic}\u0000${partition}`;

export function opsRoutes(deps: RouteDeps) {
  return new Elysia({ prefix: "/api/v1/ops", normalize: false })
    .use(authentication(deps.tokens, deps.limiter))
    .get(
      "/hosts",
      async ({ principal }) => {
        requireRole(principal, "admin");
        const [processes, groups] = await Promise.all([deps.processes(), deps.groups().catch(() => [])]);
        const lagOf = new Map(
          groups.flatMap((g) =>
            g.positions.map((p) => [partitionId(g.groupId, p.topic, p.partition), p.lag]),
          ),
        );
        const now = Date.now();
        return processes.map((p) => ({
          hostId: p.id,
          role: p.role,
          version: p.version,
          up: p.up,
          startedAt: iso(p.started_at) as string,
          seenAt: iso(p.seen_at) as string,
          uptimeSeconds: Math.max(0, Math.round((now - new Date(p.started_at).getTime()) / 1000)),
          activeActors: p.report.activeActors,
          inFlight: p.report.inFlight,
          fenced: p.report.fenced,
          failed: p.report.failed,
          deadLetters: p.report.deadLetters,
          groups: Object.entries(p.report.groups).map(([groupId, partitions]) => ({
            groupId,
            partitions: [...partitions].sort(byPartition).map((x) => ({
              topic: x.topic,
              partition: x.partition,
              epoch: x.epoch,
              lag: lagOf.get(partitionId(groupId, x.topic, x.partition)) ?? null,
              backlog: x.backlog,
              inFlight: x.active,
              held: x.held,
            })),
          })),
        }));
      },
      {
        detail: {
          summary:
            "Every process: role, version, uptime, partitions owned per group with lag, actors, turns in flight, fenced and failed counts (admin)",
          tags: ["ops"],
          responses: answers({ 200: t.Array(HostView) }),
        },
      },
    )
    .get(
      "/groups",
      async ({ principal, query }) => {
        requireRole(principal, "admin");
        const groups = (await deps.groups()).filter((g) => !query.group || g.groupId === query.group);
        // Who holds each partition's lease (the runtime's fence), beside Kafka's view of who is assigned it.
        const owners = await deps.sql<
          { group_id: string; topic: string; partition: number; owner: string; epoch: string }[]
        >`select group_id, topic, partition, owner, epoch::text from partition_owner
          where group_id in ${deps.sql(groups.length ? groups.map((g) => g.groupId) : [""])}`;
        const ownerOf = new Map(owners.map((o) => [partitionId(o.group_id, o.topic, o.partition), o]));
        const pauses = await pausedPartitions(
          deps.sql,
          groups.map((g) => g.groupId),
        );
        const pauseOf = new Map(pauses.map((p) => [partitionId(p.groupId, p.topic, p.partition), p]));
        return groups.map((g) => ({
          groupId: g.groupId,
          state: g.state,
          members: g.members,
          lag: g.lag,
          partitions: [...g.positions].sort(byPartition).map((p) => {
            const id = partitionId(g.groupId, p.topic, p.partition);
            const owner = ownerOf.get(id);
            const pause = pauseOf.get(id);
            return {
              topic: p.topic,
              partition: p.partition,
              owner: owner?.owner ?? null,
              epoch: owner ? Number(owner.epoch) : null,
              member: p.member,
              committed: p.committed,
              end: p.end,
              lag: p.lag,
              paused: pause !== undefined,
              pausedBy: pause?.pausedBy ?? null,
              pauseReason: pause?.reason ?? null,
            };
          }),
        }));
      },
      {
        query: t.Object({ group: t.Optional(t.String({ minLength: 1, maxLength: 300 })) }),
        detail: {
          summary: "Every consumer group's partitions: owner, epoch, committed and end offsets, lag (admin)",
          tags: ["ops"],
          responses: answers({ 200: t.Array(GroupView) }),
        },
      },
    )
    .get(
      "/actors/:kind/:key",
      async ({ principal, params }) => {
        requireRole(principal, "admin");
        const { kind, key } = params;
        const [[row], timers, letters, records] = await Promise.all([
          deps.sql<
            {
              state: unknown;
              version: string;
              last_partition: number | null;
              last_offset: string | null;
              parked_at: Date | string | null;
              updated_at: Date | string;
            }[]
          >`select state, version::text, last_partition, last_offset::text, parked_at, updated_at
            from actor_state where kind = ${kind} and actor_key = ${key}`,
          deps.sql<{ name: string; fire_at: Date | string; message_type: string }[]>`
            select name, fire_at, message_type from actor_timer
            where kind = ${kind} and actor_key = ${key} order by fire_at`,
          deps.sql<
            {
              id: number;
              status: string;
              error_class: string;
              error_code: string | null;
              error_message: string;
              source_topic: string;
              source_partition: number;
              source_offset: string;
              created_at: Date | string;
            }[]
          >`select id::int, status, error_class, error_code, error_message, source_topic, source_partition,
              source_offset::text, created_at
            from dead_letter where consumer = ${kind} and message_key = ${key} order by id desc limit 20`,
          // The records of this key still in the outbox (kept a while after publishing): its recent history.
          deps.sql<
            {
              id: string;
              topic: string;
              type: string | null;
              created_at: Date | string;
              published_at: Date | string | null;
            }[]
          >`select id::text, topic, substring(value from '"eventType"[[:space:]]*:[[:space:]]*"([^"]{1,100})"') as type,
              created_at, published_at
            from outbox where message_key = ${key} order by id desc limit 20`,
        ]);
        if (!row && timers.length === 0 && letters.length === 0) throw notFound(`actor ${kind}/${key}`);
        return {
          kind,
          key,
          state: row?.state ?? null,
          version: row ? Number(row.version) : 0,
          lastPartition: row?.last_partition ?? null,
          lastOffset: row?.last_offset ?? null,
          parked: row?.parked_at != null,
          parkedAt: iso(row?.parked_at),
          updatedAt: iso(row?.updated_at),
          timers: timers.map((x) => ({
            name: x.name,
            fireAt: iso(x.fire_at) as string,
            type: x.message_type,
          })),
          deadLetters: letters.map((l) => ({
            id: l.id,
            status: l.status,
            errorClass: l.error_class,
            errorCode: l.error_code,
            errorMessage: l.error_message,
            source: `${l.source_topic}[${l.source_partition}]@${l.source_offset}`,
            createdAt: iso(l.created_at) as string,
          })),
          records: records.map((r) => ({
            id: r.id,
            topic: r.topic,
            type: r.type,
            createdAt: iso(r.created_at) as string,
            publishedAt: iso(r.published_at),
          })),
        };
      },
      {
        params: t.Object({ kind: Id, key: t.String({ minLength: 1, maxLength: 200 }) }),
        detail: {
          summary:
            "One actor: state, version, position, parking, pending timers, recent dead letters (admin)",
          tags: ["ops"],
          responses: answers({ 200: ActorView }, [404]),
        },
      },
    )
    .get(
      "/stuck",
      async ({ principal, query }) => {
        requireRole(principal, "admin");
        const olderThan = query.olderThanSeconds ?? 3600;
        const most = 3650 * 86400; // ten years
        if (!Number.isSafeInteger(olderThan) || olderThan < 0 || olderThan > most)
          throw unprocessable(
            `olderThanSeconds must be a whole number from 0 to ${most}`,
            "/olderThanSeconds",
          );
        const limit = pageSize(query.limit, 100, 1000);
        const kinds = [...deps.actorKinds].filter(
          (entry): entry is [string, NonNullable<(typeof entry)[1]>] =>
            entry[1] !== undefined && (!query.kind || entry[0] === query.kind),
        );
        if (query.kind && !deps.actorKinds.has(query.kind)) throw notFound(`actor kind ${query.kind}`);
        const found = await Promise.all(
          kinds.map(([kind, lifecycle]) =>
            deps.sql<
              { actor_key: string; status: string | null; updated_at: Date | string; version: string }[]
            >`select a.actor_key, a.state ->> ${lifecycle.statusField} as status, a.updated_at, a.version::text
              from actor_state a
              where a.kind = ${kind}
                and a.updated_at < now() - make_interval(secs => ${olderThan})
                and coalesce(a.state ->> ${lifecycle.statusField}, '') not in ${deps.sql(lifecycle.final as string[])}
                and not exists (select 1 from actor_timer t where t.kind = a.kind and t.actor_key = a.actor_key)
              order by a.updated_at limit ${limit}`.then((rows) => rows.map((r) => ({ kind, ...r }))),
          ),
        );
        return found
          .flat()
          .sort((a, b) => new Date(a.updated_at).getTime() - new Date(b.updated_at).getTime())
          .slice(0, limit)
          .map((r) => ({
            kind: r.kind,
            key: r.actor_key,
            status: r.status,
            version: Number(r.version),
            updatedAt: iso(r.updated_at) as string,
            idleSeconds: Math.round((Date.now() - new Date(r.updated_at).getTime()) / 1000),
          }));
      },
      {
        query: t.Object({
          olderThanSeconds: t.Optional(
            t.Integer({ description: "unchanged for at least this long (default 3600)" }),
          ),
          kind: t.Optional(Id),
          limit: Limit,
        }),
        detail: {
          summary:
            "Stuck work: actors in a non-final status, unchanged for longer than a threshold, with no timer pending (admin)",
          tags: ["ops"],
          responses: answers({ 200: t.Array(StuckView) }, [404]),
        },
      },
    )
    .get(
      "/audit",
      async ({ principal, query }) => {
        requireRole(principal, "admin");
        const rows = await deps.sql<
          {
            id: string;
            at: Date | string;
            who: string;
            action: string;
            target: Record<string, unknown>;
            outcome: Record<string, unknown>;
          }[]
        >`select id::text, at, who, action, target, outcome from ops_audit
          where namespace = ${deps.namespace} ${query.action ? deps.sql`and action = ${query.action}` : deps.sql``}
          order by id desc limit ${pageSize(query.limit, 50, 500)}`;
        return rows.map((r) => ({
          id: Number(r.id),
          at: iso(r.at) as string,
          who: r.who,
          action: r.action,
          target: r.target,
          outcome: r.outcome,
        }));
      },
      {
        query: t.Object({ action: t.Optional(Id), limit: Limit }),
        detail: {
          summary: "What operators did, newest first: who, what, to what, when, how it ended (admin)",
          tags: ["ops"],
          responses: answers({ 200: t.Array(AuditView) }),
        },
      },
    );
}

/** A timestamp as ISO 8601 (the pool may hand timestamps over as Dates or as Postgres' text). */
function iso(value: Date | string | null | undefined): string | null {
  return value == null ? null : new Date(value).toISOString();
}
