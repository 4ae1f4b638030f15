/**
 * Live status frames report what their own event said: a technician's four steps sent back to back reach the
 * repair's subscriber as DIAGNOSING 20, REPAIRING 60, TESTING 90, COMPLETED 100, each once and in order, and the
 * booking's own steps as the status each of its turns reached. Also when the status reactor runs behind the
 * steps (its partitions paused until the repair is complete: the frames are made after the entity moved on), and
 * when the process running it is killed mid-way and started again (real processes).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import postgres from "postgres";
import { SystemUnderTest } from "../../faults/system.ts";
import { waitFor } from "../support.ts";
import { type Json, openSocket, type Service, slotTime, startService } from "./fixtures.ts";

type Call = (
  method: string,
  path: string,
  token: string,
  body?: unknown,
) => Promise<{ status: number; body: Json }>;

interface Flow {
  call: Call;
  wsUrl: string;
  token(role: "customer" | "technician" | "admin", sub: string): Promise<string>;
}

const STEPS = [
  ["DIAGNOSING", 20],
  ["REPAIRING", 60],
  ["TESTING", 90],
] as const;
const EXPECTED: (string | number)[][] = [...STEPS.map((s) => [...s]), ["COMPLETED", 100]];

const uid = () => Bun.randomUUIDv7().slice(-8);
/** Frames are at least once: keep the first of each eventId (what a client does). */
const dedupe = (frames: Json[]) => {
  const seen = new Set<string>();
  return frames.filter((f) => !seen.has(f.eventId) && seen.add(f.eventId));
};

/**
 * Books and subscribes to the booking, runs `before`, starts a repair and subscribes to it, then sends the four
 * steps back to back (each answered before the next; `midway` runs after the first two), then `after`. Returns the frames once the booking's AWAITING_PAYMENT frame is in.
 */
async function repairFlow(
  flow: Flow,
  hooks: { before?(): Promise<void>; midway?(): Promise<void>; after?(): Promise<void> },
) {
  const customer = await flow.token("customer", `frames-${uid()}`);
  const technician = await flow.token("technician", `tech-${uid()}`);
  const booked = await flow.call("POST", "/api/v1/bookings", customer, {
    vehicleId: "v-frames",
    serviceType: "OIL_CHANGE",
    bookingDate: slotTime(24 + Math.floor(Math.random() * 24 * 300), 15),
  });
  expect(booked.status).toBe(201);
  const { bookingId } = booked.body;
  const socket = await openSocket(`${flow.wsUrl}?token=${customer}`);
  socket.send({ type: "subscribe", bookingId });
  await socket.waitFor((f) => f.type === "subscribed" && f.entity === "booking", "booking subscription");
  await hooks.before?.();
  const started = await flow.call("POST", "/api/v1/repairs/start", technician, {
    bookingId,
    estimatedTime: 30,
  });
  expect(started.status).toBe(201);
  const { repairId } = started.body;
  socket.send({ type: "subscribe", repairId });
  await socket.waitFor((f) => f.type === "subscribed" && f.entity === "repair", "repair subscription");
  for (const [i, [status, progress]] of STEPS.entries()) {
    if (i === 2) await hooks.midway?.();
    const step = await flow.call("POST", `/api/v1/repairs/${repairId}/progress`, technician, {
      status,
      progress,
    });
    expect([200, 202]).toContain(step.status); // 202: answered late, the step is queued (a host was away)
  }
  const completed = await flow.call("POST", `/api/v1/repairs/${repairId}/complete`, technician, {
    parts: [{ partId: "FILTER-OIL", quantity: 1 }],
    labourMinutes: 30,
  });
  expect([200, 202]).toContain(completed.status);
  await hooks.after?.();
  await socket.waitFor(
    (f) => f.type === "status" && f.entity === "booking" && f.event === "BOOKING_AWAITING_PAYMENT",
    "the booking's AWAITING_PAYMENT frame",
  );
  await socket.waitFor(
    (f) => f.type === "status" && f.entity === "repair" && f.event === "REPAIR_COMPLETED",
    "the repair's COMPLETED frame",
  );
  socket.close();
  return { frames: socket.frames, bookingId, repairId };
}

/** The frames say what each event said: the repair's steps each once in order; the booking's own turns' status. */
function expectFramesOfTheirEvents(result: Awaited<ReturnType<typeof repairFlow>>) {
  const { frames, bookingId, repairId } = result;
  const repair = dedupe(
    frames.filter(
      (f) =>
        f.type === "status" && f.entity === "repair" && f.id === repairId && f.event !== "REPAIR_STARTED",
    ),
  );
  expect(repair.map((f) => [f.status, f.progress])).toEqual(EXPECTED);
  // Each frame's version is the repair's after that step: one apart, in order.
  const versions = repair.map((f) => f.version as number);
  expect(versions).toEqual(versions.map((_, i) => (versions[0] as number) + i));
  const booking = dedupe(
    frames.filter((f) => f.type === "status" && f.entity === "booking" && f.id === bookingId),
  );
  // The booking's own events: the status its turn reached, whatever it became before the frame was made.
  // (BOOKING_CREATED may come before the subscription or after it: the subscribe raced the status reactor.)
  const own = booking.filter((f) => f.source?.kind === "booking");
  for (const f of own.filter((f) => f.event === "BOOKING_CREATED")) expect(f.status).toBe("CONFIRMED");
  expect(own.filter((f) => f.event !== "BOOKING_CREATED").map((f) => [f.event, f.status])).toEqual([
    ["BOOKING_IN_SERVICE", "IN_SERVICE"],
    ["BOOKING_AWAITING_PAYMENT", "AWAITING_PAYMENT"],
  ]);
  // The repair's start, on the booking's feed: asked for by the booking's turn that went IN_SERVICE.
  expect(booking.filter((f) => f.event === "REPAIR_STARTED").map((f) => [f.status, f.source.kind])).toEqual([
    ["IN_SERVICE", "repair"],
  ]);
  // The technician's steps on the booking's feed: the booking took no part; whose step it was, and where.
  const steps = booking.filter((f) => f.event === "REPAIR_IN_PROGRESS" || f.event === "REPAIR_COMPLETED");
  expect(steps.map((f) => f.status)).toEqual([null, null, null, null]);
  expect(steps.map((f) => [f.source.status, f.source.progress])).toEqual(EXPECTED);
}

describe("status frames, in process", () => {
  let service: Service;
  beforeAll(async () => {
    service = await startService();
  }, 120_000);
  afterAll(() => service?.stop(), 60_000);
  const flow = (): Flow => ({
    call: async (method, path, token, body) => service.call(method, path, { token, body }),
    wsUrl: service.wsUrl,
    token: (role, sub) => service.token(role, sub),
  });

  test("four steps back to back: DIAGNOSING 20, REPAIRING 60, TESTING 90, COMPLETED 100, each once, in order", async () => {
    expectFramesOfTheirEvents(await repairFlow(flow(), {}));
  }, 90_000);

  test("the status reactor behind the steps (paused until the repair is complete): the frames still say each step", async () => {
    const admin = await service.token("admin", "frames-test");
    const group = `pitstop-${service.namespace}.reactors`;
    const topics = [`${service.namespace}.repair-events`, `${service.namespace}.booking-events`];
    const every = (action: "pause" | "resume") =>
      Promise.all(
        topics.flatMap((topic) =>
          [0, 1, 2].map(async (partition) => {
            const answer = await service.call("POST", `/api/v1/ops/partitions/${action}`, {
              token: admin,
              body: { group, topic, partition },
            });
            expect(answer.status).toBe(200);
          }),
        ),
      );
    const result = await repairFlow(flow(), {
      before: async () => {
        await every("pause");
        // The host reads pauses each second (and reports every 5 s): wait until it holds the six partitions.
        await waitFor(
          async () => {
            const [host] = (await service.call("GET", "/api/v1/ops/hosts", { token: admin })).body;
            const held = host?.groups
              .find((g: { groupId: string }) => g.groupId === group)
              ?.partitions.filter(
                (p: { topic: string; held: boolean }) => topics.includes(p.topic) && p.held,
              );
            return held?.length === 6;
          },
          { what: "the reactors' repair and booking partitions held", timeoutMs: 20_000 },
        );
      },
      after: async () => {
        // Only once the repair is complete and the booking awaits payment does the reactor see the first step.
        await waitFor(
          async () => {
            const rows = await service.system.routes.sql<{ status: string }[]>`
              select state ->> 'status' as status from actor_state where kind = 'booking'
                and actor_key = (select state ->> 'bookingId' from actor_state where kind = 'repair'
                  and state ->> 'status' = 'COMPLETED' order by updated_at desc limit 1)`;
            return rows[0]?.status === "AWAITING_PAYMENT";
          },
          { what: "the booking to await payment while the reactor is paused" },
        );
        await every("resume");
      },
    });
    expectFramesOfTheirEvents(result);
  }, 120_000);
});

describe("status frames, the reactor's process killed mid-way and started again", () => {
  const runId = `frm${Bun.randomUUIDv7().replaceAll("-", "").slice(-8)}`;
  const system = new SystemUnderTest({
    runId,
    hosts: 0,
    clusterSize: 1,
    logDir: mkdtempSync(join(tmpdir(), "pitstop-status-frames-")),
  });
  beforeAll(async () => {
    await system.start(); // the HTTP process
    await Promise.all([system.startHost(0, "actors"), system.startHost(1, "reactors")]);
  }, 240_000);
  afterAll(async () => {
    await system.stop();
    const sql = postgres("postgres://postgres@127.0.0.1:5432/postgres", { max: 1, onnotice: () => {} });
    await sql.unsafe(`drop database if exists "pitstop_faults_${runId}" with (force)`).catch(() => {});
    await sql.end();
  }, 60_000);

  test("SIGKILL of the reactors' process after two steps, restarted after the last: every step's frame says that step", async () => {
    const root = join(import.meta.dir, "..", "..");
    const token = async (role: string, sub: string) => {
      const child = Bun.spawn([process.execPath, "scripts/token.ts", "--role", role, "--sub", sub], {
        cwd: root,
        stdout: "pipe",
        env: { ...process.env, NODE_ENV: "development" },
      });
      return (await new Response(child.stdout).text()).trim();
    };
    const flow: Flow = {
      call: async (method, path, bearer, body) => {
        const response = await fetch(`${system.baseUrl}${path}`, {
          method,
          headers: { authorization: `Bearer ${bearer}`, "content-type": "application/json" },
          body: body === undefined ? undefined : JSON.stringify(body),
        });
        return { status: response.status, body: await response.json() };
      },
      wsUrl: `ws://127.0.0.1:${system.httpPort}/ws`,
      token,
    };
    const reactors = () => system.hosts[1];
    const result = await repairFlow(flow, {
      midway: async () => {
        system.kill(reactors() as NonNullable<ReturnType<typeof reactors>>, "SIGKILL");
        await (reactors() as NonNullable<ReturnType<typeof reactors>>).child.exited;
      },
      after: async () => {
        await system.startHost(1, "reactors");
      },
    });
    expectFramesOfTheirEvents(result);
  }, 180_000);
});
