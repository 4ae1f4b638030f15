import { afterAll, expect, test } from "bun:test";
import { openDatabase } from "../../db/index.ts";
import { createHost, type Host, listDeadLetters } from "../../runtime/index.ts";
import { tcpProxy, testLog, uniqueName, waitFor } from "../support.ts";
import {
  actorStates,
  config,
  database,
  freshTopics,
  kafka,
  type SequenceState,
  sendSteps,
  sequenceActor,
} from "./fixtures.ts";

const cleanups: (() => Promise<unknown>)[] = [];
afterAll(async () => {
  for (const cleanup of cleanups.reverse()) {
    const started = Date.now();
    await cleanup().catch(() => {});
    if (Date.now() - started > 1000) console.warn(`cleanup took ${Date.now() - started} ms: ${cleanup}`);
  }
}, 30_000);

test("a Postgres outage mid-stream dead-letters nothing: the partitions are re-read, the consumer stays in its group, every step applies once, in order", async () => {
  // The host reaches Postgres through a proxy we can cut; the test reads the real server directly.
  const real = new URL(config.postgres.url);
  const proxy = await tcpProxy({ host: real.hostname, port: Number(real.port || 5432) });
  cleanups.push(() => proxy.close());
  const viaProxy = new URL(config.postgres.url);
  viaProxy.hostname = "127.0.0.1";
  viaProxy.port = String(proxy.port);
  const hostDb = openDatabase(viaProxy.toString(), { max: 10, idleInTransactionTimeoutMs: 5000 });
  cleanups.push(() => hostDb.sql.end({ timeout: 1 }));

  const { mailbox } = await freshTopics("outage", 4);
  const kind = uniqueName("outage");
  const groupPrefix = uniqueName("g");
  const host: Host = createHost({
    kafka,
    database: hostDb,
    databaseUrl: viaProxy.toString(),
    log: testLog,
    groupPrefix,
    relay: false, // this actor emits nothing
    actors: [sequenceActor(kind, mailbox)], // 3 attempts, 50-200 ms apart: exhausted well inside the outage
    tuning: {
      commitIntervalMs: 100,
      sessionTimeoutMs: 6000,
      heartbeatIntervalMs: 500,
      drainTimeoutMs: 2000,
      // kafkajs gives up soon: any crash during the outage would show (none is expected: see below).
      consumerRetry: { retries: 1, initialRetryTime: 200, maxRetryTime: 400 },
    },
  });
  cleanups.push(() => host.stop());
  await host.start();
  const consumerStats = () => host.stats().consumers[`${groupPrefix}.actor.${kind}`];

  const keys = Array.from({ length: 100 }, (_, i) => `car-${i}`);
  await sendSteps(mailbox, keys, 5);
  await waitFor(async () => (await actorStates<SequenceState>(kind, keys)).size === keys.length, {
    timeoutMs: 30_000,
    what: "every key's first steps",
  });

  // Takes may already have failed before the cut (a new topic's leaders not yet elected): count from here.
  const takeFailuresBefore = consumerStats()?.takeFailures ?? 0;
  await proxy.cut();
  await sendSteps(mailbox, keys, 5, undefined, 6);
  // Turns fail, the workers give their partitions up, taking them again fails and is retried (paused
  // meanwhile) while Postgres stays out of reach; the consumer itself stays in its group.
  await waitFor(() => (consumerStats()?.takeFailures ?? 0) >= takeFailuresBefore + 2, {
    timeoutMs: 30_000,
    what: "takes of the given-up partitions to fail while Postgres is away",
  });
  const during = { ...consumerStats() };
  await proxy.restore();

  const states = await waitFor(
    async () => {
      const all = await actorStates<SequenceState>(kind, keys);
      return [...all.values()].every((s) => s.state.lastSeq === 10) ? all : undefined;
    },
    { timeoutMs: 60_000, what: "every key at step 10 after the outage" },
  );
  for (const { state } of states.values()) {
    expect(state.violations).toBe(0);
    expect(state.count).toBe(10);
  }
  expect(during.workerFailures).toBeGreaterThan(0);
  // A database outage is not the group's business: no crash, no restart, no rebalance forced on the others.
  expect(consumerStats()?.crashes).toBe(0);
  expect(consumerStats()?.restarts).toBe(0);
  expect(await listDeadLetters(database.db, { consumer: kind })).toEqual([]);
  expect(host.stats().actors[kind]?.deadLetters).toBe(0);
}, 120_000);
