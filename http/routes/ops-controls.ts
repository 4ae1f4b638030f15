/**
 * What operators do to the runtime (admin), each audited (ops-audit.ts) and answered in the API's JSON shape:
 *
 * - pause / resume one partition of a consumer group: its owner starts nothing new from it (running turns
 *   finish) until resumed; the pause is a row, so it holds across rebalances and restarts (runtime
 *   partition-pauses.ts; hosts read it every second);
 * - park / unpark one actor: while parked, its records are kept as parked dead letters, in order; unparking
 *   lets later records through (replay the held ones by key, or skip them).
 *
 * Replay and skip of dead letters are with the dead letters (operations.ts). `npm run ops` calls these routes.
 */
import { Elysia, t } from "elysia";
import { parkActor, pausePartition, resumePartition, unparkActor } from "../../runtime/index.ts";
import { authentication, type Principal, requireRole } from "../auth.ts";
import type { RouteDeps } from "../deps.ts";
import { notFound } from "../errors.ts";
import { audited } from "../ops-audit.ts";
import { answers, ParkAnswer, PauseAnswer } from "./answers.ts";
import { Id, strict } from "./schemas.ts";

const Reason = t.Optional(t.String({ minLength: 1, maxLength: 500 }));
const PartitionTarget = t.Object(
  {
    group: t.String({ minLength: 1, maxLength: 300 }),
    topic: t.String({ minLength: 1, maxLength: 300 }),
    partition: t.Integer({ minimum: 0 }),
    reason: Reason,
  },
  strict,
);
const ActorParams = t.Object({ kind: Id, key: t.String({ minLength: 1, maxLength: 200 }) });
const ParkBody = t.Optional(t.Object({ reason: Reason }, strict));

export function opsControlRoutes(deps: RouteDeps) {
  /** 404 unless the group exists and reads that partition (a typo must not leave a pause nobody sees). */
  const checkPartition = async (group: string, topic: string, partition: number) => {
    const known = (await deps.groups()).find((g) => g.groupId === group);
    if (!known) throw notFound(`consumer group ${group}`);
    if (!known.positions.some((p) => p.topic === topic && p.partition === partition))
      throw notFound(`partition ${topic}/${partition} of ${group}`);
  };
  const checkKind = (kind: string) => {
    if (!deps.actorKinds.has(kind)) throw notFound(`actor kind ${kind}`);
  };
  const actorExists = async (tx: Parameters<typeof parkActor>[0], kind: string, key: string) =>
    (await tx`select 1 from actor_state where kind = ${kind} and actor_key = ${key}`).length > 0;

  const parking = (
    principal: Principal,
    { kind, key }: { kind: string; key: string },
    body: { reason?: string } | null | undefined,
    park: boolean,
  ) => {
    requireRole(principal, "admin");
    const action = park ? "actor.park" : "actor.unpark";
    return audited(deps, principal, action, { kind, key, reason: body?.reason }, async (tx) => {
      checkKind(kind);
      const changed = await (park ? parkActor : unparkActor)(tx, kind, key);
      if (!changed && !(await actorExists(tx, kind, key))) throw notFound(`actor ${kind}/${key}`);
      return { kind, key, parked: park, changed };
    });
  };

  return new Elysia({ prefix: "/api/v1/ops", normalize: false })
    .use(authentication(deps.tokens, deps.limiter))
    .post(
      "/partitions/pause",
      async ({ principal, body }) => {
        requireRole(principal, "admin");
        const { group, topic, partition, reason } = body;
        return audited(
          deps,
          principal,
          "partition.pause",
          { group, topic, partition, reason },
          async (tx) => {
            await checkPartition(group, topic, partition);
            const already = await tx`select 1 from partition_pause
            where group_id = ${group} and topic = ${topic} and partition = ${partition}`;
            await pausePartition(
              tx,
              { groupId: group, topic, partition },
              `${principal.role}:${principal.sub}`,
              reason,
            );
            return { groupId: group, topic, partition, paused: true, changed: already.length === 0 };
          },
        );
      },
      {
        body: PartitionTarget,
        detail: {
          summary:
            "Pause one partition of a group: nothing new starts from it until resumed, across rebalances (admin)",
          tags: ["ops"],
          responses: answers({ 200: PauseAnswer }, [400, 404]),
        },
      },
    )
    .post(
      "/partitions/resume",
      async ({ principal, body }) => {
        requireRole(principal, "admin");
        const { group, topic, partition, reason } = body;
        return audited(
          deps,
          principal,
          "partition.resume",
          { group, topic, partition, reason },
          async (tx) => {
            await checkPartition(group, topic, partition);
            const changed = await resumePartition(tx, { groupId: group, topic, partition });
            return { groupId: group, topic, partition, paused: false, changed };
          },
        );
      },
      {
        body: PartitionTarget,
        detail: {
          summary: "Resume a paused partition (admin)",
          tags: ["ops"],
          responses: answers({ 200: PauseAnswer }, [400, 404]),
        },
      },
    )
    .post(
      "/actors/:kind/:key/park",
      ({ principal, params, body }) => parking(principal, params, body, true),
      {
        params: ActorParams,
        body: ParkBody,
        detail: {
          summary: "Park one actor: its next records are held as parked dead letters, in order (admin)",
          tags: ["ops"],
          responses: answers({ 200: ParkAnswer }, [400, 404]),
        },
      },
    )
    .post(
      "/actors/:kind/:key/unpark",
      ({ principal, params, body }) => parking(principal, params, body, false),
      {
        params: ActorParams,
        body: ParkBody,
        detail: {
          summary:
            "Unpark an actor: later records are handled; held ones stay dead letters to replay or skip (admin)",
          tags: ["ops"],
          responses: answers({ 200: ParkAnswer }, [400, 404]),
        },
      },
    );
}
