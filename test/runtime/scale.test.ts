import { afterAll, describe, expect, test } from "bun:test";
import { acquireLease, releaseLease } from "../../runtime/fence.ts";
import { type Host, partitionOf, pausePartition, resumePartition } from "../../runtime/index.ts";
import { uniqueName, waitFor } from "../support.ts";
import {
  actorStates,
  database,
  freshTopics,
  kafka,
  killChildren,
  type SequenceState,
  sendSteps,
  sequenceActor,
  spawnHost,
  stoppedStats,
  testHost,
} from "./fixtures.ts";

const hosts: Host[] = [];
afterAll(async () => {
  killChildren();
  await Promise.all(hosts.map((h) => h.stop()));
});

async function applied(kind: string) {
  let n = 0;
  for (const v of (await actorStates<SequenceState>(kind)).values()) n += v.state.count;
  return n;
}

async function expectExactlyOnceInOrder(kind: string, keys: string[], perKey: number) {
  const states = await actorStates<SequenceState>(kind);
  for (const key of keys) {
    expect(states.get(key)?.state).toEqual({ lastSeq: perKey, count: perKey, violations: 0, failures: 0 });
  }
}

describe("hosts joining, leaving and pausing", () => {
  test("a second host joins and leaves mid-stream: no loss, order kept, revoked partitions drained", async () => {
    const { mailbox } = await freshTopics("rebalance");
    const kind = uniqueName("rebalance");
    const groupPrefix = uniqueName("g");
    // A small backlog bound, so A pauses partitions for backpressure and then loses and regains some of them.
    const a = testHost({
      actors: [sequenceActor(kind, mailbox)],
      groupPrefix,
      hostId: "host-a",
      tuning: {
        commitIntervalMs: 100,
        sessionTimeoutMs: 6000,
        heartbeatIntervalMs: 500,
        drainTimeoutMs: 5000,
        maxBufferedPerPartition: 100,
      },
    });
    hosts.push(a);
    await a.start();
    const keys = Array.from({ length: 300 }, (_, i) => `r${i}`);
    const perKey = 60;
    // 60 steps of 100 ms per key: at least 6 s of work per key, so B joins while most of it is still ahead.
    await sendSteps(mailbox, keys, perKey, () => ({ delayMs: 100 }));
    await waitFor(async () => (await applied(kind)) >= 900, { timeoutMs: 60_000, what: "a twentieth done" });

    const b = await spawnHost({
      TEST_MAILBOX: mailbox,
      TEST_KIND: kind,
      TEST_GROUP_PREFIX: groupPrefix,
      TEST_HOST_ID: "host-b",
    });
    // B takes part of the partitions: A gives them up (drains), B handles records.
    await waitFor(() => (a.stats().consumers[`${groupPrefix}.actor.${kind}`]?.revoked ?? 0) > 0, {
      timeoutMs: 30_000,
      what: "A revoking partitions for B",
    });
    await waitFor(async () => ((await b.stats()).actors[kind]?.turns ?? 0) > 0, {
      timeoutMs: 30_000,
      intervalMs: 200,
      what: "B handling turns",
    });
    b.child.kill("SIGTERM"); // leaves: drains, commits, and its partitions come back to A
    await b.child.exited;
    const bStats = await stoppedStats(b.output);

    await waitFor(async () => (await applied(kind)) >= keys.length * perKey, {
      timeoutMs: 90_000,
      what: "all done",
    });
    await expectExactlyOnceInOrder(kind, keys, perKey);
    const aConsumer = a.stats().consumers[`${groupPrefix}.actor.${kind}`];
    console.log(
      `[rebalance] A: ${aConsumer?.rebalances} rebalances, ${aConsumer?.revoked} partitions revoked, ` +
        `${aConsumer?.drainTimeouts} drain timeouts; B handled ${bStats.actors[kind]?.turns} turns`,
    );
    expect(bStats.actors[kind]?.turns).toBeGreaterThan(0);
    expect(aConsumer?.drainTimeouts).toBe(0);
    expect(bStats.consumers[`${groupPrefix}.actor.${kind}`]?.drainTimeouts).toBe(0);
  }, 180_000);

  test("a host killed and started again under its instance id serves at once: the members its killed incarnation left are removed, not waited out", async () => {
    const { mailbox } = await freshTopics("restart");
    const kind = uniqueName("restart");
    const groupPrefix = uniqueName("g");
    const env = { TEST_MAILBOX: mailbox, TEST_KIND: kind, TEST_GROUP_PREFIX: groupPrefix };
    const keys = Array.from({ length: 100 }, (_, i) => `k${i}`);
    const steady = testHost({ actors: [sequenceActor(kind, mailbox)], groupPrefix, hostId: "steady" });
    hosts.push(steady);
    await steady.start();
    const first = await spawnHost({ ...env, TEST_HOST_ID: "slot-1.a", TEST_INSTANCE_ID: "slot-1" });
    await sendSteps(mailbox, keys, 5, () => ({ delayMs: 20 }));
    await waitFor(async () => ((await first.stats()).actors[kind]?.turns ?? 0) > 0, {
      timeoutMs: 30_000,
      intervalMs: 200,
      what: "the first incarnation handling turns",
    });

    // SIGKILL: no LeaveGroup. Its members stay in the group for their session (6 s), and a join waits for them.
    first.child.kill("SIGKILL");
    await first.child.exited;
    const restartedAt = Date.now();
    const second = await spawnHost({ ...env, TEST_HOST_ID: "slot-1.b", TEST_INSTANCE_ID: "slot-1" });
    const readyMs = Date.now() - restartedAt; // "ready": started, its group joined
    await sendSteps(mailbox, keys, 5, () => ({ delayMs: 20 }), 6);
    await waitFor(async () => (await applied(kind)) >= keys.length * 10, {
      timeoutMs: 60_000,
      what: "every step after the restart",
    });
    await expectExactlyOnceInOrder(kind, keys, 10);
    const stats = (await second.stats()).consumers[`${groupPrefix}.actor.${kind}`];
    console.log(`[restart] ready ${readyMs} ms after the kill; ${stats?.evictedMembers} member(s) removed`);
    expect(stats?.evictedMembers).toBe(1);
    // Waiting out the dead member's session would take the whole 6 s (the kill came just before the start).
    expect(readyMs).toBeLessThan(4500);
  }, 120_000);

  test("a host paused past its session (SIGSTOP) cannot commit stale work after another took over: its writes are fenced and counted", async () => {
    const { mailbox } = await freshTopics("zombie");
    const kind = uniqueName("zombie");
    const groupPrefix = uniqueName("g");
    const env = { TEST_MAILBOX: mailbox, TEST_KIND: kind, TEST_GROUP_PREFIX: groupPrefix };
    const keys = Array.from({ length: 200 }, (_, i) => `z${i}`);
    const perKey = 6;
    const zombie = await spawnHost({ ...env, TEST_HOST_ID: "zombie" });
    // Slow turns, so that many are in flight (inside the handler, before their commit) when the host freezes.
    await sendSteps(mailbox, keys, perKey, () => ({ delayMs: 400 }));
    await waitFor(async () => (await applied(kind)) >= 200, {
      timeoutMs: 60_000,
      what: "the zombie at work",
    });
    zombie.child.kill("SIGSTOP");
    const frozenAt = await applied(kind);

    // Another host takes over once the zombie's session (6 s) expires, and finishes everything.
    const successor = testHost({ actors: [sequenceActor(kind, mailbox)], groupPrefix, hostId: "successor" });
    hosts.push(successor);
    await successor.start();
    await waitFor(async () => (await applied(kind)) >= keys.length * perKey, {
      timeoutMs: 120_000,
      what: "the successor finishing",
    });
    await expectExactlyOnceInOrder(kind, keys, perKey);

    // The zombie wakes up: its in-flight turns try to commit and are refused.
    zombie.child.kill("SIGCONT");
    await waitFor(async () => ((await zombie.stats()).actors[kind]?.fenced ?? 0) > 0, {
      timeoutMs: 20_000,
      intervalMs: 250,
      what: "the zombie's stale turns refused",
    });
    zombie.child.kill("SIGTERM");
    await zombie.child.exited;
    const zombieStats = await stoppedStats(zombie.output);
    console.log(
      `[zombie] froze at ${frozenAt} applied; on waking ${zombieStats.actors[kind]?.fenced} stale turns fenced`,
    );
    expect(zombieStats.actors[kind]?.fenced).toBeGreaterThan(0);
    // Nothing the zombie did after waking changed the outcome.
    await expectExactlyOnceInOrder(kind, keys, perKey);
  }, 180_000);

  test("a host frozen past its session wakes up, rejoins and gets partitions back while records keep coming: nothing lost, nothing twice, order kept", async () => {
    const { mailbox } = await freshTopics("rejoin");
    const kind = uniqueName("rejoin");
    const groupPrefix = uniqueName("g");
    const env = { TEST_MAILBOX: mailbox, TEST_KIND: kind, TEST_GROUP_PREFIX: groupPrefix };
    const keys = Array.from({ length: 100 }, (_, i) => `w${i}`);
    const waves = 60;
    const a = await spawnHost({ ...env, TEST_HOST_ID: "frozen" });
    const b = await spawnHost({ ...env, TEST_HOST_ID: "steady" });
    // One step per key every 250 ms for 15 s, turns of 30 ms: records are fetched and in flight on both hosts
    // when A freezes, keep arriving while B owns everything, and while A wakes, rejoins and takes some back.
    const sending = (async () => {
      for (let seq = 1; seq <= waves; seq++) {
        await sendSteps(mailbox, keys, 1, () => ({ delayMs: 30 }), seq);
        await Bun.sleep(250);
      }
    })();
    await waitFor(async () => (await applied(kind)) >= 500, {
      timeoutMs: 60_000,
      what: "both hosts at work",
    });
    a.child.kill("SIGSTOP");
    // Past A's 6 s session the group gives B every partition, and B takes their leases (epochs bumped).
    await waitFor(
      async () => (await b.stats()).consumers[`${groupPrefix}.actor.${kind}`]?.partitions.length === 10,
      { timeoutMs: 30_000, intervalMs: 500, what: "the steady host owning every partition" },
    );
    a.child.kill("SIGCONT");
    await sending;
    await waitFor(
      async () => {
        const states = await actorStates<SequenceState>(kind);
        return keys.every((key) => states.get(key)?.state.lastSeq === waves);
      },
      { timeoutMs: 120_000, intervalMs: 500, what: "every key at its last step" },
    );
    const aStats = await a.stats();
    const bStats = await b.stats();
    console.log(
      `[rejoin] frozen host: ${aStats.actors[kind]?.turns} turns, ${aStats.actors[kind]?.fenced} fenced; ` +
        `steady host: ${bStats.actors[kind]?.turns} turns, ${bStats.actors[kind]?.fenced} fenced`,
    );
    await expectExactlyOnceInOrder(kind, keys, waves);
    // And the group's committed offsets reach the end of every partition (nothing left behind or skipped).
    const admin = kafka.admin();
    await admin.connect();
    try {
      await waitFor(
        async () => {
          const ends = await admin.fetchTopicOffsets(mailbox);
          const [committed] = await admin.fetchOffsets({
            groupId: `${groupPrefix}.actor.${kind}`,
            topics: [mailbox],
          });
          return ends.every(
            (e) => committed?.partitions.find((c) => c.partition === e.partition)?.offset === e.high,
          );
        },
        { timeoutMs: 30_000, intervalMs: 250, what: "committed offsets at the end of every partition" },
      );
    } finally {
      await admin.disconnect();
    }
  }, 240_000);

  test("a partition a stale member took from its owner is served again as soon as the taker releases it, not a session timeout later", async () => {
    // A member whose join is slow can take a partition under an assignment already superseded: its owner's turns
    // are fenced. The test plays that member: it takes the lease, then releases it as a revoke does.
    const { mailbox } = await freshTopics("stale-take", 1);
    const kind = uniqueName("stale");
    const groupPrefix = uniqueName("g");
    const sessionTimeoutMs = 10_000;
    const host = testHost({
      actors: [sequenceActor(kind, mailbox)],
      groupPrefix,
      tuning: { commitIntervalMs: 100, sessionTimeoutMs, heartbeatIntervalMs: 500, drainTimeoutMs: 2000 },
    });
    hosts.push(host);
    await host.start();
    const groupId = `${groupPrefix}.actor.${kind}`;
    const keys = ["s1", "s2", "s3", "s4"];
    await sendSteps(mailbox, keys, 5);
    await waitFor(async () => (await applied(kind)) === 20, { timeoutMs: 30_000, what: "the first steps" });

    const stale = await acquireLease(database.db, { groupId, topic: mailbox, partition: 0 }, "stale-member");
    await sendSteps(mailbox, keys, 5, undefined, 6);
    await waitFor(() => (host.stats().consumers[groupId]?.fencedPartitions ?? 0) > 0, {
      timeoutMs: 30_000,
      intervalMs: 50,
      what: "the owner's turn fenced",
    });
    await Bun.sleep(1000);
    expect(await applied(kind)).toBe(20); // fenced: nothing of the owner's committed meanwhile

    expect(await releaseLease(database.db, stale)).toBe(true);
    const released = Date.now();
    await waitFor(async () => (await applied(kind)) === 40, {
      timeoutMs: 30_000,
      intervalMs: 50,
      what: "the owner going on",
    });
    const resumedInMs = Date.now() - released;
    console.log(`owner went on ${resumedInMs} ms after the release (session timeout ${sessionTimeoutMs} ms)`);
    expect(resumedInMs).toBeLessThan(sessionTimeoutMs / 2);
    await expectExactlyOnceInOrder(kind, keys, 10);
  }, 120_000);

  test("an operator's pause of a partition holds across a rebalance and a change of owner until resumed: then its records run, in order, once", async () => {
    const partitions = 4;
    const { mailbox } = await freshTopics("paused", partitions);
    const kind = uniqueName("paused");
    const groupPrefix = uniqueName("g");
    const target = { groupId: `${groupPrefix}.actor.${kind}`, topic: mailbox, partition: 1 };
    await pausePartition(database.sql, target, "test", "held across rebalances");
    const tuning = {
      pausePollIntervalMs: 200,
      commitIntervalMs: 100,
      sessionTimeoutMs: 6000,
      heartbeatIntervalMs: 500,
    };
    const a = testHost({ actors: [sequenceActor(kind, mailbox)], groupPrefix, hostId: "pause-a", tuning });
    hosts.push(a);
    await a.start();
    const keys = Array.from({ length: 40 }, (_, i) => `p${i}`);
    const held = keys.filter((k) => partitionOf(k, partitions) === target.partition);
    const free = keys.filter((k) => partitionOf(k, partitions) !== target.partition);
    expect(held.length).toBeGreaterThan(0);
    await sendSteps(mailbox, keys, 5);
    const counts = async () => {
      const states = await actorStates<SequenceState>(kind);
      const of = (ks: string[]) => ks.reduce((n, k) => n + (states.get(k)?.state.count ?? 0), 0);
      return { held: of(held), free: of(free) };
    };
    await waitFor(async () => (await counts()).free === free.length * 5, {
      timeoutMs: 30_000,
      what: "the free partitions done",
    });
    expect((await counts()).held).toBe(0);

    // A second host joins (a rebalance), then the first leaves: the paused partition changes owner, still held.
    const b = testHost({ actors: [sequenceActor(kind, mailbox)], groupPrefix, hostId: "pause-b", tuning });
    hosts.push(b);
    await b.start();
    await waitFor(() => (b.stats().consumers[target.groupId]?.partitions.length ?? 0) > 0, {
      timeoutMs: 30_000,
      what: "B taking partitions",
    });
    await a.stop();
    await waitFor(() => b.stats().consumers[target.groupId]?.partitions.length === partitions, {
      timeoutMs: 30_000,
      what: "B owning every partition",
    });
    const owned = b
      .stats()
      .consumers[target.groupId]?.partitions.find((p) => p.partition === target.partition);
    expect(owned?.held).toBe(true);
    await Bun.sleep(1000); // held means held: a second on the new owner, nothing of it ran
    expect((await counts()).held).toBe(0);

    expect(await resumePartition(database.sql, target)).toBe(true);
    await waitFor(async () => (await counts()).held === held.length * 5, {
      timeoutMs: 30_000,
      what: "the resumed partition done",
    });
    await expectExactlyOnceInOrder(kind, keys, 5);
  }, 120_000);
});
