/**
 * Opening Pitstop's Postgres: postgres.js for the connection pool, drizzle on top for typed queries.
 *
 * @example
 * const database = openDatabase(config.postgres.url);
 * await database.db.select().from(schema.outbox).limit(10);
 * await database.close();
 */
import { drizzle, type PostgresJsDatabase } from "drizzle-orm/postgres-js";
import postgres from "postgres";
import * as schema from "./schema.ts";

/** drizzle on the pool; `$client` is the postgres.js pool beneath it. */
export type Db = PostgresJsDatabase<typeof schema> & { $client: postgres.Sql };

export interface Database {
  sql: postgres.Sql;
  db: Db;
  close(): Promise<void>;
}

export interface DatabaseOptions {
  /** Pool size (postgres.js `max`). */
  max?: number;
  /** Seconds to wait for a connection before failing (postgres.js `connect_timeout`). */
  connectTimeout?: number;
  applicationName?: string;
  /**
   * Postgres ends a session left idle inside a transaction this long (ms), releasing its locks. A host frozen
   * mid-transaction (SIGSTOP, a long GC pause) would otherwise hold the partition's lease row and block the
   * host taking over. Default 10 s.
   */
  idleInTransactionTimeoutMs?: number;
}

/**
 * Note: drizzle replaces the client's serializers for json, jsonb and date/time types with pass-through ones, so
 * raw postgres.js statements on this client pass JSON as strings (`::jsonb`) and times as ISO strings.
 */
export function openDatabase(url: string, options: DatabaseOptions = {}): Database {
  const sql = postgres(url, connectionOptions(options));
  return { sql, db: drizzle(sql, { schema }), close: () => sql.end({ timeout: 5 }) };
}

/**
 * The options every Pitstop connection to Postgres is opened with (the pool above, the outbox publisher's own
 * session): a connect that fails soon, reconnects that back off briefly, sessions Postgres ends when left idle
 * inside a transaction.
 */
export function connectionOptions(options: DatabaseOptions = {}): postgres.Options<Record<string, never>> {
  return {
    max: options.max ?? 10,
    connect_timeout: options.connectTimeout ?? 5,
    // Seconds before reconnecting after a failed connect, by failures in a row. postgres.js' default grows to
    // 20 s, which leaves a host idle up to 20 s after Postgres is back; 2 s at most, with jitter.
    backoff: (retries: number) => (0.5 + Math.random() / 2) * Math.min(0.1 * 2 ** retries, 2),
    onnotice: () => {}, // "already exists, skipping" notices from idempotent DDL are not news
    connection: {
      application_name: options.applicationName ?? "pitstop",
      // A frozen (SIGSTOPped) host's transaction keeps its row locks until this ends its session; no transaction
      // of ours idles for more than milliseconds.
      idle_in_transaction_session_timeout: options.idleInTransactionTimeoutMs ?? 5_000,
    },
  };
}

/** Round trip to the server; throws when it cannot answer. */
export async function pingDatabase(sql: postgres.Sql): Promise<void> {
  await sql`select 1`;
}
