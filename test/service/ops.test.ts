/**
 * The ops views on the real service, through HTTP and through `npm run ops`: who owns which partition with its
 * lag, and one actor's state, position and parking; admin only.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
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
    expect(bad.err).toContain("usage:");
  }, 60_000);
});
