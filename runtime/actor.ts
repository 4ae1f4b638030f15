/**
 * Declaring an actor kind: a name, its mailbox topic, typed state with an initial value, typed messages (TypeBox
 * schemas, checked when a record is decoded), and a handler for one turn that returns the next state and its
 * effects. Handlers are plain async functions: test them by calling them.
 *
 * @example
 * const counter = defineActor({
 *   kind: "counter",
 *   mailbox: "counter-mailbox",
 *   initialState: () => ({ total: 0 }),
 *   messages: { ADD: Type.Object({ n: Type.Integer() }) },
 *   handle: (state, message) => ({ state: { total: state.total + message.payload.n } }),
 * });
 */
import type { Static, TSchema } from "@sinclair/typebox";
import type { Envelope } from "../topics/index.ts";
import type { BackoffPolicy } from "./backoff.ts";
import { classifyError, type ErrorInfo } from "./errors.ts";

export type MessageSchemas = Record<string, TSchema>;

/** A decoded message: its type, its payload checked against that type's schema, and the envelope it came in. */
export type MessageOf<M extends MessageSchemas> = {
  [T in keyof M & string]: { type: T; payload: Static<M[T]>; envelope: Envelope };
}[keyof M & string];

/** Where a command goes: an actor kind's mailbox and a key. Hand these out; the runtime keeps the live actor. */
export interface ActorRef<M extends MessageSchemas = MessageSchemas> {
  kind: string;
  mailbox: string;
  key: string;
  /** Phantom: the messages this actor accepts. */
  readonly __messages?: M;
}

export interface TurnContext {
  kind: string;
  key: string;
  topic: string;
  partition: number;
  offset: string;
  /** 1 for the first try of this message, 2 for its first retry... */
  attempt: number;
  /** The host's clock at the start of the turn (injected, so tests control it). */
  now: Date;
}

export interface EmitEffect {
  topic: string;
  type: string;
  payload: Record<string, unknown>;
  /** Record key; defaults to the actor's key, so an entity's events stay in order. */
  key?: string;
}

export interface SendEffect {
  to: ActorRef;
  type: string;
  payload: Record<string, unknown>;
  /**
   * Pass the caller waiting on this message on to the recipient: its reply (or a later actor's, if it forwards
   * again) answers the original `ask`. Only the last actor of such a chain should set `reply`.
   */
  forwardReply?: boolean;
}

export type TimerEffect =
  | { set: string; at: Date; type: string; payload: Record<string, unknown> }
  | { cancel: string };

/** What one turn decided. Everything in it commits in one transaction with the new state, or none of it does. */
export interface TurnResult<S> {
  state: S;
  /** Events to publish (through the outbox). */
  emit?: EmitEffect[];
  /** Commands to other actors (through the outbox, into their mailboxes). */
  send?: SendEffect[];
  /** Durable timers to set or cancel; a fired timer arrives in this actor's mailbox as a message. */
  timers?: TimerEffect[];
  /** Published to status subscribers after the commit. */
  status?: unknown;
  /** Sent to the caller that asked and is waiting, after the commit. */
  reply?: unknown;
}

export interface SupervisionPolicy {
  /** Tries per message, the first included (the seed: 3). */
  maxAttempts: number;
  backoff: BackoffPolicy;
  /**
   * After a message is dead-lettered: `continue` handles the key's later messages as usual; `park` holds them
   * (recorded as parked dead letters, in order) until an operator replays the key.
   */
  onDeadLetter: "continue" | "park";
  /** Overrides the default classification (see classifyError). */
  isRetryable?: (error: unknown) => boolean | undefined;
}

export const DEFAULT_SUPERVISION: SupervisionPolicy = {
  maxAttempts: 3,
  backoff: { baseMs: 1000, maxMs: 1000, jitter: 0.1 },
  onDeadLetter: "continue",
};

export interface ActorDefinition<S, M extends MessageSchemas> {
  kind: string;
  mailbox: string;
  initialState: (key: string) => S;
  messages: M;
  handle: (state: S, message: MessageOf<M>, ctx: TurnContext) => TurnResult<S> | Promise<TurnResult<S>>;
  supervision?: Partial<SupervisionPolicy>;
  /**
   * A turn that returns the same state object and no emit/send/timers changed nothing. `commit` (the default)
   * still records "this key handled this message" so that a copy of it (the relay may send a command twice)
   * is refused; `skip` commits nothing for it, so such a copy is decided again, against the state of its own
   * time. Choose `skip` only for kinds whose no-op decisions may be re-made (queries, idempotent commands).
   */
  noopTurns?: "commit" | "skip";
  /**
   * Where the state keeps its status and which statuses are final: the ops view of stuck work lists actors in
   * any other status, unchanged for long, with no timer pending. Without it a kind is never listed.
   */
  lifecycle?: Lifecycle;
  /**
   * What each event the actor emits tells of it right after its turn (the envelope's `source.state`): its status,
   * a progress. Readers of the event (the live status frames) take the actor's state as of that event from here,
   * not from the store, which may be further on by the time they read. Keep it small: it rides on every event.
   */
  eventState?: (state: S) => Record<string, unknown>;
}

export interface Lifecycle {
  /** A top-level field of the state holding a string. */
  statusField: string;
  /** The statuses in which nothing more is expected of the actor (and the initial one, before anything began). */
  final: readonly string[];
}

// biome-ignore lint/suspicious/noExplicitAny: a registry of kinds holds actors of any state and messages
export type AnyActorDefinition = ActorDefinition<any, any>;

export function defineActor<S, M extends MessageSchemas>(
  definition: ActorDefinition<S, M>,
): ActorDefinition<S, M> {
  if (!/^[a-z][a-z0-9-]*$/.test(definition.kind)) {
    throw new Error(`actor kind "${definition.kind}" must be lower-case words joined by dashes`);
  }
  return definition;
}

/** A reference to one actor of a kind, for sending it commands. */
export function actorRef<M extends MessageSchemas>(
  definition: ActorDefinition<unknown, M>,
  key: string,
): ActorRef<M> {
  return { kind: definition.kind, mailbox: definition.mailbox, key };
}

/** Classifies a handler's error, letting the kind's `isRetryable` override the default answer. */
export function classifyUnder(policy: SupervisionPolicy, error: unknown): ErrorInfo {
  const info = classifyError(error);
  const override = policy.isRetryable?.(error);
  return override === undefined ? info : { ...info, retryable: override };
}
