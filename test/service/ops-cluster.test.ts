/**
 * The ops CLI on a running 3-host system (real processes: one HTTP process, three actor and reactor hosts, as the
 * fault harness starts them): which host owns which partition with its lag, a booking's state and history,
 * pause and resume of a partition reaching the host that owns it, park, skip and a redrive of a key.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import postgres from "postgres";
import { SystemUnderTest } from "../../faults/system.ts";
import { waitFor } from "../support.ts";
import { slotTime } from "./fixtures.ts";

const root = join(import.meta.dir, "..", "..");
const runId = `ops${Bun.randomUUIDv7().replaceAll("-", "").slice(-8)}`;
const system = new SystemUnderTest({
  runId,
  hosts: 3,
  clusterSize: 1,
  logDir: mkdtempSync(join(tmpdir(), "pitstop-ops-cluster-")),
});

beforeAll(() => system.start(), 240_000);
afterAll(async () => {
  await system.stop();
  const sql = postgres("postgres://postgres@127.0.0.1:5432/postgres", { max: 1, onnotice: () => {} });
  await sql.unsafe(`drop database if exists "pitstop_faults_${runId}" with (force)`).catch(() => {});
  await sql.end();
}, 60_000);

/** A script of the project run as an operator would, against the system's HTTP process (the development secret). */
async function run(script: string, ...args: string[]) {
  const child = Bun.spawn([process.execPath, script, ...args], {
    cwd: root,
    stdout: "pipe",
    stderr: "pipe",
    env: { ...process.env, NODE_ENV: "development", PITSTOP_TOKEN: "" },
  });
  const [out, err, code] = await Promise.all([
    new Response(child.stdout).text(),
    new Response(child.stderr).text(),
    child.exited,
  ]);
  if (code !== 0) throw new Error(`${script} ${args.join(" ")} exited ${code}: ${err}`);
  return out;
}
const ops = (...args: string[]) => run("scripts/ops.ts", ...args, "--url", system.baseUrl);
const opsJson = async <T>(...args: string[]) => JSON.parse(await ops(...args)) as T;

interface HostRow {
  hostId: string;
  role: string;
  up: boolean;
  groups: {
    groupId: string;
    partitions: { topic: string; partition: number; lag: number | null; held: boolean }[];
  }[];
}
interface GroupRow {
  groupId: string;
  partitions: { topic: string; partition: number; owner: string | null; lag: number }[];
}

async function call(method: string, path: string, token: string, body?: unknown) {
  const response = await fetch(`${system.baseUrl}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: response.status, body: await response.json() };
}

describe("ops on a 3-host system", () => {
  test("hosts and groups: three hosts share every group's partitions, each partition's owner is one of them, with its lag", async () => {
    const booking = `${system.groupPrefix}.actor.booking`;
    const partitions = (await opsJson<GroupRow[]>("groups", "--json", "--group", booking))[0]?.partitions
      .length;
    expect(partitions).toBeGreaterThanOrEqual(3);
    // Each process reports every 5 s: wait for reports written after the groups settled.
    const hosts = await waitFor(
      async () => {
        const all = await opsJson<HostRow[]>("hosts", "--json");
        const workers = all.filter((h) => h.role === "actors,reactors" && h.up);
        const shares = workers.map(
          (h) => h.groups.find((g) => g.groupId === booking)?.partitions.map((p) => p.partition) ?? [],
        );
        const settled =
          workers.length === 3 &&
          workers.every((h) => h.groups.length === 6) &&
          shares.every((share) => share.length > 0) &&
          new Set(shares.flat()).size === partitions;
        return settled ? all : undefined;
      },
      { timeoutMs: 90_000, intervalMs: 1000, what: "three hosts sharing the booking group's partitions" },
    );
    expect(hosts.filter((h) => h.role === "http")).toHaveLength(1);
    const workers = hosts.filter((h) => h.role === "actors,reactors");
    for (const h of workers) {
      const mine = h.groups.find((g) => g.groupId === booking)?.partitions ?? [];
      expect(mine.length).toBeGreaterThan(0);
      for (const p of mine) expect(p.lag).toBeGreaterThanOrEqual(0);
    }

    const groups = await opsJson<GroupRow[]>("groups", "--json");
    const ids = new Set(workers.map((h) => h.hostId));
    expect(groups).toHaveLength(6);
    for (const g of groups) {
      for (const p of g.partitions) {
        expect(ids.has(p.owner ?? "")).toBe(true);
        expect(p.lag).toBeGreaterThanOrEqual(0);
      }
    }
    console.log(`$ npm run -s ops -- hosts\n${await ops("hosts")}`);
    console.log(`$ npm run -s ops -- groups --group ${booking}\n${await ops("groups", "--group", booking)}`);
  }, 120_000);

  test("a booking's state and history; pause reaches the host that owns the partition; park, skip and a redrive of the key", async () => {
    const customer = (
      await run("scripts/token.ts", "--role", "customer", "--sub", `ops-cluster-${runId}`)
    ).trim();
    const booked = await call("POST", "/api/v1/bookings", customer, {
      vehicleId: "v-cluster",
      serviceType: "INSPECTION",
      bookingDate: slotTime(6500),
    });
    expect(booked.status).toBe(201);
    const { bookingId } = booked.body;
    const actor = await waitFor(
      async () => {
        const view = await opsJson<{ state: { status: string }; records: { type: string | null }[] }>(
          "actor",
          "booking",
          bookingId,
        );
        return view.records.length > 0 ? view : undefined;
      },
      { what: "the booking's records" },
    );
    expect(actor.state.status).toBe("CONFIRMED");
    expect(actor.records.map((r) => r.type)).toContain("BOOKING_CREATED");

    // Pause the reactors' partition of booking-events 0 and find it held on the host that owns it.
    const reactors = `${system.groupPrefix}.reactors`;
    const topic = `${system.namespace}.booking-events`;
    const paused = await opsJson<{ paused: boolean; changed: boolean }>(
      "pause",
      reactors,
      topic,
      "0",
      "--reason",
      "test",
    );
    expect(paused).toEqual({ ...paused, paused: true, changed: true });
    const heldOn = async () =>
      (await opsJson<HostRow[]>("hosts", "--json")).filter((h) =>
        h.groups.some(
          (g) =>
            g.groupId === reactors &&
            g.partitions.some((p) => p.topic === topic && p.partition === 0 && p.held),
        ),
      );
    const holders = await waitFor(async () => ((await heldOn()).length === 1 ? heldOn() : undefined), {
      timeoutMs: 20_000,
      intervalMs: 500,
      what: "the owning host to report the partition held",
    });
    const owner = (await opsJson<GroupRow[]>("groups", "--json", "--group", reactors))[0]?.partitions.find(
      (p) => p.topic === topic && p.partition === 0,
    )?.owner;
    expect(holders[0]?.hostId).toBe(owner as string);
    await opsJson("resume", reactors, topic, "0");
    await waitFor(async () => (await heldOn()).length === 0, {
      timeoutMs: 20_000,
      intervalMs: 500,
      what: "the partition let go",
    });

    // Park the booking, send it two cancels (both held), skip the first, redrive the key: only the second runs.
    await opsJson("park", "booking", bookingId, "--reason", "test");
    for (const reason of ["first", "second"]) {
      const cancel = await call("POST", `/api/v1/bookings/${bookingId}/cancel`, customer, { reason });
      expect(cancel.status).toBe(503);
    }
    const letters = await waitFor(
      async () => {
        const all = await opsJson<{ id: number; status: string; value: string }[]>(
          "dead-letters",
          "--consumer",
          "booking",
          "--key",
          bookingId,
        );
        return all.length === 2 ? all : undefined;
      },
      { what: "two parked letters" },
    );
    expect(letters.map((l) => l.status)).toEqual(["parked", "parked"]);
    expect(await opsJson("skip", String(letters[0]?.id), "--reason", "sent twice")).toEqual({
      skipped: [letters[0]?.id],
    });
    expect(await opsJson("replay", "--consumer", "booking", "--key", bookingId)).toEqual({
      replayed: [letters[1]?.id],
    });
    const cancelled = await waitFor(
      async () => {
        const view = await opsJson<{ parked: boolean; state: { status: string; cancelReason?: string } }>(
          "actor",
          "booking",
          bookingId,
        );
        return view.state.status === "CANCELLED" ? view : undefined;
      },
      { what: "the redriven cancel to run" },
    );
    expect(cancelled.parked).toBe(false);
    console.log(
      `$ npm run -s ops -- audit | head\n${(await ops("audit")).split("\n").slice(0, 30).join("\n")}`,
    );
  }, 120_000);
});
