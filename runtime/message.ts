/**
 * Mailbox records: an event envelope (topics/envelope.ts) whose `eventType` is the message type, `entityId`
 * the actor key and `payload` the message, checked against the kind's schema for that type.
 */
import type { TSchema } from "@sinclair/typebox";
import { type TypeCheck, TypeCompiler } from "@sinclair/typebox/compiler";
import { decodeEnvelope, type Envelope, EnvelopeError } from "../topics/index.ts";
import type { MessageOf, MessageSchemas } from "./actor.ts";
import { DecodeError } from "./errors.ts";

/** Compiles a kind's message schemas once; returns its decoder. */
export function messageDecoder<M extends MessageSchemas>(schemas: M): (value: Buffer | null) => MessageOf<M> {
  const checks = new Map<string, TypeCheck<TSchema>>(
    Object.entries(schemas).map(([type, schema]) => [type, TypeCompiler.Compile(schema)]),
  );
  return (value) => {
    let envelope: Envelope;
    try {
      envelope = decodeEnvelope(value);
    } catch (error) {
      if (error instanceof EnvelopeError) throw new DecodeError(error.message, { cause: error });
      throw error;
    }
    return checkPayload(checks, envelope) as MessageOf<M>;
  };
}

function checkPayload(checks: Map<string, TypeCheck<TSchema>>, envelope: Envelope) {
  const check = checks.get(envelope.eventType);
  if (!check) {
    throw new DecodeError(
      `unknown message type ${envelope.eventType} (known: ${[...checks.keys()].join(", ")})`,
    );
  }
  if (!check.Check(envelope.payload)) {
    const problems = [...check.Errors(envelope.payload)]
      .slice(0, 5)
      .map((e) => `${e.path || "/"} ${e.message}`);
    throw new DecodeError(`${envelope.eventType} payload is invalid: ${problems.join("; ")}`);
  }
  return { type: envelope.eventType, payload: envelope.payload, envelope };
}
