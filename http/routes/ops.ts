/**
 * What operators see of the runtime (admin): every consumer group's partitions with their owner, epoch, committed
 * and end offsets and lag; one actor's state, position, parking, pending timers and dead letters. The same views
 * are `npm run ops -- groups` and `npm run ops -- actor <kind> <key>` (scripts/ops.ts calls these routes).
 */
import { Elysia, t } from "elysia";
import { authentication, requireRole } from "../auth.ts";
import type { RouteDeps } from "../deps.ts";
import { notFound } from "../errors.ts";
import { ActorView, answers, GroupView } from "./answers.ts";
import { Id } from "./schemas.ts";

export function opsRoutes(deps: RouteDeps) {
  return new Elysia({ prefix: "/api/v1/ops", normalize: false })
    .use(authentication(deps.tokens, deps.limiter))
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
        const ownerOf = new Map(owners.map((o) => [`${o.group_id}\u0000${o.topic}\u0000${o.partition}`, o]));
        return groups.map((g) => ({
          groupId: g.groupId,
          state: g.state,
          members: g.members,
          lag: g.lag,
          partitions: g.positions.map((p) => {
            const owner = ownerOf.get(`${g.groupId}\u0000${p.topic}\u0000${p.partition}`);
            return {
              topic: p.topic,
              partition: p.partition,
              owner: owner?.owner ?? null,
              epoch: owner ? Number(owner.epoch) : null,
              member: p.member,
              committed: p.committed,
              end: p.end,
              lag: p.lag,
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
        const [[row], timers, letters] = await Promise.all([
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
    );
}

/** A timestamp as ISO 8601 (the pool may hand timestamps over as Dates or as Postgres' text). */
function iso(value: Date | string | null | undefined): string | null {
  return value == null ? null : new Date(value).toISOString();
}
