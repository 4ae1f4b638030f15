/**
 * The reactors of the seed's event table: consumers of the car service's events that are not actors. Each
 * handles an event in one Postgres transaction with the runtime's inbox row, so its Postgres writes happen once
 * per eventId; what it does outside Postgres (Redis, NATS, senders) is idempotent or at least once, as each
 * file says.
 *
 * | reactor      | reads                                  | does                                              |
 * | ------------ | -------------------------------------- | ------------------------------------------------- |
 * | notification | booking, repair, payment, compensation | email / SMS / push; emits NOTIFICATION_SENT       |
 * | analytics    | booking, payment, notification         | daily_stat, mirrored to Redis `daily:*`           |
 * | audit        | every event topic                      | one audit_log row per event                       |
 * | cache-sync   | booking, repair, payment               | Redis `booking:`, `repair:status:`, `invoice:`    |
 * | inventory    | repair                                 | part stock and movements                          |
 * | status       | booking, repair, payment, compensation | status frames on NATS for WebSocket subscribers   |
 */
import type { ReactorDefinition } from "../../runtime/index.ts";
import { analyticsReactor } from "./analytics.ts";
import { auditReactor } from "./audit.ts";
import { cacheSyncReactor } from "./cache-sync.ts";
import { inventoryReactor } from "./inventory.ts";
import { notificationReactor } from "./notification.ts";
import type { ReactorDeps } from "./reactor-deps.ts";
import { statusReactor } from "./status.ts";

export type { NotificationSender, ReactorDeps } from "./reactor-deps.ts";
export type { StatusFrame } from "./status.ts";

/**
 * All six reactors, bound to a namespace's topics and the process's connections.
 *
 * @example
 * const reactors = createReactors({ topics: topicsIn(""), redis, nats, natsPrefix: "pitstop", log });
 * createHost({ ...options, reactors });
 */
export function createReactors(deps: ReactorDeps): ReactorDefinition[] {
  return [
    notificationReactor(deps),
    analyticsReactor(deps),
    auditReactor(deps),
    cacheSyncReactor(deps),
    inventoryReactor(deps),
    statusReactor(deps),
  ];
}
