/** What the routes are given (built once by the composition root, `system.ts`). */
import type postgres from "postgres";
import type { Refs } from "../actors/index.ts";
import type { Db } from "../db/index.ts";
import type { ProcessRow } from "../ops/registry.ts";
import type {
  ActorClient,
  GroupReadiness,
  Lifecycle,
  Logger,
  NatsConnection,
  Redis,
} from "../runtime/index.ts";
import type { Tokens } from "./auth.ts";
import type { Entities } from "./entities.ts";
import type { HttpMetrics } from "./observability.ts";
import type { RateLimiter } from "./rate-limit.ts";

export interface RouteDeps {
  tokens: Tokens;
  /** Each principal's request budget (429 beyond it). */
  limiter: RateLimiter;
  entities: Entities;
  client: ActorClient;
  refs: Refs;
  sql: postgres.Sql;
  db: Db;
  redis: Redis;
  log: Logger;
  askTimeoutMs: number;
  /** A customer's open bookings at most (0: no cap). */
  maxOpenBookings: number;
  /** NATS for WebSocket status (connected lazily). */
  nats(): Promise<NatsConnection>;
  natsPrefix: string;
  /** The deployment's namespace (its topics' prefix): what the ops views and audit are scoped to. */
  namespace: string;
  /** Every consumer group's positions (Kafka's committed offsets against the ends): the ops views. */
  groups(): Promise<GroupReadiness[]>;
  /** The processes of this deployment and their latest reports (ops/registry.ts): the hosts view. */
  processes(): Promise<ProcessRow[]>;
  /** The actor kinds, each with its lifecycle if it declares one (the stuck-work view). */
  actorKinds: ReadonlyMap<string, Lifecycle | undefined>;
  /** Open sockets and frames sent, counted (observability.ts); absent: not counted. */
  metrics?: Pick<HttpMetrics, "socketOpened" | "socketClosed" | "frameSent">;
}
