/**
 * The car service on the runtime: its actor kinds (booking, slot, repair, invoice, the job saga) and its
 * reactors, bound to a namespace's topics. The entry point and the tests build it with `createDomain`.
 */
import type postgres from "postgres";
import type {
  AnyActorDefinition,
  Logger,
  NatsConnection,
  ReactorDefinition,
  Redis,
} from "../runtime/index.ts";
import { createLogger } from "../runtime/index.ts";
import { bookingActor } from "./booking/booking.ts";
import { topicsIn } from "./events.ts";
import { invoiceActor } from "./invoice/invoice.ts";
import { type PaymentGateway, simulatedGateway } from "./invoice/payment-gateway.ts";
import { jobSagaActor } from "./job-saga/job-saga.ts";
import { dailyStatFolder } from "./reactors/analytics.ts";
import { createReactors, type NotificationSender } from "./reactors/index.ts";
import { type Refs, refsIn } from "./refs.ts";
import { repairActor } from "./repair/repair.ts";
import { slotActor } from "./slot/slot.ts";

export interface DomainSettings {
  invoiceDueMs: number;
  paymentAttempts: number;
  paymentRetryMs: number;
  answerTimeoutMs: number;
  checkIntervalMs: number;
  noShowGraceMs: number;
}

export interface DomainDeps {
  namespace: string;
  sql: postgres.Sql;
  redis: Redis;
  /** Status frames for WebSocket subscribers are published here (the status reactor). */
  nats?: NatsConnection;
  settings: DomainSettings;
  gateway?: PaymentGateway;
  senders?: NotificationSender[];
  log?: Logger;
}

export interface Domain {
  refs: Refs;
  actors: AnyActorDefinition[];
  reactors: ReactorDefinition[];
  gateway: PaymentGateway;
  /** Background work of a process that runs the reactors (folding the daily figures into their totals). */
  jobs: { start(): void; stop(): Promise<void> }[];
}

export function createDomain(deps: DomainDeps): Domain {
  const refs = refsIn(topicsIn(deps.namespace));
  const gateway = deps.gateway ?? simulatedGateway(deps.sql);
  return {
    refs,
    gateway,
    actors: [
      bookingActor(refs, deps.settings),
      slotActor(refs),
      repairActor(refs),
      invoiceActor(refs, gateway, deps.settings),
      jobSagaActor(refs, deps.settings),
    ],
    jobs: [
      dailyStatFolder({
        sql: deps.sql,
        redis: deps.redis,
        log: deps.log ?? createLogger("info", "pitstop-reactors"),
      }),
    ],
    reactors: createReactors({
      topics: refs.topics,
      redis: deps.redis,
      nats: deps.nats,
      natsPrefix: natsPrefixOf(deps.namespace),
      senders: deps.senders,
      log: deps.log,
    }),
  };
}

/** NATS subjects of a namespace start with this (the runtime's fabric uses the same prefix). */
export function natsPrefixOf(namespace: string): string {
  return namespace ? `pitstop-${namespace}` : "pitstop";
}

export { topicsIn } from "./events.ts";
export { type Refs, refsIn } from "./refs.ts";
export type { Reply } from "./reply.ts";
