/**
 * Profiles the runtime's per-record path alone (no baselines, records produced before the clock starts):
 *
 *   node_modules/.bin/bun --cpu-prof-md --cpu-prof-dir=/tmp/prof bench/profile-noop.ts
 *
 * Knobs: BENCH_RECORDS (200000), BENCH_KEYS (1000), BENCH_NOOP ("skip" | "commit", default skip), BENCH_TUNING
 * (JSON), BENCH_KEEP=1 (keep the topic), BENCH_TOPIC (consume a kept topic instead of producing).
 */
import { Type } from "@sinclair/typebox";
import { openDatabase } from "../db/index.ts";
import { defineActor } from "../runtime/index.ts";
import {
  cleanUp,
  deleteTopics,
  fmt,
  freshTopic,
  produceSteps,
  runtimePass,
  setup,
  shortId,
} from "./support.ts";

const RECORDS = Number(process.env.BENCH_RECORDS ?? 200_000);
const KEYS = Number(process.env.BENCH_KEYS ?? 1000);
const NOOP = process.env.BENCH_NOOP === "commit" ? "commit" : "skip";
const { config, kafka } = await setup("profile");
const database = openDatabase(config.postgres.url, { max: 10 });
// BENCH_TOPIC reuses records produced by an earlier run with BENCH_KEEP=1, so a profile holds consuming only.
const topic = process.env.BENCH_TOPIC ?? (await freshTopic(kafka, "profile", 10));
const keys = Array.from({ length: KEYS }, (_, i) => `k${i}`);
const records = process.env.BENCH_TOPIC
  ? RECORDS
  : await produceSteps(kafka, topic, keys, Math.ceil(RECORDS / KEYS));
const kind = `bench-profile-${shortId()}`;
const actor = defineActor({
  kind,
  mailbox: topic,
  initialState: () => ({ n: 0 }),
  messages: { STEP: Type.Object({ seq: Type.Integer() }) },
  noopTurns: NOOP,
  handle: (state) => ({ state }),
});
const result = await runtimePass(
  config,
  database,
  actor,
  records,
  JSON.parse(process.env.BENCH_TUNING ?? "{}"),
);
console.log(`${records} records, noopTurns ${NOOP}: ${fmt(result.rate)} msg/s, CPU ${result.cpu.process}%`);
await cleanUp(database, [kind], [result.groupId]);
await database.close();
if (process.env.BENCH_KEEP === "1") console.log(`kept ${topic}`);
else await deleteTopics(kafka, [topic]);
process.exit(0);
