/**
 * `GET /ws`: live status over WebSocket. A client authenticates with its bearer token (`Authorization` header, or
 * `?token=` since browsers cannot set headers on a WebSocket), then subscribes to its own bookings and repairs:
 *
 *   -> { "type": "subscribe", "bookingId": "..." }        (or "repairId")
 *   <- { "type": "subscribed", "entity": "booking", "id": "...", "current": { ...the entity now... } }
 *   <- { "type": "status", "entity": "repair", "id": "...", "event": "REPAIR_IN_PROGRESS", "status": "DIAGNOSING",
 *        "progress": 20, "version": 3, "source": { "kind": "repair", ... }, "detail": { ...the event's payload } }
 *
 * A frame says what its own event said: `status` (and a repair's `progress`, its `version`) are what the entity
 * reached in the turn that emitted the event, however far it has gone since, so a subscriber sees each step once
 * and in order (dedupe by `eventId`). On a booking's feed, another entity's event (a repair's step, a payment)
 * did not change the booking: its `status` is null and `source` says whose step it was and what it reached.
 *
 * A status frame's `traceId` (present when tracing is on, docs/ops.md "Traces") is the trace id of the event that
 * moved the entity: the request's that caused it, for a support ticket to find every span of it.
 *
 * Frames come from NATS (`<prefix>.status.<entity>.<id>`, published by the status reactor on whichever process
 * handles the event), so every gateway process sees every change. Someone else's id answers like a missing one.
 * Frames are at least once: dedupe by `eventId`.
 */
import { type Static, Type } from "@sinclair/typebox";
import { TypeCompiler } from "@sinclair/typebox/compiler";
import { Elysia, t } from "elysia";
import { type NatsConnection, type Subscription, statusSubject } from "../runtime/index.ts";
import { authenticate, bearerOf, type Principal } from "./auth.ts";
import type { RouteDeps } from "./deps.ts";
import { HttpError } from "./errors.ts";
import { ID_PATTERN } from "./routes/schemas.ts";

const Subscribe = Type.Object(
  {
    type: Type.Union([Type.Literal("subscribe"), Type.Literal("unsubscribe")]),
    // The HTTP routes' id rule: a NUL or a character outside it gets an error frame, not a broken subject.
    bookingId: Type.Optional(Type.String({ minLength: 1, maxLength: 100, pattern: ID_PATTERN })),
    repairId: Type.Optional(Type.String({ minLength: 1, maxLength: 100, pattern: ID_PATTERN })),
  },
  { additionalProperties: false },
);
// Checked here rather than by Elysia, so a bad message gets this gateway's error frame (Elysia would answer with
// its own validation dump).
const checkSubscribe = TypeCompiler.Compile(Subscribe);

const MAX_SUBSCRIPTIONS = 50;

interface Connection {
  principal: Principal;
  subscriptions: Map<string, Subscription>;
  closed: boolean;
}

export function statusSocket(deps: RouteDeps) {
  const connections = new Map<string, Promise<Connection>>();
  return new Elysia({ normalize: false }).ws("/ws", {
    query: t.Object({ token: t.Optional(t.String({ maxLength: 4096 })) }),
    async beforeHandle({ headers, query, set }) {
      try {
        await authenticate(deps.tokens, bearerOf(headers) ?? query.token);
      } catch (error) {
        if (!(error instanceof HttpError)) throw error;
        set.status = error.status;
        return { error: { code: error.code, message: error.message, retryable: false } };
      }
    },
    open(ws) {
      deps.metrics?.socketOpened();
      // A client may send its first subscribe at once: `message` waits for this to finish.
      const opening = authenticate(deps.tokens, bearerOf(ws.data.headers) ?? ws.data.query.token).then(
        (principal): Connection => ({ principal, subscriptions: new Map(), closed: false }),
      );
      connections.set(ws.id, opening);
      return opening.then(() => {}).catch(() => ws.close(4401, "unauthorized"));
    },
    async message(ws, raw) {
      const connection = await connections.get(ws.id)?.catch(() => undefined);
      if (!connection) return;
      // (Returns nothing: whatever `message` returns, Elysia sends to the client as a frame.)
      const send = (frame: { type: string; [field: string]: unknown }): undefined => {
        ws.send(JSON.stringify(frame));
        deps.metrics?.frameSent(frame.type);
      };
      if (!checkSubscribe.Check(raw)) {
        const problem = [...checkSubscribe.Errors(raw)][0];
        return send({
          type: "error",
          code: "invalid_request",
          message: `expected {"type":"subscribe"|"unsubscribe","bookingId"|"repairId":"..."}: ${problem?.path || "message"} ${problem?.message ?? "is invalid"}`,
        });
      }
      const message = raw as Static<typeof Subscribe>;
      const entity = message.bookingId ? "booking" : message.repairId ? "repair" : undefined;
      const id = message.bookingId ?? message.repairId;
      if (!entity || !id || (message.bookingId && message.repairId)) {
        return send({
          type: "error",
          code: "invalid_request",
          message: "give exactly one of bookingId or repairId",
        });
      }
      const subject = statusSubject(deps.natsPrefix, entity, id);
      if (message.type === "unsubscribe") {
        connection.subscriptions.get(subject)?.unsubscribe();
        connection.subscriptions.delete(subject);
        return send({ type: "unsubscribed", entity, id });
      }
      if (connection.subscriptions.size >= MAX_SUBSCRIPTIONS) {
        return send({
          type: "error",
          code: "too_many",
          message: `at most ${MAX_SUBSCRIPTIONS} subscriptions`,
        });
      }
      const read = () => deps.entities.read(entity, id, connection.principal);
      /** A refusal (not_found) as its frame; a failure (Postgres away) as a retryable one, never a thrown error. */
      const failed = (error: unknown) =>
        error instanceof HttpError
          ? send({ type: "error", code: error.code, message: error.message, entity, id })
          : send({
              type: "error",
              code: "unavailable",
              message: "the entity cannot be read now; retry shortly",
              retryable: true,
              entity,
              id,
            });
      try {
        await read(); // may this principal see it? (someone else's id answers not_found)
      } catch (error) {
        return failed(error);
      }
      const created = !connection.subscriptions.has(subject);
      if (created) {
        let nc: NatsConnection;
        try {
          nc = await deps.nats();
        } catch {
          return send({
            type: "error",
            code: "unavailable",
            message: "live status is unavailable; retry shortly",
          });
        }
        connection.subscriptions.set(
          subject,
          nc.subscribe(subject, {
            callback: (error, m) => {
              if (error) return;
              ws.send(m.string());
              deps.metrics?.frameSent("status");
            },
          }),
        );
      }
      // Read the current state after subscribing, so no change between the two is missed.
      let current: unknown;
      try {
        current = await read();
      } catch (error) {
        if (created) {
          connection.subscriptions.get(subject)?.unsubscribe();
          connection.subscriptions.delete(subject);
        }
        return failed(error);
      }
      if (connection.closed) {
        for (const subscription of connection.subscriptions.values()) subscription.unsubscribe();
        return;
      }
      send({ type: "subscribed", entity, id, current });
    },
    async close(ws) {
      deps.metrics?.socketClosed();
      const connection = await connections.get(ws.id)?.catch(() => undefined);
      connections.delete(ws.id);
      if (!connection) return;
      connection.closed = true; // a subscribe still being handled unsubscribes itself
      for (const subscription of connection.subscriptions.values()) subscription.unsubscribe();
    },
  });
}
