import { afterAll, describe, expect, test } from "bun:test";
import { openDatabase } from "../db/index.ts";
import { testConfig } from "../test/support.ts";
import { idempotently } from "./idempotency.ts";

const database = openDatabase(testConfig().postgres.url, { max: 2 });
afterAll(() => database.close());

/** One request through `idempotently` with Idempotency-Key `key`; `act` says what the actor would answer. */
async function request(key: string, act: () => Promise<{ status: number; body: unknown }>) {
  const set: { status?: number | string; headers: Record<string, string | number> } = { headers: {} };
  let ran = false;
  const body = await idempotently(
    database.sql,
    { sub: "idem-tester", role: "customer" },
    "POST /test",
    key,
    { same: "body" },
    set,
    async () => {
      ran = true;
      return act();
    },
  );
  return { status: set.status, body, ran, replayed: set.headers["idempotent-replayed"] === "true" };
}

describe("Idempotency-Key answers (real Postgres)", () => {
  test("a transient failure (5xx, or a failure without an answer) is not the key's answer: the retry runs again", async () => {
    const key = `k-${Bun.randomUUIDv7()}`;
    const first = await request(key, async () => ({ status: 503, body: { error: "later" } }));
    expect(first).toMatchObject({ status: 503, ran: true, replayed: false });
    const second = await request(key, async () => {
      throw new Error("Postgres away");
    }).catch((error: Error) => error);
    expect(second).toBeInstanceOf(Error);
    const third = await request(key, async () => ({ status: 201, body: { id: 1 } }));
    expect(third).toMatchObject({ status: 201, ran: true, replayed: false });
    // Now final: replayed, not run.
    const fourth = await request(key, async () => ({ status: 500, body: null }));
    expect(fourth).toMatchObject({ status: 201, body: { id: 1 }, ran: false, replayed: true });
  });

  test("a 202 (still deciding) is not stored either; a refusal (409, 402) is", async () => {
    const key = `k-${Bun.randomUUIDv7()}`;
    expect(await request(key, async () => ({ status: 202, body: {} }))).toMatchObject({
      status: 202,
      ran: true,
    });
    expect(await request(key, async () => ({ status: 402, body: { error: "declined" } }))).toMatchObject({
      status: 402,
      ran: true,
    });
    expect(await request(key, async () => ({ status: 200, body: {} }))).toMatchObject({
      status: 402,
      ran: false,
      replayed: true,
    });
  });
});
