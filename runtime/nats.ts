/**
 * Opening NATS (the maintained @nats-io v3 client). NATS is the fast, ephemeral fabric between processes:
 * replies, live-state questions, status fan-out. Nothing that must survive a crash lives only here.
 */
import { connect, type NatsConnection, type Subscription } from "@nats-io/transport-node";

export type { NatsConnection, Subscription };

export async function openNats(servers: string[], name = "pitstop"): Promise<NatsConnection> {
  return connect({
    servers,
    name,
    timeout: 2000,
    reconnect: true,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 500,
  });
}

/** Round trip to the server; throws when the connection is closed or the server does not answer. */
export async function pingNats(nc: NatsConnection): Promise<void> {
  await nc.rtt();
}
