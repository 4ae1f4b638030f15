/**
 * The public door of `runtime/`: what `actors/`, `http/` and the entry point may import. The runtime speaks of
 * actors, keys, partitions, turns and effects; it knows nothing of bookings or repairs.
 */
export {
  type ActorDefinition,
  type ActorRef,
  type AnyActorDefinition,
  actorRef,
  DEFAULT_SUPERVISION,
  defineActor,
  type EmitEffect,
  type Lifecycle,
  type MessageOf,
  type MessageSchemas,
  type SendEffect,
  type SupervisionPolicy,
  type TimerEffect,
  type TurnContext,
  type TurnResult,
} from "./actor.ts";
export { type ActorClient, type AskResult, createActorClient, type SendOptions } from "./actor-client.ts";
export { REPLY_TO_HEADER } from "./actor-runner.ts";
export { parkActor, unparkActor } from "./actor-store.ts";
export { type BackoffPolicy, backoffDelay } from "./backoff.ts";
export {
  type DeadLetter,
  type DeadLetterFilter,
  DLT_HEADERS,
  listDeadLetters,
  REPLAY_HEADER,
  type ReplayRequest,
  replayDeadLetters,
  skipDeadLetters,
} from "./dead-letters.ts";
export {
  classifyError,
  DecodeError,
  type ErrorInfo,
  FencedError,
  PitstopError,
  RetryableError,
  TerminalError,
  UnavailableError,
} from "./errors.ts";
export {
  askState,
  type LiveState,
  natsFabric,
  partitionOf,
  type StatusMessage,
  stateSubject,
  statusSubject,
  subjectToken,
} from "./fabric.ts";
export { sessionName } from "./fence.ts";
export {
  type GroupReadiness,
  type GroupSpec,
  groupReadiness,
  type PartitionPosition,
  type Readiness,
} from "./group-readiness.ts";
export {
  consumerGroupsOf,
  createHost,
  DEFAULT_TUNING,
  type Host,
  type HostOptions,
  type HostStats,
  type HostTuning,
} from "./host.ts";
export type { Fabric } from "./host-deps.ts";
export { createLogger, type Logger } from "./logger.ts";
export { type NatsConnection, openNats, pingNats, type Subscription } from "./nats.ts";
export {
  NO_OBSERVER,
  type ReactorEventOutcome,
  type RuntimeObserver,
  type TurnOutcome,
} from "./observer.ts";
export { OffsetTracker } from "./offset-tracker.ts";
export { OutboxRelay, type OutboxRelayOptions } from "./outbox-relay.ts";
export {
  type PausedPartition,
  pausedPartitions,
  pausePartition,
  resumePartition,
} from "./partition-pauses.ts";
export { defineReactor, type ReactorContext, type ReactorDefinition, type ReactorResult } from "./reactor.ts";
export { openRedis, pingRedis, type Redis } from "./redis.ts";
export { isStorableText, storableText } from "./storable-text.ts";
export {
  activeTracer,
  endSpan,
  failSpan,
  parentContext,
  type Span,
  SpanKind,
  SpanStatusCode,
  traceHeaders,
  traceIdOf,
} from "./tracing.ts";
