/** What the car service's reactors are built from: topic names, connections, notification senders, a logger. */
import { createLogger, type Logger, type NatsConnection, type Redis } from "../../runtime/index.ts";
import type { EventPayload, Topics } from "../events.ts";

export type Channel = EventPayload<"NOTIFICATION_SENT">["channel"];

/** Delivers one notification on one channel (email, SMS, push). */
export interface NotificationSender {
  channel: Channel;
  send(message: { customerId: string; subject: string; body: string; template: string }): Promise<void>;
}

export interface ReactorDeps {
  topics: Topics;
  redis: Redis;
  nats?: NatsConnection;
  natsPrefix: string;
  senders?: NotificationSender[];
  /** Where Redis trouble and unknown parts are reported (default: a pino logger at "info"). */
  log?: Logger;
}

let fallbackLog: Logger | undefined;

/** The reactor's logger: the one given, or a default made once; each line names the reactor. */
export function reactorLog(deps: ReactorDeps, reactor: string): Logger {
  fallbackLog ??= createLogger("info", "pitstop-reactors");
  return (deps.log ?? fallbackLog).child({ reactor });
}
