import { describe, expect, test } from "bun:test";
import postgres from "postgres";
import { classifyError, FencedError, isOutsideTheMessage, isUnavailable } from "../../runtime/errors.ts";
import {
  acquireLease,
  checkLease,
  sessionName,
  splitByLease,
  TURN_LOCK_TIMEOUT_MS,
} from "../../runtime/fence.ts";
import { testLog, uniqueName } from "../support.ts";
import { config, database } from "./fixtures.ts";

/** Sessions named as host `host` names its own (application_name), which is how a take tells whose they are. */
const sessionsOf = (host: string, max = 1) =>
  postgres(config.postgres.url, {
    max,
    onnotice: () => {},
    connection: { application_name: sessionName(host) },
  });

describe("taking a partition", () => {
  test("a previous owner's transaction that never ends (a frozen host mid-statement) does not hold the take up: its session is ended", async () => {
    const lease = { groupId: uniqueName("fence"), topic: uniqueName("fence-topic"), partition: 0 };
    const first = await acquireLease(database.db, lease, "frozen-host");
    // The "frozen host", the partition's recorded owner: a session with no idle-in-transaction timeout whose turn
    // holds the lease row (share lock, as every turn does) and never commits.
    const zombie = sessionsOf("frozen-host");
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

  test("only the sessions holding the partition are ended: the previous owner's other transactions live on", async () => {
    const lease = { groupId: uniqueName("fence"), topic: uniqueName("fence-topic"), partition: 0 };
    const first = await acquireLease(database.db, lease, "slow-host");
    // Two sessions of the slow (live) previous owner: one holds this partition's lease row and does not finish,
    // the other has a transaction open just as long for some other work (another partition's turns).
    const host = sessionsOf("slow-host", 2);
    try {
      const holder = await host.reserve();
      const bystander = await host.reserve();
      await holder`begin`;
      await checkLease(holder as unknown as postgres.TransactionSql, first);
      await bystander`begin`;
      await bystander`select 1`;
      const taken = await acquireLease(database.db, lease, "live-host", testLog);
      expect(taken.epoch).toBe(first.epoch + 1);
      await expect(holder`select 1`).rejects.toThrow(); // ended
      expect([...(await bystander`select 2 as two`)]).toEqual([{ two: 2 }]); // still in its transaction
      await bystander`commit`;
      holder.release();
      bystander.release();
    } finally {
      await host.end({ timeout: 1 }).catch(() => {});
    }
  }, 30_000);

  test("a host taking back a partition it held waits for its own turn there and never ends it", async () => {
    const lease = { groupId: uniqueName("fence"), topic: uniqueName("fence-topic"), partition: 0 };
    const first = await acquireLease(database.db, lease, "same-host");
    const own = sessionsOf("same-host");
    try {
      const held = await own.reserve();
      await held`begin`;
      await checkLease(held as unknown as postgres.TransactionSql, first);
      let settled = false;
      // Its worker failed and it takes the partition again while a turn of the old worker is still running.
      const take = acquireLease(database.db, lease, "same-host", testLog).finally(() => {
        settled = true;
      });
      await Bun.sleep(2500); // past two BLOCKED_TAKE_MS checks: a take that ended stuck owners would have by now
      expect(settled).toBe(false);
      expect([...(await held`select 1 as one`)]).toEqual([{ one: 1 }]);
      await held`commit`;
      expect((await take).epoch).toBe(first.epoch + 1);
      held.release();
    } finally {
      await own.end({ timeout: 1 }).catch(() => {});
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

describe("a turn's transaction", () => {
  test("still carrying an older epoch locks no lease row: the next take is not held up by it, and nobody is ended", async () => {
    const lease = { groupId: uniqueName("fence"), topic: uniqueName("fence-topic"), partition: 0 };
    const old = await acquireLease(database.db, lease, "old-host");
    await acquireLease(database.db, lease, "middle-host"); // took it from old-host, which has not noticed yet
    // old-host's late turn: fenced, its transaction still open (its other turns of the batch go on).
    const late = sessionsOf("old-host");
    try {
      const held = await late.reserve();
      await held`begin`;
      await expect(checkLease(held as unknown as postgres.TransactionSql, old)).rejects.toBeInstanceOf(
        FencedError,
      );
      const [batchFenced] = (await splitByLease(held as unknown as postgres.TransactionSql, [{ lease: old }]))
        .fenced;
      expect(batchFenced?.[1]).toBeInstanceOf(FencedError);
      const started = Date.now();
      const taken = await acquireLease(database.db, lease, "live-host", testLog);
      // A share lock on the row would have made the take wait: old-host is not the recorded owner, so its
      // session is not ended, and the take would wait out its lock_timeout (10 s).
      expect(Date.now() - started).toBeLessThan(900);
      expect(taken.epoch).toBe(old.epoch + 2);
      expect([...(await held`select 1 as one`)]).toEqual([{ one: 1 }]); // not ended
      await held`rollback`;
      held.release();
    } finally {
      await late.end({ timeout: 1 }).catch(() => {});
    }
  }, 30_000);

  test("waiting for a row another session holds gives up after TURN_LOCK_TIMEOUT_MS: retryable, not the message's fault, and its lease row is free again", async () => {
    const lease = await acquireLease(
      database.db,
      { groupId: uniqueName("fence"), topic: uniqueName("fence-topic"), partition: 0 },
      "busy-host",
    );
    const other = { groupId: uniqueName("fence"), topic: uniqueName("fence-hot"), partition: 0 };
    await acquireLease(database.db, other, "someone");
    // A hot row (as a part's stock is) held by a session that does not let go: a frozen host's.
    const frozen = await database.sql.reserve();
    const turn = await database.sql.reserve();
    try {
      await frozen`begin`;
      await frozen`select 1 from partition_owner where group_id = ${other.groupId} for update`;
      await turn`begin`;
      await checkLease(turn as unknown as postgres.TransactionSql, lease);
      const started = Date.now();
      const error =
        await turn`select 1 from partition_owner where group_id = ${other.groupId} for update`.then(
          () => undefined,
          (e: unknown) => e,
        );
      const waitedMs = Date.now() - started;
      expect((error as { code?: string }).code).toBe("55P03");
      expect(waitedMs).toBeGreaterThanOrEqual(TURN_LOCK_TIMEOUT_MS - 100);
      expect(waitedMs).toBeLessThan(TURN_LOCK_TIMEOUT_MS + 2000);
      expect(classifyError(error).retryable).toBe(true);
      expect(isOutsideTheMessage(error)).toBe(true); // re-read later, never dead-lettered for it
      expect(isUnavailable(error)).toBe(false); // but Postgres is there: a batch failing on it is split
      await turn`rollback`;
      // Rolled back, it holds the lease row no more: a take goes through at once.
      const started2 = Date.now();
      await acquireLease(database.db, lease, "live-host", testLog);
      expect(Date.now() - started2).toBeLessThan(900);
    } finally {
      await frozen`rollback`.catch(() => {});
      frozen.release();
      turn.release();
    }
  }, 30_000);
});
