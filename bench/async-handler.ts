/**
 * Benchmark 2: a 5 ms async handler (`await Bun.sleep(5)`), 1,000 keys over 10 partitions. The runtime (turns of
 * different keys run concurrently inside a partition, one at a time per key) against plain kafkajs `eachMessage`
 * with `partitionsConsumedConcurrently: 10` sleeping 5 ms per message (one message at a time per partition), on
 * the same records, interleaved round by round. Messages/s from the first record to the last record handled.
 *
 * Order check: the runtime's actor keeps the last sequence number per key and counts violations (a message whose
 * seq is not last + 1); after each round every key must be at its last step, each step applied once, 0 violations.
 *
 * Goal (from the issue): runtime >= 5x the kafkajs baseline.
 *
 *   node_modules/.bin/bun bench/async-handler.ts
 *
 * Knobs: BENCH_RECORDS (10000), BENCH_KEYS (1000), BENCH_ROUNDS (3), BENCH_PG_POOL (10, the system's pool size).
 */
import { Type } from "@sinclair/typebox";
import { openDatabase } from "../db/index.ts";
import { defineActor } from "../runtime/index.ts";
import {
  cleanUp,
  codeState,
  deleteTopics,
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
const RECORDS = Number(process.env.BENCH_RECORDS ?? 10_000);
const KEYS = Number(process.env.BENCH_KEYS ?? 1000);
const POOL = Number(process.env.BENCH_PG_POOL ?? 10);
const PARTITIONS = 10;
const TUNING = tuningFromEnv();
const SLEEP_MS = 5;

const { config, kafka } = await setup("async");
const database = openDatabase(config.postgres.url, { max: POOL });
const topic = await freshTopic(kafka, "async", PARTITIONS);
const keys = Array.from({ length: KEYS }, (_, i) => `k${i}`);
const perKey = Math.ceil(RECORDS / KEYS);
const records = await produceSteps(kafka, topic, keys, perKey);
console.error(`[async] ${records} records over ${PARTITIONS} partitions, ${KEYS} keys on ${topic}`);

interface SeqState {
  lastSeq: number;
  count: number;
  violations: number;
}

const kinds: string[] = [];
const groups: string[] = [];
function sequenceActor() {
  const kind = `bench-async-${shortId()}`;
  kinds.push(kind);
  return defineActor({
    kind,
    mailbox: topic,
    initialState: (): SeqState => ({ lastSeq: 0, count: 0, violations: 0 }),
    messages: { STEP: Type.Object({ seq: Type.Integer() }) },
    async handle(state, message) {
      await Bun.sleep(SLEEP_MS); // the handler's simulated I/O
      const { seq } = message.payload;
      return {
        state: {
          lastSeq: seq,
          count: state.count + 1,
          violations: state.violations + (seq === state.lastSeq + 1 ? 0 : 1),
        },
      };
    },
  });
}

interface OrderCheck {
  keys: number;
  complete: number;
  violations: number;
}

/** Reads the kind's committed states: keys present, keys at their last step with each step once, violations. */
async function orderCheck(kind: string): Promise<OrderCheck> {
  const rows = await database.sql<{ state: string | SeqState }[]>`
    select state from actor_state where kind = ${kind}`;
  let complete = 0;
  let violations = 0;
  for (const row of rows) {
    const state = (typeof row.state === "string" ? JSON.parse(row.state) : row.state) as SeqState;
    violations += state.violations;
    if (state.lastSeq === perKey && state.count === perKey) complete++;
  }
  return { keys: rows.length, complete, violations };
}

type Result = PassResult & { order?: OrderCheck; stats?: RuntimePassResult["stats"] };

const RUNTIME = "pitstop runtime (5 ms actor)";
const BASELINE = "kafkajs eachMessage, 10 partitions concurrently";
const results = await interleave<Result>(
  ROUNDS,
  [
    {
      name: BASELINE,
      run: () => eachMessagePass(kafka, topic, records, { concurrency: 10, work: () => Bun.sleep(SLEEP_MS) }),
    },
    {
      name: RUNTIME,
      run: async () => {
        const actor = sequenceActor();
        const result = await runtimePass(config, database, actor, records, TUNING);
        groups.push(result.groupId);
        return { ...result, order: await orderCheck(actor.kind) };
      },
    },
  ],
  (name, round, r) => {
    const extra = r.order
      ? ` keys=${r.order.keys} complete=${r.order.complete} violations=${r.order.violations} skipped=${r.stats?.skipped} duplicates=${r.stats?.duplicates} retries=${r.stats?.retries}`
      : "";
    console.error(
      `[async] round ${round} ${name}: ${r.records} in ${fmt(r.ms)} ms = ${fmt(r.rate)} msg/s${extra}`,
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
    const r = list[round] as Result;
    rows.push([
      round + 1,
      name,
      r.records,
      fmt(r.ms),
      fmt(r.rate),
      fmt(r.msFromConnect),
      `${r.cpu.process} / ${r.cpu.machine}`,
      groupCommitCell(r),
      r.order ? `${r.order.violations} (${r.order.complete}/${KEYS} keys complete)` : "",
    ]);
  }
}
const med = (name: string) => median((results.get(name) ?? []).map((r) => r.rate));
const medConnect = (name: string) =>
  median((results.get(name) ?? []).map((r) => perSecond(r.records, r.msFromConnect)));
const runtime = med(RUNTIME);
const baseline = med(BASELINE);
const violations = (results.get(RUNTIME) ?? []).reduce((sum, r) => sum + (r.order?.violations ?? 0), 0);
const incomplete = (results.get(RUNTIME) ?? []).filter((r) => r.order?.complete !== KEYS).length;

console.log(`## 5 ms async handler\n\n${machineNote()}\n`);
console.log(`Runtime measured: ${codeAtStart}.\n`);
const codeAtEnd = codeState();
if (!sameCode(codeAtEnd, codeAtStart))
  console.log(`**The runtime changed during this run**; at the end: ${codeAtEnd}.\n`);
console.log(
  `${records} records (${perKey} per key), ${PARTITIONS} partitions, ${KEYS} keys, handler sleeps ${SLEEP_MS} ms; Postgres pool ${POOL}; ${ROUNDS} rounds, interleaved; host tuning: ${JSON.stringify(TUNING) === "{}" ? "defaults" : JSON.stringify(TUNING)}.\n`,
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
      "order violations",
    ],
    rows,
  ),
);
console.log();
console.log(
  table(
    [
      "contender",
      "median msg/s",
      "runtime / baseline",
      "goal",
      "verdict",
      "median msg/s from connect",
      "runtime / baseline from connect",
    ],
    [
      [
        BASELINE,
        fmt(baseline),
        ratio(runtime, baseline),
        ">= 5x",
        runtime / baseline >= 5 ? "met" : "missed",
        fmt(medConnect(BASELINE)),
        ratio(medConnect(RUNTIME), medConnect(BASELINE)),
      ],
      [RUNTIME, fmt(runtime), "", "", "", fmt(medConnect(RUNTIME)), ""],
    ],
  ),
);
console.log(
  `\norder check: ${violations} violations over ${ROUNDS} runtime rounds; rounds with a key not at step ${perKey}: ${incomplete}`,
);
console.log(`\nwall time ${elapsed()}`);
process.exit(0);
