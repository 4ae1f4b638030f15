/**
 * Benchmark 3: the cost of a turn's Postgres transaction. `commitTurn` (runtime/actor-store.ts: fence check with
 * a share lock, inbox insert, optimistic state upsert, no outbox rows or timers) against a raw postgres.js
 * transaction with one insert (`sql.begin` + one inbox row), at concurrency 1 and 20, interleaved round by round.
 *
 *   node_modules/.bin/bun bench/turn-commit.ts
 *
 * Each worker owns its keys (as a partition's keys are turned one at a time), so no turn conflicts with another;
 * the first turn of a key inserts its row, later ones update it, as in the runtime's steady state.
 *
 * Knobs: BENCH_TURNS_C1 (3000), BENCH_TURNS_C20 (12000), BENCH_ROUNDS (3).
 */
import { openDatabase } from "../db/index.ts";
import { commitTurn } from "../runtime/actor-store.ts";
import { acquireLease, type PartitionLease } from "../runtime/fence.ts";
import {
  cleanUp,
  codeState,
  cpuMeter,
  fmt,
  interleave,
  machineNote,
  median,
  perSecond,
  ROUNDS,
  ratio,
  sameCode,
  setup,
  shortId,
  stopwatch,
  table,
} from "./support.ts";

const elapsed = stopwatch();
const codeAtStart = codeState();
const TURNS: Record<number, number> = {
  1: Number(process.env.BENCH_TURNS_C1 ?? 3000),
  20: Number(process.env.BENCH_TURNS_C20 ?? 12000),
};
const KEYS = 100; // a multiple of both concurrencies: worker w owns the keys k with k % concurrency = w
const PARTITIONS = 10;

const { config } = await setup("turn");
const database = openDatabase(config.postgres.url, { max: 20 });
const { sql } = database;
const [settings] = await sql<{ synchronous_commit: string; fsync: string; version: string }[]>`
  select current_setting('synchronous_commit') as synchronous_commit, current_setting('fsync') as fsync,
    current_setting('server_version') as version`;

// The partitions' leases, taken once (as a host does on assignment); every turn checks its partition's epoch.
const groupId = `bench-turn-${shortId()}`;
const leases: PartitionLease[] = [];
for (let partition = 0; partition < PARTITIONS; partition++) {
  leases.push(await acquireLease(database.db, { groupId, topic: "bench-turn-mailbox", partition }, "bench"));
}

const kinds: string[] = [];

/** Runs `total` operations on `concurrency` workers; worker w takes operations w, w + c, w + 2c... */
async function drive(concurrency: number, total: number, op: (i: number) => Promise<void>) {
  const started = performance.now();
  const cpu = cpuMeter();
  await Promise.all(
    Array.from({ length: concurrency }, async (_, w) => {
      for (let i = w; i < total; i += concurrency) await op(i);
    }),
  );
  const ms = performance.now() - started;
  return { count: total, ms, rate: perSecond(total, ms), cpu: cpu() };
}

async function commitTurnPass(concurrency: number, total: number) {
  const kind = `bench-turn-${shortId()}`;
  kinds.push(kind);
  const versions = new Map<number, number>();
  return drive(concurrency, total, async (i) => {
    const k = i % KEYS;
    const version = versions.get(k) ?? 0;
    const partition = k % PARTITIONS;
    versions.set(
      k,
      await commitTurn(sql, {
        lease: leases[partition] as PartitionLease,
        kind,
        key: `k${k}`,
        mailbox: "bench-turn-mailbox",
        messageId: crypto.randomUUID(),
        expectedVersion: version,
        state: { lastSeq: version + 1, count: version + 1, violations: 0 },
        partition,
        offset: BigInt(i),
        outbox: [],
        timers: [],
      }),
    );
  });
}

/**
 * Diagnostic, not a proposal: commitTurn's statements (no outbox rows, no timers) with the fence's epoch read
 * WITHOUT `for share`. It shows what the share lock on the partition's one partition_owner row costs when many
 * turns of a partition commit at once (each concurrent share lock on a row makes Postgres write a MultiXact).
 * Dropping the lock would lose the fence's guarantee; this only measures it.
 */
async function withoutShareLockPass(concurrency: number, total: number) {
  const kind = `bench-turn-${shortId()}`;
  kinds.push(kind);
  const versions = new Map<number, number>();
  return drive(concurrency, total, async (i) => {
    const k = i % KEYS;
    const version = versions.get(k) ?? 0;
    const partition = k % PARTITIONS;
    const lease = leases[partition] as PartitionLease;
    const key = `k${k}`;
    const state = JSON.stringify({ lastSeq: version + 1, count: version + 1, violations: 0 });
    await sql.begin(async (tx) => {
      const [row] = await tx<{ epoch: string }[]>`
        select epoch from partition_owner
        where group_id = ${lease.groupId} and topic = ${lease.topic} and partition = ${lease.partition}`;
      if (Number(row?.epoch) !== lease.epoch) throw new Error("fenced");
      const fresh = await tx`
        insert into inbox (consumer, event_id) values (${kind}, ${crypto.randomUUID()})
        on conflict do nothing returning event_id`;
      if (fresh.length === 0) throw new Error("duplicate");
      const written = await tx`
        insert into actor_state as a (kind, actor_key, state, version, last_partition, last_offset, parked_at, updated_at)
        values (${kind}, ${key}, ${state}::jsonb, ${version + 1}, ${partition},
          ${String(i)}, case when ${false} then now() end, now())
        on conflict (kind, actor_key) do update set
          state = excluded.state, version = excluded.version, last_partition = excluded.last_partition,
          last_offset = excluded.last_offset, parked_at = excluded.parked_at, updated_at = excluded.updated_at
        where a.version = ${version}
        returning version`;
      if (written.length === 0) throw new Error("stale");
    });
    versions.set(k, version + 1);
  });
}

async function rawPass(concurrency: number, total: number) {
  const consumer = `bench-raw-${shortId()}`;
  kinds.push(consumer);
  return drive(concurrency, total, async () => {
    await sql.begin(
      (tx) => tx`insert into inbox (consumer, event_id) values (${consumer}, ${crypto.randomUUID()})`,
    );
  });
}

// Warm the pool (20 connections) and prepared statements outside the measured rounds.
await drive(20, 200, () => sql`select 1`.then(() => {}));

const DIAGNOSTIC = "diagnostic: commitTurn's statements, epoch read without FOR SHARE";
const summary: (string | number)[][] = [];
const rows: (string | number)[][] = [];
for (const concurrency of [1, 20]) {
  const total = TURNS[concurrency] as number;
  const results = await interleave(
    ROUNDS,
    [
      { name: "raw sql.begin + 1 insert", run: () => rawPass(concurrency, total) },
      { name: "commitTurn", run: () => commitTurnPass(concurrency, total) },
      { name: DIAGNOSTIC, run: () => withoutShareLockPass(concurrency, total) },
    ],
    (name, round, r) =>
      console.error(
        `[turn] c=${concurrency} round ${round} ${name}: ${r.count} in ${fmt(r.ms)} ms = ${fmt(r.rate)}/s`,
      ),
  );
  for (let round = 0; round < ROUNDS; round++) {
    for (const [name, list] of results) {
      const r = list[round] as Awaited<ReturnType<typeof drive>>;
      rows.push([
        concurrency,
        round + 1,
        name,
        r.count,
        fmt(r.ms),
        fmt(r.rate),
        `${r.cpu.process} / ${r.cpu.machine}`,
      ]);
    }
  }
  const raw = median((results.get("raw sql.begin + 1 insert") ?? []).map((r) => r.rate));
  const turn = median((results.get("commitTurn") ?? []).map((r) => r.rate));
  const noLock = median((results.get(DIAGNOSTIC) ?? []).map((r) => r.rate));
  summary.push([
    concurrency,
    fmt(raw),
    fmt(turn),
    ratio(turn, raw),
    fmt(1000 / turn, 3),
    fmt(noLock),
    ratio(noLock, raw),
  ]);
}

await cleanUp(database, kinds, [groupId]);
await database.close();

console.log(`## Turn commit cost\n\n${machineNote()}\n`);
console.log(`Runtime measured: ${codeAtStart}.\n`);
const codeAtEnd = codeState();
if (!sameCode(codeAtEnd, codeAtStart))
  console.log(`**The runtime changed during this run**; at the end: ${codeAtEnd}.\n`);
console.log(
  `Postgres ${settings?.version} on loopback, synchronous_commit=${settings?.synchronous_commit}, fsync=${settings?.fsync}; pool 20; ${KEYS} keys, ${PARTITIONS} partition leases; ${ROUNDS} rounds, interleaved.\n`,
);
console.log(
  table(
    ["concurrency", "round", "contender", "transactions", "ms", "commits/s", "CPU % process / machine"],
    rows,
  ),
);
console.log();
console.log(
  table(
    [
      "concurrency",
      "raw median commits/s",
      "commitTurn median turns/s",
      "commitTurn / raw",
      "ms per turn (1 / rate)",
      "diagnostic (no FOR SHARE) median/s",
      "diagnostic / raw",
    ],
    summary,
  ),
);
console.log(`\nwall time ${elapsed()}`);
process.exit(0);
