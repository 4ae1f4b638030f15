import { describe, expect, test } from "bun:test";
import postgres from "postgres";
import { acquireLease, checkLease, sessionName } from "../../runtime/fence.ts";
import { testLog, uniqueName } from "../support.ts";
import { config, database } from "./fixtures.ts";

describe("taking a partition", () => {
  test("a previous owner's transaction that never ends (a frozen host mid-statement) does not hold the take up: its session is ended", async () => {
    const lease = { groupId: uniqueName("fence"), topic: uniqueName("fence-topic"), partition: 0 };
    const first = await acquireLease(database.db, lease, "frozen-host");
    // The "frozen host", the partition's recorded owner: a session with no idle-in-transaction timeout whose turn
    // holds the lease row (share lock, as every turn does) and never commits.
    const zombie = postgres(config.postgres.url, {
      max: 1,
      onnotice: () => {},
      connection: { application_name: sessionName("frozen-host") }, // as a host names its sessions
    });
    try {
      const held = await zombie.reserve();
      await held`begin`;
      await checkLease(held as unknown as postgres.TransactionSql, first);
      const started = Date.now();
      const taken = await acquireLease(database.db, lease, "live-host", testLog);
      const tookMs = Date.now() - started;
      console.log(`taken in ${tookMs} ms past a transaction that never ends`);
      expect(taken.epoch).toBe(first.epoch + 1);
      expect(tookMs).toBeLessThan(5000);
      // The zombie's transaction is gone with its session: it cannot commit anything under the old epoch.
      await expect(held`select 1`).rejects.toThrow();
      held.release();
    } finally {
      await zombie.end({ timeout: 1 }).catch(() => {});
    }
  }, 30_000);

  test("a previous owner's turn that ends soon is waited for, not ended", async () => {
    const lease = { groupId: uniqueName("fence"), topic: uniqueName("fence-topic"), partition: 0 };
    const first = await acquireLease(database.db, lease, "slow-host");
    const held = await database.sql.reserve();
    try {
      await held`begin`;
      await checkLease(held as unknown as postgres.TransactionSql, first);
      const take = acquireLease(database.db, lease, "live-host", testLog);
      await Bun.sleep(500);
      await held`commit`; // the turn ends by itself, well inside the wait
      const taken = await take;
      expect(taken.epoch).toBe(first.epoch + 1);
      expect([...(await held`select 1 as one`)]).toEqual([{ one: 1 }]); // its session lives on
    } finally {
      held.release();
    }
  }, 30_000);
});
