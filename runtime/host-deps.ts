/** What the runners of a host share: the database, the host's identity and clock, logs, and the NATS fabric. */
import type postgres from "postgres";
import type { Db } from "../db/index.ts";
import type { PartitionLease } from "./fence.ts";
import type { GroupCommitter } from "./group-commit.ts";
import type { Logger } from "./logger.ts";
import type { RuntimeObserver } from "./observer.ts";

/** The fast, ephemeral side channel (NATS): status fan-out and replies to waiting callers. */
export interface Fabric {
  publishStatus(kind: string, key: string, status: unknown): void;
  reply(subject: string, body: unknown): void;
}

export interface RuntimeDeps {
  /** drizzle, for reactors' own writes and admin paths. */
  db: Db;
  /** postgres.js, for the turn's hot path (prepared statements). */
  sql: postgres.Sql;
  hostId: string;
  clock: () => Date;
  log: Logger;
  fabric?: Fabric;
  /** Batches turns' commits; absent: one transaction per turn. */
  groupCommit?: GroupCommitter;
  /**
   * Wakes the partition's publisher after a commit wrote outbox rows it was not handed (group commit hands its
   * rows over itself): they go out through its sweep, in id order with the partition's earlier rows.
   */
  outboxWritten(lease: PartitionLease): void;
  /** Told of turns, reactor events, batches and rebalances as they happen (observer.ts). */
  observer: RuntimeObserver;
}
