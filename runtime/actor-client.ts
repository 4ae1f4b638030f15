/**
 * Sending commands to actors from outside a turn (an HTTP route, a script): `tell` writes the command to the
 * actor's mailbox topic; `ask` also waits, over NATS, for the actor's reply after its turn committed, and
 * degrades to "accepted" when no reply comes in time (the command is still durably in the mailbox).
 */

import { createInbox, type NatsConnection } from "@nats-io/transport-node";
import type { Kafka } from "kafkajs";
import { encodeEnvelope, newEnvelope } from "../topics/index.ts";
import type { ActorRef } from "./actor.ts";
import { REPLY_TO_HEADER } from "./actor-runner.ts";
import { createLogger, type Logger } from "./logger.ts";
import { ReplaceableProducer } from "./producer.ts";
import { activeTracer, type Span, traceHeaders, tracePublish } from "./tracing.ts";

export interface SendOptions {
  correlationId?: string;
  /** The command's id (its envelope's eventId): sending the same id twice is handled once. */
  messageId?: string;
  /**
   * The span the command is sent under (an HTTP request's): the record carries its trace, so the actor's turn
   * belongs to it. Without one the record carries none, and its turn starts a trace of its own.
   */
  trace?: Span;
}

export type AskResult =
  | { status: "replied"; ok: true; reply: unknown; messageId: string }
  | { status: "replied"; ok: false; error: { class: string; message: string }; messageId: string }
  | { status: "accepted"; messageId: string };

export interface ActorClient {
  tell(ref: ActorRef, type: string, payload: Record<string, unknown>, options?: SendOptions): Promise<string>;
  ask(
    ref: ActorRef,
    type: string,
    payload: Record<string, unknown>,
    options?: SendOptions & { timeoutMs?: number },
  ): Promise<AskResult>;
  close(): Promise<void>;
}

export function createActorClient({
  kafka,
  nats,
  log = createLogger("silent"),
}: {
  kafka: Kafka;
  /** Where a replaced producer is told of. */
  log?: Logger;
  /** A connection, or a way to get one when first needed (an HTTP process may start before NATS answers). */
  nats?: NatsConnection | (() => Promise<NatsConnection>);
}): ActorClient {
  const natsNow = async () => {
    if (typeof nats !== "function") return nats;
    return nats().catch(() => undefined); // no NATS: commands still go, answers degrade to "accepted"
  };
  const producer = new ReplaceableProducer(kafka, { idempotent: true, maxInFlightRequests: 1 }, log);
  const send = async (
    ref: ActorRef,
    type: string,
    payload: Record<string, unknown>,
    options: SendOptions,
    headers: Record<string, string>,
  ) => {
    const envelope = newEnvelope({
      eventType: type,
      entityId: ref.key,
      payload,
      correlationId: options.correlationId,
      eventId: options.messageId,
    });
    // Sent in a span `publish <mailbox>` under the caller's (the record then names the publish as its parent).
    const traced =
      options.trace && activeTracer()
        ? tracePublish(ref.mailbox, [{ headers: { ...headers, ...traceHeaders(options.trace) } }])
        : undefined;
    try {
      await producer.send({
        topic: ref.mailbox,
        messages: [{ key: ref.key, value: encodeEnvelope(envelope), headers: traced?.headers[0] ?? headers }],
      });
    } catch (error) {
      traced?.end(error);
      throw error;
    }
    traced?.end();
    return envelope.eventId;
  };
  return {
    tell: (ref, type, payload, options = {}) => send(ref, type, payload, options, {}),
    async ask(ref, type, payload, options = {}) {
      const nc = await natsNow();
      if (!nc) {
        return { status: "accepted", messageId: await send(ref, type, payload, options, {}) };
      }
      const subject = createInbox();
      const subscription = nc.subscribe(subject, { max: 1, timeout: options.timeoutMs ?? 2000 });
      const messageId = await send(ref, type, payload, options, { [REPLY_TO_HEADER]: subject });
      try {
        for await (const message of subscription) {
          const body = message.json<{
            ok: boolean;
            reply?: unknown;
            error?: { class: string; message: string };
          }>();
          return body.ok
            ? { status: "replied", ok: true, reply: body.reply, messageId }
            : {
                status: "replied",
                ok: false,
                error: body.error ?? { class: "Error", message: "failed" },
                messageId,
              };
        }
      } catch {
        // timed out: the command is in the mailbox and will be handled
      }
      return { status: "accepted", messageId };
    },
    close: () => producer.close(),
  };
}
