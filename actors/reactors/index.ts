/**
 * The reactors of the seed's event table (placeholder until they land: see the helper's brief).
 */
import type { NatsConnection, ReactorDefinition, Redis } from "../../runtime/index.ts";
import type { Topics } from "../events.ts";

/** Delivers one notification on one channel (email, SMS, push). */
export interface NotificationSender {
  channel: "email" | "sms" | "push";
  send(message: { customerId: string; subject: string; body: string; template: string }): Promise<void>;
}

export interface ReactorDeps {
  topics: Topics;
  redis: Redis;
  nats?: NatsConnection;
  natsPrefix: string;
  senders?: NotificationSender[];
}

export function createReactors(_deps: ReactorDeps): ReactorDefinition[] {
  return [];
}
