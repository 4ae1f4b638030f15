import { afterAll, describe, expect, test } from "bun:test";
import { readdirSync } from "node:fs";
import { eq } from "drizzle-orm";
import { MIGRATIONS_FOLDER, migrateDatabase, openDatabase, schema } from "../db/index.ts";
import { testConfig, uniqueName } from "./support.ts";

const config = testConfig();
const database = openDatabase(config.postgres.url);
afterAll(() => database.close());

describe("Postgres through drizzle", () => {
  test("the test database is separate from the dev database", () => {
    expect(new URL(config.postgres.url).pathname).toBe("/pitstop_test");
    expect(new URL(testConfig({ NODE_ENV: "development" }).postgres.url).pathname).toBe("/pitstop");
  });

  test("every committed migration is applied, and applying again changes nothing", async () => {
    const files = readdirSync(MIGRATIONS_FOLDER).filter((f) => f.endsWith(".sql"));
    expect(files.length).toBeGreaterThan(0);
    expect(await migrateDatabase(config.postgres.url)).toEqual({ applied: files.length });
    const tables = await database.sql<{ name: string }[]>`
      select table_name as name from information_schema.tables where table_schema = 'public' order by 1`;
    expect(tables.map((t) => t.name)).toEqual(
      expect.arrayContaining(["actor_state", "inbox", "outbox", "partition_owner"]),
    );
  });

  test("a transaction that throws leaves nothing behind, and one that returns commits", async () => {
    const consumer = uniqueName("tx");
    const eventId = Bun.randomUUIDv7();
    const failing = database.db.transaction(async (tx) => {
      await tx.insert(schema.inbox).values({ consumer, eventId });
      const inside = await tx.select().from(schema.inbox).where(eq(schema.inbox.consumer, consumer));
      expect(inside).toHaveLength(1); // visible inside the transaction...
      throw new Error("boom");
    });
    await expect(failing).rejects.toThrow("boom");
    // ...and gone after the rollback.
    expect(await database.db.select().from(schema.inbox).where(eq(schema.inbox.consumer, consumer))).toEqual(
      [],
    );

    await database.db.transaction(async (tx) => {
      await tx.insert(schema.inbox).values({ consumer, eventId });
    });
    const rows = await database.db.select().from(schema.inbox).where(eq(schema.inbox.consumer, consumer));
    expect(rows.map((r) => r.eventId)).toEqual([eventId]);
  });

  test("the inbox refuses the same event id twice for one consumer", async () => {
    const consumer = uniqueName("dedupe");
    const eventId = Bun.randomUUIDv7();
    await database.db.insert(schema.inbox).values({ consumer, eventId });
    const second = await database.db
      .insert(schema.inbox)
      .values({ consumer, eventId })
      .then(() => undefined)
      .catch((error: { cause?: { code?: string } }) => error.cause?.code);
    expect(second).toBe("23505"); // unique_violation
  });
});
