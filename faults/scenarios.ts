/**
 * The fault schedules. Each injects its fault into the running system, heals it, and says when (the windows the
 * report measures throughput and recovery in). Durations are the short form's, or the long form's (`--long`).
 */
import postgres from "postgres";
import { clusterLayout, killNode, restartNode } from "../infra/kafka-cluster.ts";
import { createKafka, topicIn } from "../topics/index.ts";
import type { Proc, SystemUnderTest } from "./system.ts";

export interface FaultContext {
  sut: SystemUnderTest;
  long: boolean;
  log(line: string): void;
  /** Marks a fault window: from now until the returned function is called (the heal). */
  fault(name: string): () => void;
  /** Sends one poison record straight to a mailbox topic (bad JSON, unknown type, payload off-schema). */
  poison(): Promise<void>;
  /**
   * Records how long a host's partitions took to be served by live hosts after it went away; `overlapped`: how
   * many other hosts were lost before that.
   */
  takeover(ms: number, overlapped: number): void;
  /** A measurement still under way: the report waits for it. */
  measuring(done: Promise<void>): void;
}

export interface Scenario {
  name: string;
  description: string;
  hosts: number;
  clusterSize: 1 | 3;
  /** Share of booking chains sent with text Postgres cannot store. */
  poisonRate?: (long: boolean) => number;
  inject(ctx: FaultContext): Promise<void>;
}

const minutes = (long: boolean, short: number) => (long ? 10 * 60_000 : short);

export const scenarios: Scenario[] = [
  {
    name: "kill",
    description: "SIGKILL a random actor/reactor host every 10 s, restart it 2 s later; 3 hosts, steady load",
    hosts: 3,
    clusterSize: 1,
    async inject(ctx) {
      const until = Date.now() + minutes(ctx.long, 30_000);
      while (Date.now() < until) {
        const live = ctx.sut.liveHosts();
        const victim = live[Math.floor(Math.random() * live.length)] as Proc;
        const index = ctx.sut.hosts.indexOf(victim);
        const heal = ctx.fault(`SIGKILL ${victim.name}`);
        ctx.sut.kill(victim, "SIGKILL");
        const killedAt = Date.now();
        ctx.measuring(measureTakeover(ctx, victim, killedAt));
        await Bun.sleep(2000);
        const restarted = await ctx.sut.startHost(index);
        ctx.log(
          `${victim.name} restarted, serving in ${(restarted.servingAt ?? 0) - restarted.startedAt} ms`,
        );
        heal();
        await Bun.sleep(Math.max(0, 10_000 - (Date.now() - killedAt)));
      }
    },
  },
  {
    name: "freeze",
    description: "SIGSTOP a host past its session timeout (10 s) for 15 s, then SIGCONT; 3 hosts",
    hosts: 3,
    clusterSize: 1,
    async inject(ctx) {
      const until = Date.now() + minutes(ctx.long, 1);
      do {
        const live = ctx.sut.liveHosts();
        const victim = live[Math.floor(Math.random() * live.length)] as Proc;
        const heal = ctx.fault(`SIGSTOP ${victim.name}`);
        ctx.sut.kill(victim, "SIGSTOP");
        ctx.measuring(measureTakeover(ctx, victim, Date.now()));
        await Bun.sleep(15_000);
        ctx.sut.kill(victim, "SIGCONT");
        heal();
        if (ctx.long) await Bun.sleep(45_000);
      } while (Date.now() < until);
    },
  },
  {
    name: "deps",
    description:
      "Postgres, then Redis, then NATS cut for 30 s each (10 s in the short form) through TCP proxies",
    hosts: 2,
    clusterSize: 1,
    async inject(ctx) {
      const cutFor = ctx.long ? 30_000 : 10_000;
      const rounds = ctx.long ? 5 : 1;
      for (let round = 0; round < rounds; round++) {
        for (const dependency of ["postgres", "redis", "nats"] as const) {
          const proxy = ctx.sut.proxies[dependency];
          const heal = ctx.fault(`${dependency} cut`);
          await proxy.cut();
          await Bun.sleep(cutFor);
          await proxy.restore();
          heal();
          await Bun.sleep(ctx.long ? 30_000 : 8000);
        }
      }
    },
  },
  {
    name: "brokers",
    description:
      "3 brokers: kill the leader of a busy partition and restart it, 3 times; then 2 of 3 down for 30 s (15 s short)",
    hosts: 2,
    clusterSize: 3,
    async inject(ctx) {
      const kafka = createKafka({ brokers: ctx.sut.brokers, clientId: "faults-brokers" });
      const admin = kafka.admin();
      await admin.connect();
      const rounds = ctx.long ? 3 : 1;
      try {
        for (let round = 0; round < rounds; round++) {
          for (let i = 0; i < 3; i++) {
            const topic = topicIn(ctx.sut.namespace, "booking-mailbox");
            const meta = await admin.fetchTopicMetadata({ topics: [topic] });
            const leader = meta.topics[0]?.partitions.find((p) => p.partitionId === 0)?.leader ?? 1;
            const heal = ctx.fault(`broker ${leader} killed`);
            await killNode(3, leader);
            await Bun.sleep(ctx.long ? 30_000 : 8000);
            restartNode(3, leader);
            await waitInSync(admin, topic);
            heal();
            await Bun.sleep(5000);
          }
          const down = clusterLayout(3)
            .nodes.slice(1)
            .map((n) => n.id);
          const heal = ctx.fault(`brokers ${down.join(",")} down`);
          for (const id of down) await killNode(3, id);
          await Bun.sleep(ctx.long ? 30_000 : 15_000);
          for (const id of down) restartNode(3, id);
          await waitInSync(admin, topicIn(ctx.sut.namespace, "booking-mailbox"));
          heal();
          if (ctx.long) await Bun.sleep(60_000);
        }
      } finally {
        await admin.disconnect();
      }
    },
  },
  {
    name: "poison",
    description:
      "poison mixed into the load: bad Unicode in bookings (1%; 5% short) and bad records on mailboxes",
    hosts: 2,
    clusterSize: 1,
    poisonRate: (long) => (long ? 0.01 : 0.05),
    async inject(ctx) {
      const until = Date.now() + minutes(ctx.long, 30_000);
      const heal = ctx.fault("poison");
      while (Date.now() < until) {
        await ctx.poison();
        await Bun.sleep(ctx.long ? 6000 : 3000);
      }
      heal();
    },
  },
  {
    name: "scale",
    description: "hosts 1 -> 3 -> 1 under load (joins, then SIGTERM leaves)",
    hosts: 1,
    clusterSize: 1,
    async inject(ctx) {
      const rounds = ctx.long ? 5 : 1;
      for (let round = 0; round < rounds; round++) {
        const heal = ctx.fault("scale out and in");
        await Promise.all([ctx.sut.startHost(1), ctx.sut.startHost(2)]);
        ctx.log("3 hosts serving");
        await Bun.sleep(ctx.long ? 60_000 : 15_000);
        for (const i of [1, 2]) {
          const host = ctx.sut.hosts[i] as Proc;
          ctx.sut.kill(host, "SIGTERM");
          await host.child.exited;
        }
        ctx.log("back to 1 host");
        heal();
        await Bun.sleep(ctx.long ? 60_000 : 10_000);
      }
    },
  },
];

/**
 * Until every partition lease the lost host held when it went away is held by a live, unfrozen process under a
 * newer epoch: its partitions are served again. A second host lost meanwhile (the kill scenario loses one every
 * 10 s, the session timeout) makes this an overlapped measurement: what moved to it waits for its own takeover.
 */
/** A takeover slower than this (the hosts' session timeout, 10 s, plus 3 s) logs what it still waits for. */
const SLOW_TAKEOVER_MS = 13_000;

async function measureTakeover(ctx: FaultContext, victim: Proc, since: number): Promise<void> {
  const sql = postgres(ctx.sut.databaseUrl, { max: 1, onnotice: () => {} });
  try {
    const held = await sql<{ group_id: string; topic: string; partition: number; epoch: string }[]>`
      select group_id, topic, partition, epoch from partition_owner where owner like ${`%:${victim.child.pid}:%`}`;
    const livePids = () =>
      new Set(
        ctx.sut
          .liveHosts()
          .filter((h) => !h.frozen) // a frozen victim once woken serves again too
          .map((h) => String(h.child.pid)),
      );
    // Every host alive at some point of the window, restarted ones included; never the victim itself, which may
    // still be listed just after its kill.
    const seen = livePids();
    seen.delete(String(victim.child.pid));
    let overlapped = 0; // how many of them were lost meanwhile
    let told = false;
    for (let i = 0; i < 600 && held.length > 0; i++) {
      const now = livePids();
      for (const pid of now) if (pid !== String(victim.child.pid)) seen.add(pid);
      overlapped = [...seen].filter((pid) => !now.has(pid)).length;
      const rows = await sql<
        { g: string; t: string; p: number; owner: string; epoch: string; was: string }[]
      >`
        select h.g, h.t, h.p, o.owner, o.epoch, h.e as was from partition_owner o
        join unnest(${held.map((h) => h.group_id)}::text[], ${held.map((h) => h.topic)}::text[],
          ${held.map((h) => h.partition)}::int[], ${held.map((h) => h.epoch)}::bigint[]) as h(g, t, p, e)
          on o.group_id = h.g and o.topic = h.t and o.partition = h.p`;
      const unserved = rows.filter(
        (r) => !(Number(r.epoch) > Number(r.was) && now.has(r.owner.split(":").at(-2) ?? "")),
      );
      if (unserved.length > 0 && !told && Date.now() - since > SLOW_TAKEOVER_MS) {
        told = true; // what a slow takeover waits for, once
        ctx.log(
          `${victim.name}: ${unserved.length} of ${rows.length} partitions not served again after ${SLOW_TAKEOVER_MS} ms: ${unserved
            .slice(0, 8)
            .map(
              (r) =>
                `${r.g.split(".").slice(1).join(".")} ${r.t.split(".").at(-1)}/${r.p} epoch ${r.epoch} (was ${r.was}) owner ${r.owner}`,
            )
            .join("; ")}`,
        );
        for (const line of await whatWaits(
          ctx,
          sql,
          unserved.map((r) => r.g),
        ))
          ctx.log(`  ${line}`);
      }
      if (unserved.length === 0) {
        ctx.takeover(Date.now() - since, overlapped);
        return;
      }
      await Bun.sleep(200);
    }
    if (held.length > 0) ctx.takeover(Date.now() - since, overlapped); // never served: reported as it stands
  } catch {
    // the run ended first
  } finally {
    await sql.end();
  }
}

/**
 * What a slow takeover may be waiting for: the groups' states and members in Kafka, and every Postgres session of
 * the run that waits for a lock, with the sessions blocking it (their host, state, age and statement).
 */
async function whatWaits(ctx: FaultContext, sql: postgres.Sql, groups: string[]): Promise<string[]> {
  const lines: string[] = [];
  const admin = createKafka({ brokers: ctx.sut.brokers, clientId: "faults-diagnosis" }).admin();
  try {
    await admin.connect();
    const described = await admin.describeGroups([...new Set(groups)]);
    for (const g of described.groups)
      lines.push(
        `group ${g.groupId}: ${g.state}, members ${g.members.map((m) => m.clientId.split(".").at(-1)).join(", ") || "none"}`,
      );
  } catch (error) {
    lines.push(`groups not described: ${String(error)}`);
  } finally {
    await admin.disconnect().catch(() => {});
  }
  const waits = await sql<Record<string, unknown>[]>`
    select w.pid, w.application_name as waiter, w.wait_event as waits_on, left(w.query, 100) as query,
      b.pid as blocker_pid, b.application_name as blocker, b.state as blocker_state,
      b.wait_event_type || '/' || b.wait_event as blocker_wait,
      round(extract(epoch from now() - b.xact_start) * 1000) as blocker_xact_ms, left(b.query, 100) as blocker_query
    from pg_stat_activity w
    cross join lateral unnest(pg_blocking_pids(w.pid)) as bp(pid)
    join pg_stat_activity b on b.pid = bp.pid
    where w.datname = current_database()`.catch((error: unknown) => [{ error: String(error) }]);
  if (waits.length === 0) lines.push("no Postgres session waits for a lock");
  for (const w of waits) lines.push(`lock wait: ${JSON.stringify(w)}`);
  return lines;
}

async function waitInSync(admin: ReturnType<ReturnType<typeof createKafka>["admin"]>, topic: string) {
  for (let i = 0; i < 240; i++) {
    try {
      const meta = await admin.fetchTopicMetadata({ topics: [topic] });
      if ((meta.topics[0]?.partitions ?? []).every((p) => p.isr.length === 3)) return;
    } catch {}
    await Bun.sleep(500);
  }
}
