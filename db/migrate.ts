/**
 * Creates the database when it is missing and applies the committed drizzle-kit migrations, under an
 * advisory lock so that several processes starting at once migrate one after the other.
 */
import { join } from "node:path";
import { drizzle } from "drizzle-orm/postgres-js";
import { migrate } from "drizzle-orm/postgres-js/migrator";
import postgres from "postgres";

export const MIGRATIONS_FOLDER = join(import.meta.dir, "migrations");
const MIGRATION_LOCK = 7_150_001; // any constant, the same in every process

/** Creates the database named in `url` if the server does not have it (needs CREATEDB; trust auth has it). */
export async function ensureDatabase(url: string): Promise<{ created: boolean }> {
  const target = new URL(url);
  const name = decodeURIComponent(target.pathname.replace(/^\//, ""));
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) throw new Error(`unsupported database name "${name}"`);
  const maintenance = new URL(url);
  maintenance.pathname = "/postgres";
  const sql = postgres(maintenance.toString(), { max: 1, connect_timeout: 5, onnotice: () => {} });
  try {
    const rows = await sql`select 1 from pg_database where datname = ${name}`;
    if (rows.length > 0) return { created: false };
    try {
      await sql.unsafe(`create database "${name}"`);
      return { created: true };
    } catch (error) {
      // 42P04 duplicate_database: another process created it between our check and our create.
      if ((error as { code?: string }).code === "42P04") return { created: false };
      throw error;
    }
  } finally {
    await sql.end({ timeout: 5 });
  }
}

/** Applies every migration not yet applied; returns how many the database has in all. */
export async function migrateDatabase(url: string): Promise<{ applied: number }> {
  const sql = postgres(url, { max: 1, connect_timeout: 5, onnotice: () => {} });
  try {
    await sql`select pg_advisory_lock(${MIGRATION_LOCK})`;
    try {
      await migrate(drizzle(sql), { migrationsFolder: MIGRATIONS_FOLDER });
    } finally {
      await sql`select pg_advisory_unlock(${MIGRATION_LOCK})`;
    }
    const [row] = await sql<{ n: number }[]>`select count(*)::int as n from drizzle.__drizzle_migrations`;
    return { applied: row?.n ?? 0 };
  } finally {
    await sql.end({ timeout: 5 });
  }
}
