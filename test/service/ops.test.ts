/**
 * The ops views and controls on the real service, through HTTP and through `npm run ops`: which process owns
 * which partition with its lag, one actor's state, position and parking, stuck work; pausing a partition (lag
 * rises and stays, then falls once resumed), parking an actor, skipping its held letter; every operation
 * audited; admin only.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { waitFor } from "../support.ts";
import { type Service, slotTime, startService } from "./fixtures.ts";

let service: Service;
let admin: string;
beforeAll(async () => {
  service = await startService();
  admin = await service.token("admin", "ops-test");
}, 120_000);
afterAll(() => service?.stop());

const root = join(import.meta.dir, "..", "..");
async function cli(...args: string[]) {
  const run = Bun.spawn([process.execPath, "scripts/ops.ts", ...args], {
    cwd: root,
    stdout: "pipe",
    stderr: "pipe",
    env: { ...process.env, PITSTOP_TOKEN: "" },
  });
  const [out, err, code] = await Promise.all([
    new Response(run.stdout).text(),
    new Response(run.stderr).text(),
    run.exited,
  ]);
  return { out, err, code };
}

describe("ops views", () => {
  test("groups: every partition of every group with its owner, epoch, offsets and lag; admin only", async () => {
    const customer = await service.token("customer", `ops-${Bun.randomUUIDv7()}`);
    expect((await service.call("GET", "/api/v1/ops/groups", { token: customer })).status).toBe(403);
    const answer = await service.call("GET", "/api/v1/ops/groups", { token: admin });
    expect(answer.status).toBe(200);
    const reactors = answer.body.find(
      (g: { groupId: string }) => g.groupId === `pitstop-${service.namespace}.reactors`,
    );
    expect(reactors.members).toBe(1);
    expect(reactors.partitions.length).toBe(3 * 5); // 5 event topics of 3 partitions
    for (const p of reactors.partitions) {
      expect(p.owner).toContain(`:${process.pid}:`); // this test process's host holds every lease
      expect(p.epoch).toBeGreaterThanOrEqual(1);
      expect(p.lag).toBeGreaterThanOrEqual(0);
      expect(BigInt(p.end)).toBeGreaterThanOrEqual(0n);
    }
    const one = await service.call(
      "GET",
      `/api/v1/ops/groups?group=${encodeURIComponent(reactors.groupId)}`,
      { token: admin },
    );
    expect(one.body.map((g: { groupId: string }) => g.groupId)).toEqual([reactors.groupId]);

    const printed = await cli("groups", "--url", service.baseUrl, "--group", reactors.groupId);
    expect(printed.code).toBe(0);
    expect(printed.out).toContain(`${reactors.groupId}  Stable, 1 member(s)`);
    expect(printed.out).toContain(`${service.namespace}.booking-events[0]  owner `);
  }, 60_000);

  test("actor: a booking's state, version, position and parking; 404 for none; admin only", async () => {
    const customer = await service.token("customer", `ops-${Bun.randomUUIDv7()}`);
    const booked = await service.call("POST", "/api/v1/bookings", {
      token: customer,
      body: { vehicleId: "v-ops", serviceType: "INSPECTION", bookingDate: slotTime(6100) },
    });
    expect(booked.status).toBe(201);
    const { bookingId } = booked.body;
    const path = `/api/v1/ops/actors/booking/${bookingId}`;
    expect((await service.call("GET", path, { token: customer })).status).toBe(403);
    const view = await service.call("GET", path, { token: admin });
    expect(view.status).toBe(200);
    expect(view.body).toMatchObject({ kind: "booking", key: bookingId, parked: false, parkedAt: null });
    expect(view.body.state.status).toBe("CONFIRMED");
    expect(view.body.version).toBeGreaterThanOrEqual(2);
    expect(view.body.lastOffset).not.toBeNull();
    expect(view.body.deadLetters).toEqual([]);
    const none = await service.call("GET", "/api/v1/ops/actors/booking/no-such-booking", { token: admin });
    expect(none.status).toBe(404);
    expect(none.body.error.code).toBe("not_found");

    const printed = await cli("actor", "booking", bookingId, "--url", service.baseUrl);
    expect(printed.code).toBe(0);
    expect(JSON.parse(printed.out)).toMatchObject({
      kind: "booking",
      key: bookingId,
      state: { status: "CONFIRMED" },
    });
    const missing = await cli("actor", "booking", "no-such-booking", "--url", service.baseUrl);
    expect(missing.code).toBe(1);
    expect(missing.err).toContain("404 not_found");
    const bad = await cli("actor", "booking");
    expect(bad.code).toBe(2);
    expect(bad.err).toContain("usage");
  }, 60_000);

  test("hosts: this process with its role, version, partitions per group with lag; admin only", async () => {
    const customer = await service.token("customer", `ops-${Bun.randomUUIDv7()}`);
    expect((await service.call("GET", "/api/v1/ops/hosts", { token: customer })).status).toBe(403);
    // A process reports every few seconds: wait for a report written after its groups took their partitions.
    const answer = await waitFor(
      async () => {
        const got = await service.call("GET", "/api/v1/ops/hosts", { token: admin });
        const reactors = got.body[0]?.groups.find((g: { groupId: string }) =>
          g.groupId.endsWith(".reactors"),
        );
        return reactors?.partitions.length === 15 ? got : undefined;
      },
      { what: "a report with the reactors' 15 partitions", timeoutMs: 20_000 },
    );
    expect(answer.status).toBe(200);
    expect(answer.body.length).toBe(1); // only this namespace's processes
    const [host] = answer.body;
    expect(host).toMatchObject({ role: "http,actors,reactors", version: "0.1.0", up: true });
    expect(host.hostId).toContain(`:${process.pid}:`);
    const reactors = host.groups.find((g: { groupId: string }) => g.groupId.endsWith(".reactors"));
    for (const p of reactors.partitions) expect(p.lag).toBeGreaterThanOrEqual(0);

    const printed = await cli("hosts", "--url", service.baseUrl);
    expect(printed.code).toBe(0);
    expect(printed.out).toContain(`${host.hostId}  up http,actors,reactors v0.1.0`);
    expect(printed.out).toContain(`  pitstop-${service.namespace}.reactors  15 partition(s), lag `);
  }, 60_000);

  test("a paused partition takes nothing new: its lag rises and stays, the host holds it; resumed, it drains", async () => {
    const group = `pitstop-${service.namespace}.reactors`;
    const topic = `${service.namespace}.booking-events`;
    const groupOf = async () =>
      (await service.call("GET", `/api/v1/ops/groups?group=${encodeURIComponent(group)}`, { token: admin }))
        .body[0];
    const lagOf = async () =>
      (await groupOf()).partitions
        .filter((p: { topic: string }) => p.topic === topic)
        .reduce((n: number, p: { lag: number }) => n + p.lag, 0);
    await waitFor(async () => (await lagOf()) === 0, { what: "booking events caught up before pausing" });

    const missing = await service.call("POST", "/api/v1/ops/partitions/pause", {
      token: admin,
      body: { group, topic, partition: 7 },
    });
    expect(missing.status).toBe(404);
    for (const partition of [0, 1]) {
      const paused = await service.call("POST", "/api/v1/ops/partitions/pause", {
        token: admin,
        body: { group, topic, partition, reason: "ops test" },
      });
      expect(paused.status).toBe(200);
      expect(paused.body).toEqual({ groupId: group, topic, partition, paused: true, changed: true });
    }
    // The third through the CLI.
    const printed = await cli("pause", group, topic, "2", "--reason", "ops test", "--url", service.baseUrl);
    expect(printed.code).toBe(0);
    expect(JSON.parse(printed.out)).toMatchObject({ paused: true, changed: true });
    const view = await groupOf();
    for (const p of view.partitions.filter((x: { topic: string }) => x.topic === topic))
      expect(p).toMatchObject({ paused: true, pauseReason: "ops test" });
    // The host reads pauses every second: once it holds all three, nothing of booking-events starts.
    await waitFor(
      async () => {
        const [host] = (await service.call("GET", "/api/v1/ops/hosts", { token: admin })).body;
        const held = host?.groups
          .find((g: { groupId: string }) => g.groupId === group)
          ?.partitions.filter((p: { topic: string; held: boolean }) => p.topic === topic && p.held);
        return held?.length === 3;
      },
      { what: "the host to report the three partitions held", timeoutMs: 20_000 },
    );

    const customer = await service.token("customer", `ops-${Bun.randomUUIDv7()}`);
    for (let i = 0; i < 3; i++) {
      const booked = await service.call("POST", "/api/v1/bookings", {
        token: customer,
        body: { vehicleId: `v-pause-${i}`, serviceType: "INSPECTION", bookingDate: slotTime(6200 + i) },
      });
      expect(booked.status).toBe(201); // the booking actor is not paused: only the reactors' reading is
    }
    await waitFor(async () => (await lagOf()) >= 3, { what: "lag to rise while paused" });
    await Bun.sleep(2000); // paused means paused: two seconds on, the lag has not gone down
    expect(await lagOf()).toBeGreaterThanOrEqual(3);

    for (const partition of [0, 1, 2]) {
      const resumed = await service.call("POST", "/api/v1/ops/partitions/resume", {
        token: admin,
        body: { group, topic, partition },
      });
      expect(resumed.body).toEqual({ groupId: group, topic, partition, paused: false, changed: true });
    }
    await waitFor(async () => (await lagOf()) === 0, {
      what: "lag to fall to 0 once resumed",
      timeoutMs: 30_000,
    });
    expect((await groupOf()).partitions.some((p: { paused: boolean }) => p.paused)).toBe(false);

    const audit = await service.call("GET", "/api/v1/ops/audit?action=partition.pause", { token: admin });
    expect(audit.body.length).toBeGreaterThanOrEqual(4);
    expect(audit.body[0]).toMatchObject({
      who: "admin:ops-cli",
      action: "partition.pause",
      target: { group, topic, partition: 2 },
    });
    expect(
      audit.body.find((a: { target: { partition: number } }) => a.target.partition === 7).outcome,
    ).toMatchObject({
      refused: "not_found",
    });
  }, 90_000);

  test("park holds an actor's next command as a parked letter; skip discards it (kept, with who and why); unpark lets later ones through", async () => {
    const customer = await service.token("customer", `ops-${Bun.randomUUIDv7()}`);
    const booked = await service.call("POST", "/api/v1/bookings", {
      token: customer,
      body: { vehicleId: "v-park", serviceType: "INSPECTION", bookingDate: slotTime(6300) },
    });
    expect(booked.status).toBe(201);
    const { bookingId } = booked.body;
    const actor = `/api/v1/ops/actors/booking/${bookingId}`;
    // The actor is in memory (it just confirmed): the park must reach it anyway.
    const parked = await service.call("POST", `${actor}/park`, {
      token: admin,
      body: { reason: "ops test" },
    });
    expect(parked.body).toEqual({ kind: "booking", key: bookingId, parked: true, changed: true });
    expect((await service.call("POST", `${actor}/park`, { token: admin, body: {} })).body.changed).toBe(
      false,
    );
    expect(
      (await service.call("POST", "/api/v1/ops/actors/booking/nobody/park", { token: admin, body: {} }))
        .status,
    ).toBe(404);
    expect(
      (await service.call("POST", `/api/v1/ops/actors/no-kind/${bookingId}/park`, { token: admin, body: {} }))
        .status,
    ).toBe(404);

    const cancel = () =>
      service.call("POST", `/api/v1/bookings/${bookingId}/cancel`, {
        token: customer,
        body: { reason: "changed my mind" },
      });
    const first = await cancel();
    // Held: the runtime answers the ask with the dead letter's reason (an operator can replay it).
    expect(first.status).toBe(503);
    expect(first.body.error).toMatchObject({ code: "command_failed", retryable: true });
    expect(first.body.error.message).toContain("is parked");
    const held = await waitFor(
      async () => {
        const view = await service.call("GET", actor, { token: admin });
        return view.body.deadLetters.find((l: { status: string }) => l.status === "parked") && view.body;
      },
      { what: "the cancel to be held as a parked letter" },
    );
    expect(held.parked).toBe(true);
    expect(held.state.status).toBe("CONFIRMED");
    const letter = held.deadLetters[0];
    expect(letter.errorClass).toBe("Parked");

    const skipped = await cli(
      "skip",
      String(letter.id),
      "--reason",
      "customer called instead",
      "--url",
      service.baseUrl,
    );
    expect(skipped.code).toBe(0);
    expect(JSON.parse(skipped.out)).toEqual({ skipped: [letter.id] });
    const listed = await service.call("GET", `/api/v1/ops/dead-letters?consumer=booking&key=${bookingId}`, {
      token: admin,
    });
    expect(listed.body[0]).toMatchObject({
      id: letter.id,
      status: "skipped",
      skippedBy: "admin:ops-cli",
      skipReason: "customer called instead",
    });
    const byTopic = (topic: string) =>
      service.call(
        "GET",
        `/api/v1/ops/dead-letters?topic=${encodeURIComponent(topic)}&order=newest&limit=5`,
        {
          token: admin,
        },
      );
    expect((await byTopic(`${service.namespace}.booking-mailbox`)).body[0].id).toBe(letter.id);
    expect((await byTopic(`${service.namespace}.repair-mailbox`)).body).toEqual([]);
    // A skipped letter is never replayed, by id or with its key.
    const replay = await service.call("POST", "/api/v1/ops/dead-letters/replay", {
      token: admin,
      body: { ids: [letter.id] },
    });
    expect(replay.body).toEqual({ replayed: [] });

    const unparked = await cli("unpark", "booking", bookingId, "--url", service.baseUrl);
    expect(JSON.parse(unparked.out)).toEqual({
      kind: "booking",
      key: bookingId,
      parked: false,
      changed: true,
    });
    expect((await service.call("GET", actor, { token: admin })).body.state.status).toBe("CONFIRMED");
    const second = await cancel();
    expect(second.status).toBe(200);
    expect((await service.call("GET", actor, { token: admin })).body.state.status).toBe("CANCELLED");

    const audit = (await service.call("GET", "/api/v1/ops/audit", { token: admin })).body;
    const mine = audit.filter(
      (a: { target: { key?: string; ids?: number[] } }) =>
        a.target.key === bookingId || a.target.ids?.includes(letter.id),
    );
    expect(mine.map((a: { action: string }) => a.action)).toEqual(
      expect.arrayContaining(["actor.park", "dead-letters.skip", "dead-letters.replay", "actor.unpark"]),
    );
    expect(mine.find((a: { action: string }) => a.action === "actor.park").who).toBe("admin:ops-test");
  }, 90_000);

  test("stuck: actors in a non-final status for longer than asked, without a pending timer", async () => {
    const customer = await service.token("customer", `ops-${Bun.randomUUIDv7()}`);
    const booked = await service.call("POST", "/api/v1/bookings", {
      token: customer,
      body: { vehicleId: "v-stuck", serviceType: "INSPECTION", bookingDate: slotTime(6400) },
    });
    expect(booked.status).toBe(201);
    const { bookingId } = booked.body;
    const stuck = async (query: string) => {
      const answer = await service.call("GET", `/api/v1/ops/stuck?${query}`, { token: admin });
      expect(answer.status).toBe(200);
      return answer.body as { kind: string; key: string; status: string }[];
    };
    expect((await stuck("kind=booking")).find((s) => s.key === bookingId)).toBeUndefined(); // not an hour old
    const sql = service.system.routes.sql;
    await waitFor(
      async () =>
        (
          await sql`select 1 from actor_state where kind = 'job-saga' and actor_key = ${bookingId}
          and state ->> 'status' = 'OPEN'`
        ).length > 0,
      { what: "the booking's saga to open" },
    );
    // As if ten years had passed for this booking and its saga (the database is shared by the tests' namespaces:
    // nothing else is that old), and the booking's pending timer (its cache sync) had been lost: the booking is
    // stuck, the saga waits on its no-show timer.
    await sql`update actor_state set updated_at = now() - interval '10 years'
      where actor_key = ${bookingId} and kind in ('booking', 'job-saga')`;
    expect((await stuck(`olderThanSeconds=${9 * 365 * 86400}`)).filter((s) => s.key === bookingId)).toEqual(
      [],
    );
    await sql`delete from actor_timer where kind = 'booking' and actor_key = ${bookingId}`;
    const old = await stuck(`olderThanSeconds=${9 * 365 * 86400}`);
    expect(old.filter((s) => s.key === bookingId)).toEqual([
      expect.objectContaining({ kind: "booking", key: bookingId, status: "CONFIRMED" }),
    ]); // not the saga: it has its timer
    const printed = await cli(
      "stuck",
      "--older-than",
      String(9 * 365 * 86400),
      "--kind",
      "booking",
      "--url",
      service.baseUrl,
    );
    expect(JSON.parse(printed.out).map((s: { key: string }) => s.key)).toContain(bookingId);
    expect((await service.call("GET", "/api/v1/ops/stuck?kind=nothing", { token: admin })).status).toBe(404);
    expect(
      (await service.call("GET", "/api/v1/ops/stuck?olderThanSeconds=-1", { token: admin })).status,
    ).toBe(422);
  }, 60_000);
});
