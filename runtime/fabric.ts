/**
 * The NATS fabric between processes (nothing here must survive a crash; Kafka and Postgres hold what must):
 *
 * - status: after a turn that set one, `<prefix>.status.<kind>.<key>` carries the actor's status, for WebSocket
 *   gateways on any process to fan out;
 * - replies: a command sent with `ask` carries a reply subject; the actor answers it after its turn committed;
 * - live state: every host answers `<prefix>.state.<kind>` requests for keys whose partition it owns, from memory
 *   or from Postgres; a process that gets no answer (a rebalance under way) reads Postgres itself.
 */
import { createRequire } from "node:module";
import type { NatsConnection } from "@nats-io/transport-node";
import type { Fabric } from "./host-deps.ts";

const require = createRequire(import.meta.url);
// The same murmur2 hash kafkajs' default (Java-compatible) partitioner uses to place keyed records.
const murmur2 = require("kafkajs/src/producer/partitioners/default/murmur2.js") as (
  key: string | Buffer,
) => number;

/** The partition a key's records go to, as the default partitioner places them. */
export function partitionOf(key: string, partitions: number): number {
  return (murmur2(key) & 0x7fffffff) % partitions;
}

/** A key as one NATS subject token: itself when plain, else base64url behind a `~`. */
export function subjectToken(key: string): string {
  return /^[A-Za-z0-9_-]+$/.test(key) ? key : `~${Buffer.from(key).toString("base64url")}`;
}

export function statusSubject(prefix: string, kind: string, key: string): string {
  return `${prefix}.status.${kind}.${subjectToken(key)}`;
}

export function stateSubject(prefix: string, kind: string): string {
  return `${prefix}.state.${kind}`;
}

export interface StatusMessage {
  kind: string;
  key: string;
  status: unknown;
  at: string;
}

export function natsFabric(nc: NatsConnection, prefix: string, clock: () => Date = () => new Date()): Fabric {
  return {
    publishStatus(kind, key, status) {
      const message: StatusMessage = { kind, key, status, at: clock().toISOString() };
      nc.publish(statusSubject(prefix, kind, key), JSON.stringify(message));
    },
    reply(subject, body) {
      nc.publish(subject, JSON.stringify(body));
    },
  };
}

export interface LiveState {
  key: string;
  state: unknown;
  version: number;
  owner: string;
}

/** Asks the host that owns `key` for its state; undefined when no owner answers in time. */
export async function askState(
  nc: NatsConnection,
  prefix: string,
  kind: string,
  key: string,
  timeoutMs = 1000,
): Promise<LiveState | undefined> {
  try {
    const answer = await nc.request(stateSubject(prefix, kind), JSON.stringify({ key }), {
      timeout: timeoutMs,
    });
    return answer.json<LiveState>();
  } catch {
    return undefined; // no responders, or a timeout
  }
}
