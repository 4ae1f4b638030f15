/**
 * Sending a command to an actor for an HTTP request and turning its answer into a response: the actor's
 * accepted answer (201/200), its refusal (404/409/402 with the reason), or — when no answer comes within the ask
 * timeout — 202 with the URL where the outcome will show (the command is durably in the mailbox).
 */
import type { Reply } from "../actors/index.ts";
import type { ActorClient, ActorRef, Span } from "../runtime/index.ts";
import type { StoredAnswer } from "./idempotency.ts";

const REFUSAL_STATUS: Record<string, number> = {
  not_found: 404,
  conflict: 409,
  slot_full: 409,
  invalid_transition: 409,
  payment_declined: 402,
};

export interface CommandOptions {
  messageId: string;
  timeoutMs: number;
  /** Where the outcome can be read later (202). */
  statusUrl: string;
  /** Status of an accepted answer (201 for a creation). */
  okStatus?: number;
  correlationId?: string;
  /** The request's span (tracing on): the command's record carries its trace to the actor. */
  trace?: Span;
}

export async function command(
  client: ActorClient,
  ref: ActorRef,
  type: string,
  payload: Record<string, unknown>,
  options: CommandOptions,
): Promise<StoredAnswer & { view?: unknown }> {
  const answer = await client.ask(ref, type, payload, {
    messageId: options.messageId,
    timeoutMs: options.timeoutMs,
    correlationId: options.correlationId,
    trace: options.trace,
  });
  if (answer.status === "accepted") {
    return {
      status: 202,
      body: {
        status: "accepted",
        message: "the command was accepted; its outcome will show at statusUrl",
        messageId: answer.messageId,
        statusUrl: options.statusUrl,
      },
    };
  }
  if (!answer.ok) {
    // The command failed for good and was dead-lettered: an operator can replay it.
    return {
      status: 503,
      body: { error: { code: "command_failed", message: answer.error.message, retryable: true } },
    };
  }
  const reply = answer.reply as Reply<unknown>;
  if (reply.accepted) return { status: options.okStatus ?? 200, body: reply.view, view: reply.view };
  return {
    status: REFUSAL_STATUS[reply.code] ?? 409,
    body: { error: { code: reply.code, message: reply.reason, retryable: false } },
  };
}
