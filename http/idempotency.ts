/**
 * `Idempotency-Key` on POSTs that create or pay. The first request with a key runs; its answer is stored and
 * every later request with the same key (same principal, same route) gets that answer again, marked with
 * `Idempotent-Replayed: true`. A key reused for a different body is refused (422); a key whose first request is
 * still running answers 409 (retry shortly). The entity id (a booking's, a repair's) is derived from the key, and
 * the actors decide by entity: a copy of a create answers with the entity as it stands, paying a paid invoice
 * charges nothing (and the gateway gets the same key). So a request whose answer was never stored (a crash, a
 * 202) can be retried with its key and still acts once. Each attempt's command has an id of its own: with the
 * first attempt's id, the actor's inbox would drop the retry as a copy, and the retry would never be answered.
 */
import { createHash } from "node:crypto";
import type postgres from "postgres";
import type { Principal } from "./auth.ts";
import { HttpError, unprocessable } from "./errors.ts";

export interface StoredAnswer {
  status: number;
  body: unknown;
}

export interface IdempotentRun {
  /** The command's id (fresh per attempt) and the entity's (derived from the key; fresh without one). */
  messageId: string;
  entityId: string;
  /** A stored answer to replay instead of running. */
  replay?: StoredAnswer;
  /** Stores the answer (202s and 5xx are not stored: a retry should look again). */
  finish(answer: StoredAnswer): Promise<void>;
}

const KEY = /^[\x21-\x7e]{1,200}$/;
/**
 * A first request older than this that never stored its answer is taken over by a retry (it died, or is so late
 * that running again is safe: the actors decide by entity).
 */
const ABANDONED_AFTER_MS = 10_000;

/** A UUID-shaped digest (version nibble 5), stable for the same input. */
export function uuidFrom(...parts: string[]): string {
  const hex = createHash("sha256").update(parts.join("\u0000")).digest("hex");
  const variant = ((Number.parseInt(hex[16] as string, 16) & 0x3) | 0x8).toString(16);
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-5${hex.slice(13, 16)}-${variant}${hex.slice(17, 20)}-${hex.slice(20, 32)}`;
}

export async function beginIdempotent(
  sql: postgres.Sql,
  principal: Principal,
  route: string,
  key: string | undefined,
  requestBody: unknown,
): Promise<IdempotentRun> {
  if (key === undefined) {
    const id = Bun.randomUUIDv7();
    return { messageId: id, entityId: Bun.randomUUIDv7(), finish: async () => {} };
  }
  if (!KEY.test(key))
    throw unprocessable("Idempotency-Key must be 1-200 visible ASCII characters", "Idempotency-Key");
  const hash = createHash("sha256")
    .update(JSON.stringify(requestBody ?? null))
    .digest("hex");
  const ids = {
    messageId: Bun.randomUUIDv7(),
    entityId: uuidFrom("entity", principal.sub, route, key),
  };
  const finish = async (answer: StoredAnswer) => {
    // Only final answers are kept: a 202 (still deciding) or a 5xx (a transient failure) is forgotten, so a retry
    // with the key runs again (the actors decide by entity: it still acts once).
    if (answer.status === 202 || answer.status >= 500) {
      await sql`delete from idempotent_request where principal = ${principal.sub} and key = ${key} and route = ${route}`;
      return;
    }
    await sql`
      update idempotent_request set status_code = ${answer.status}, response = ${JSON.stringify(answer.body)}::jsonb
      where principal = ${principal.sub} and key = ${key} and route = ${route}`;
  };
  const [inserted] = await sql`
    insert into idempotent_request (principal, key, route, request_hash) values (${principal.sub}, ${key}, ${route}, ${hash})
    on conflict do nothing returning key`;
  if (inserted) return { ...ids, finish };
  const [row] = await sql<
    { request_hash: string; status_code: number | null; response: unknown; created_at: Date }[]
  >`
    select request_hash, status_code, response, created_at from idempotent_request
    where principal = ${principal.sub} and key = ${key} and route = ${route}`;
  if (!row) return beginIdempotent(sql, principal, route, key, requestBody); // deleted meanwhile (a 202): run
  if (row.request_hash !== hash) {
    throw unprocessable("this Idempotency-Key was used for a different request", "Idempotency-Key");
  }
  if (row.status_code !== null)
    return { ...ids, replay: { status: row.status_code, body: row.response }, finish };
  if (Date.now() - new Date(row.created_at).getTime() > ABANDONED_AFTER_MS) return { ...ids, finish };
  throw new HttpError(
    409,
    "in_progress",
    "a request with this Idempotency-Key is still running; retry shortly",
    {
      retryable: true,
    },
  );
}

/** The parts of Elysia's `set` a route's answer is written to. */
interface ResponseSet {
  status?: number | string;
  headers: Record<string, string | number>;
}

/**
 * Runs `act` at most once per Idempotency-Key (once per request without one) and writes the answer — its own,
 * or the stored answer of the first request with the key — to the response. Returns the body.
 */
export async function idempotently(
  sql: postgres.Sql,
  principal: Principal,
  route: string,
  key: string | undefined,
  requestBody: unknown,
  set: ResponseSet,
  act: (ids: { messageId: string; entityId: string }) => Promise<StoredAnswer>,
): Promise<unknown> {
  const run = await beginIdempotent(sql, principal, route, key, requestBody);
  if (run.replay) {
    set.status = run.replay.status;
    set.headers["idempotent-replayed"] = "true";
    return run.replay.body;
  }
  let answer: StoredAnswer;
  try {
    answer = await act(run);
  } catch (error) {
    // Failed without an answer (a dependency away): nothing is kept, a retry with the key runs again.
    await run.finish({ status: 500, body: null }).catch(() => {});
    throw error;
  }
  await run.finish(answer);
  set.status = answer.status;
  return answer.body;
}
