/**
 * Benchmark 1: no-op handler throughput. The runtime (an actor whose turn returns its state unchanged; every turn
 * still commits one Postgres transaction: fence check, inbox insert, state upsert) against raw kafkajs
 * `eachBatch` (no work, resolve + commit per batch) and raw kafkajs `eachMessage` (no work, default auto-commit),
 * on the same records, interleaved round by round. Messages/s from the first record to the last record handled.
 *
 * Goals (from the issue): runtime >= 0.8x eachBatch and >= 1.0x eachMessage.
 *
 *   node_modules/.bin/bun bench/noop-throughput.ts
 *
 * Knobs: BENCH_RECORDS (20000), BENCH_KEYS (1000), BENCH_ROUNDS (3), BENCH_PG_POOL (10, the system's pool size).
 */
import { Type } from "@sinclair/typebox";
import { openDatabase } from "../db/index.ts";
import { defineActor } from "../runtime/index.ts";
import {
  cleanUp,
  codeState,
  deleteTopics,
  eachBatchPass,
  eachMessagePass,
  fmt,
  freshTopic,
  interleave,
  machineNote,
  median,
  type PassResult,
  perSecond,
  produceSteps,
  ROUNDS,
  type RuntimePassResult,
  ratio,
  runtimePass,
  sameCode,
  setup,
  shortId,
  stopwatch,
  table,
  tuningFromEnv,
} from "./support.ts";

const elapsed = stopwatch();
const codeAtStart = codeState();
const RECORDS = Number(process.env.BENCH_RECORDS ?? 20_000);
const KEYS = Number(process.env.BENCH_KEYS ?? 1000);
const POOL = Number(process.env.BENCH_PG_POOL ?? 10);
const PARTITIONS = 10;
const TUNING = tuningFromEnv();

const { config, kafka } = await setup("noop");
const database = openDatabase(config.postgres.url, { max: POOL });
const topic = await freshTopic(kafka, "noop", PARTITIONS);
const keys = Array.from({ length: KEYS }, (_, i) => `k${i}`);
const records = await produceSteps(kafka, topic, keys, Math.ceil(RECORDS / KEYS));
console.error(`[noop] ${records} records over ${PARTITIONS} partitions, ${KEYS} keys on ${topic}`);

const kinds: string[] = [];
const groups: string[] = [];
function noopActor(noopTurns: "commit" | "skip") {
  const kind = `bench-noop-${shortId()}`;
  kinds.push(kind);
  return defineActor({
    kind,
    mailbox: topic,
    initialState: () => ({ n: 0 }),
    messages: { STEP: Type.Object({ seq: Type.Integer() }) },
    noopTurns,
    handle: (state) => ({ state }),
  });
}

const results = await interleave<PassResult>(
  ROUNDS,
  [
    { name: "kafkajs eachBatch", run: () => eachBatchPass(kafka, topic, records) },
    { name: "kafkajs eachMessage", run: () => eachMessagePass(kafka, topic, records) },
    {
      name: "pitstop runtime (no-op actor, noopTurns skip)",
      run: async () => {
        const result = await runtimePass(config, database, noopActor("skip"), records, TUNING);
        groups.push(result.groupId);
        return result;
      },
    },
    {
      name: "pitstop runtime (no-op actor, noopTurns commit)",
      run: async () => {
        const result = await runtimePass(config, database, noopActor("commit"), records, TUNING);
        groups.push(result.groupId);
        return result;
      },
    },
  ],
  (name, round, r) => {
    const extra =
      "stats" in r
        ? ` turns=${(r as RuntimePassResult).stats.turns} skipped=${(r as RuntimePassResult).stats.skipped} duplicates=${(r as RuntimePassResult).stats.duplicates}`
        : "";
    console.error(
      `[noop] round ${round} ${name}: ${r.records} in ${fmt(r.ms)} ms = ${fmt(r.rate)} msg/s${extra}`,
    );
  },
);

await cleanUp(database, kinds, groups);
await database.close();
await deleteTopics(kafka, [topic]);

/** The runtime's group-commit batches in a round; "none" when its host committed one transaction per turn. */
function groupCommitCell(r: PassResult): string {
  if (!("stats" in r)) return "";
  const g = (r as RuntimePassResult).groupCommit;
  return g ? `${g.batches} (${g.largestBatch})` : "none";
}

const rows: (string | number)[][] = [];
for (let round = 0; round < ROUNDS; round++) {
  for (const [name, list] of results) {
    const r = list[round] as PassResult;
    rows.push([
      round + 1,
      name,
      r.records,
      fmt(r.ms),
      fmt(r.rate),
      fmt(r.msFromConnect),
      `${r.cpu.process} / ${r.cpu.machine}`,
      groupCommitCell(r),
    ]);
  }
}
const med = (name: string) => median((results.get(name) ?? []).map((r) => r.rate));
/** The same rate with the clock started at connect (group join and first fetch included). */
const medConnect = (name: string) =>
  median((results.get(name) ?? []).map((r) => perSecond(r.records, r.msFromConnect)));
const RUNTIMES = [
  "pitstop runtime (no-op actor, noopTurns skip)",
  "pitstop runtime (no-op actor, noopTurns commit)",
];
const summary = (runtimeName: string, name: string, goal: number) => {
  const runtime = med(runtimeName);
  const runtimeConnect = medConnect(runtimeName);
  return [
    runtimeName,
    name,
    fmt(runtime),
    fmt(med(name)),
    ratio(runtime, med(name)),
    `>= ${goal.toFixed(1)}x`,
    runtime / med(name) >= goal ? "met" : "missed",
    ratio(runtimeConnect, medConnect(name)),
  ];
};

console.log(`## No-op handler throughput\n\n${machineNote()}\n`);
console.log(`Runtime measured: ${codeAtStart}.\n`);
const codeAtEnd = codeState();
if (!sameCode(codeAtEnd, codeAtStart))
  console.log(`**The runtime changed during this run**; at the end: ${codeAtEnd}.\n`);
console.log(
  `${records} records, ${PARTITIONS} partitions, ${KEYS} keys; Postgres pool ${POOL}; ${ROUNDS} rounds, interleaved; host tuning: ${JSON.stringify(TUNING) === "{}" ? "defaults" : JSON.stringify(TUNING)}.\n`,
);
console.log(
  table(
    [
      "round",
      "contender",
      "records",
      "ms first to last record",
      "msg/s",
      "ms from connect",
      "CPU % process / machine",
      "group commit: batches (largest)",
    ],
    rows,
  ),
);
console.log();
console.log(
  table(
    [
      "runtime",
      "baseline",
      "runtime median msg/s",
      "baseline median msg/s",
      "ratio",
      "goal",
      "verdict",
      "ratio from connect",
    ],
    RUNTIMES.flatMap((r) => [summary(r, "kafkajs eachBatch", 0.8), summary(r, "kafkajs eachMessage", 1.0)]),
  ),
);
console.log(`\nwall time ${elapsed()}`);
process.exit(0);
