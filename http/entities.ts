/**
 * Reading the service center's entities for HTTP: Redis first (`booking:{id}`, `invoice:{id}`, kept by the
 * cache-sync reactor and by the routes after each command's answer), Postgres `actor_state` (the truth) when
 * Redis has nothing or is down. Writes to Redis keep the newest version only, so a late writer never rolls an
 * entry back. Authorization lives here too: a customer sees only entities whose `customerId` is theirs.
 */
import type postgres from "postgres";
import type { Logger, Redis } from "../runtime/index.ts";
import type { Principal } from "./auth.ts";
import { notFound } from "./errors.ts";

export type EntityKind = "booking" | "repair" | "invoice" | "job-saga";

interface Entity {
  customerId: string;
  status: string;
  version: number;
}

const CACHED: Partial<Record<EntityKind, string>> = { booking: "booking", invoice: "invoice" };
const CACHE_TTL_SECONDS = 7 * 24 * 3600;

// Sets KEYS[1] to ARGV[1] unless the stored JSON has a version >= ARGV[2].
const NEWER_WINS = `
local current = redis.call('GET', KEYS[1])
if current then
  local ok, decoded = pcall(cjson.decode, current)
  if ok and type(decoded) == 'table' and tonumber(decoded.version) and tonumber(decoded.version) >= tonumber(ARGV[2]) then
    return 0
  end
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[3])
return 1`;

export interface Entities {
  /** The entity if it exists and the principal may see it; 404 otherwise (someone else's looks absent). */
  read<S extends Entity>(kind: EntityKind, id: string, principal: Principal): Promise<S>;
  /** Entities of a kind belonging to a customer, newest first. */
  listOf<S>(kind: EntityKind, customerId: string | undefined, limit: number): Promise<S[]>;
  /** How many of the customer's bookings are not finished yet (pending, confirmed, in service, awaiting payment). */
  openBookings(customerId: string): Promise<number>;
  /** Records a state an actor just answered with (read-your-writes for the next GET). */
  remember(kind: EntityKind, id: string, state: { version: number }): Promise<void>;
}

export function createEntities(sql: postgres.Sql, redis: Redis, log: Logger): Entities {
  const fromPostgres = async <S>(kind: EntityKind, id: string) => {
    const [row] = await sql<
      { state: S }[]
    >`select state from actor_state where kind = ${kind} and actor_key = ${id}`;
    return row?.state;
  };
  const fromRedis = async <S>(kind: EntityKind, id: string): Promise<S | undefined> => {
    const prefix = CACHED[kind];
    if (!prefix || redis.status !== "ready") return undefined;
    try {
      const raw = await redis.get(`${prefix}:${id}`);
      return raw ? (JSON.parse(raw) as S) : undefined;
    } catch (error) {
      log.debug({ err: error, kind, id }, "redis read failed; reading Postgres");
      return undefined;
    }
  };
  return {
    async read<S extends Entity>(kind: EntityKind, id: string, principal: Principal) {
      const state = (await fromRedis<S>(kind, id)) ?? (await fromPostgres<S>(kind, id));
      const what = kind === "job-saga" ? `job ${id}` : `${kind} ${id}`;
      if (!state || state.status === "NEW" || state.status === "NONE") throw notFound(what);
      if (principal.role === "customer" && state.customerId !== principal.sub) throw notFound(what);
      return state;
    },
    async openBookings(customerId) {
      const [row] = await sql<{ n: number }[]>`
        select count(*)::int as n from actor_state
        where kind = 'booking' and (state->>'customerId') = ${customerId}
          and state->>'status' in ('PENDING', 'CONFIRMED', 'IN_SERVICE', 'AWAITING_PAYMENT')`;
      return row?.n ?? 0;
    },
    async listOf<S>(kind: EntityKind, customerId: string | undefined, limit: number) {
      const rows = customerId
        ? await sql<{ state: S }[]>`
            select state from actor_state
            where kind = ${kind} and (state->>'customerId') = ${customerId} and state->>'status' <> 'NEW'
            order by updated_at desc limit ${limit}`
        : await sql<{ state: S }[]>`
            select state from actor_state where kind = ${kind} and state->>'status' <> 'NEW'
            order by updated_at desc limit ${limit}`;
      return rows.map((r) => r.state);
    },
    async remember(kind, id, state) {
      const prefix = CACHED[kind];
      if (!prefix || redis.status !== "ready") return;
      await redis
        .eval(
          NEWER_WINS,
          1,
          `${prefix}:${id}`,
          JSON.stringify(state),
          String(state.version),
          String(CACHE_TTL_SECONDS),
        )
        .catch((error: unknown) => log.debug({ err: error, kind, id }, "redis write failed"));
    },
  };
}
