/**
 * Every error of the runtime answers "retry or not?". A business rejection is terminal; a broker or database
 * hiccup is retryable. Anything else thrown by a handler is normalised once, at the turn boundary.
 */

export class PitstopError extends Error {
  override name = "PitstopError";
  constructor(
    message: string,
    readonly retryable: boolean,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** Throw from a handler when trying again later may succeed (a timeout, a dependency being down). */
export class RetryableError extends PitstopError {
  override name = "RetryableError";
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, true, options);
  }
}

/** Throw from a handler when trying again cannot help (a rule says no, the input is wrong). */
export class TerminalError extends PitstopError {
  override name = "TerminalError";
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, false, options);
  }
}

/**
 * This host no longer owns the partition: another host bumped its epoch (took it over). The turn's writes
 * were rolled back; the record will be handled by the new owner. Not retried here.
 */
export class FencedError extends PitstopError {
  override name = "FencedError";
  constructor(
    readonly topic: string,
    readonly partition: number,
    readonly epoch: number,
    readonly currentEpoch: number | undefined,
  ) {
    super(`${topic}[${partition}] epoch ${epoch} was fenced (current ${currentEpoch ?? "none"})`, false);
  }
}

/**
 * A dependency the handler cannot do without (a cache that is its whole effect, a broker) did not answer. Not
 * the message's fault: it is retried, and when the retries run out the record is not dead-lettered — its
 * partition is read again once the dependency is back (outages are waited out).
 */
export class UnavailableError extends PitstopError {
  override name = "UnavailableError";
  constructor(
    readonly dependency: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`${dependency} unavailable: ${message}`, true, options);
  }
}

/** A record that cannot become a message: no key, not an envelope, an unknown type, a payload off-schema. */
export class DecodeError extends PitstopError {
  override name = "DecodeError";
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, false, options);
  }
}

export interface ErrorInfo {
  errorClass: string;
  message: string;
  retryable: boolean;
  /** What the cause said of itself: a Postgres SQLSTATE (`40P01`: deadlock), a Node or Kafka error code. */
  code?: string;
}

/**
 * Classifies anything thrown. Errors that say so (`retryable: boolean`, as ours and kafkajs' `retriable` do)
 * are believed; Postgres errors are retryable for connection/serialization classes only; other unknown throws
 * are treated as retryable, so a passing fault gets its retries and a real bug still ends in a dead letter.
 */
export function classifyError(error: unknown): ErrorInfo {
  if (error instanceof Error) {
    const flagged = error as Error & { retryable?: unknown; retriable?: unknown; code?: unknown };
    const retryable =
      typeof flagged.retryable === "boolean"
        ? flagged.retryable
        : typeof flagged.retriable === "boolean"
          ? flagged.retriable
          : typeof flagged.code === "string" && /^[0-9A-Z]{5}$/.test(flagged.code)
            ? // connection, a transaction already failed by an earlier statement (25P02: seen when Postgres was
              // cut mid-transaction) or no longer there (25P01: its statements sent on a new session after its
              // own was ended), idle-in-transaction timeout, serialization/deadlock, resources, shutdown, a
              // row lock not granted in time (55P03: another session holds it, see TURN_LOCK_TIMEOUT_MS)
              /^(08|25P0[123]|40|53|55P03|57P)/.test(flagged.code)
            : true;
    const code = codeOf(error);
    return {
      errorClass: error.name || error.constructor.name,
      message: error.message,
      retryable,
      ...(code ? { code } : {}),
    };
  }
  return { errorClass: typeof error, message: String(error), retryable: true };
}

/** The first string `code` (SQLSTATE, errno name) or kafkajs `type` found on the error or its causes. */
function codeOf(error: Error): string | undefined {
  for (let e: unknown = error, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    const { code, type } = e as Error & { code?: unknown; type?: unknown };
    if (typeof code === "string" && code !== "") return code;
    if (typeof type === "string" && type !== "") return type;
  }
  return undefined;
}

// postgres.js connection failures, Node socket errors, and SQLSTATE classes for "cannot reach the server".
const UNAVAILABLE_CODES = new Set([
  "CONNECTION_CLOSED",
  "CONNECTION_ENDED",
  "CONNECTION_DESTROYED",
  "CONNECT_TIMEOUT",
  "ECONNREFUSED",
  "ECONNRESET",
  "EPIPE",
  "ETIMEDOUT",
  "EHOSTUNREACH",
]);

/**
 * Whether an error says a dependency (Postgres) cannot be reached, rather than that this message is bad. Such a
 * failure must not dead-letter the message: the partition is given up and read again once the dependency is back.
 */
export function isUnavailable(error: unknown): boolean {
  for (let e = error, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    if (e instanceof UnavailableError) return true;
    const code = (e as Error & { code?: unknown }).code;
    if (typeof code !== "string") continue;
    if (UNAVAILABLE_CODES.has(code) || /^(08|57P0[123])/.test(code)) return true;
  }
  return false;
}

/**
 * Whether a turn failed for a reason outside its message, so that it must not be dead-lettered once its retries
 * run out (its partition is read again later instead): Postgres out of reach, or a row lock not granted in time
 * (55P03: another session holds the row, a frozen host's until Postgres ends it, which can outlast the retries).
 * Not the same as isUnavailable: a batch that failed on a lock wait is split, so that the turn waiting fails alone.
 */
export function isOutsideTheMessage(error: unknown): boolean {
  if (isUnavailable(error)) return true;
  for (let e = error, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++)
    if ((e as Error & { code?: unknown }).code === "55P03") return true;
  return false;
}
