/**
 * Operates dead letters (see runtime/dead-letters.ts).
 *
 *   bun scripts/dead-letters.ts list   [--consumer KIND] [--key KEY] [--status dead|parked|replayed] [--limit N] [--json]
 *   bun scripts/dead-letters.ts replay --id 12,13            replay these dead letters
 *   bun scripts/dead-letters.ts replay --consumer KIND --key KEY   replay (and unpark) one key, in order
 *
 * Uses the configuration of config.ts (DATABASE_URL...). Replayed records go back to their source topics
 * through the outbox; a running host's relay publishes them.
 */
import { parseArgs } from "node:util";
import { ConfigError, loadConfig } from "../config.ts";
import { openDatabase } from "../db/index.ts";
import { listDeadLetters, replayDeadLetters } from "../runtime/index.ts";

const usage = `usage:
  bun scripts/dead-letters.ts list [--consumer KIND] [--key KEY] [--status dead|parked|replayed] [--limit N] [--json]
  bun scripts/dead-letters.ts replay --id 12,13
  bun scripts/dead-letters.ts replay --consumer KIND --key KEY`;

function fail(message: string): never {
  console.error(message);
  process.exit(2);
}

const { values, positionals } = parseArgs({
  args: Bun.argv.slice(2),
  options: {
    consumer: { type: "string" },
    key: { type: "string" },
    status: { type: "string" },
    limit: { type: "string" },
    id: { type: "string" },
    json: { type: "boolean", default: false },
  },
  allowPositionals: true,
  strict: true,
});
const command = positionals[0];
if (command !== "list" && command !== "replay") fail(usage);
if (values.status && !["dead", "parked", "replayed"].includes(values.status))
  fail("--status must be dead, parked or replayed");
const limit = values.limit === undefined ? 100 : Number(values.limit);
if (!Number.isInteger(limit) || limit < 1 || limit > 10_000) fail("--limit must be an integer 1-10000");
const ids = values.id?.split(",").map((s) => Number(s.trim()));
if (ids?.some((id) => !Number.isInteger(id) || id < 1))
  fail("--id must be a comma-separated list of positive integers");

let config: ReturnType<typeof loadConfig>;
try {
  config = loadConfig();
} catch (error) {
  if (error instanceof ConfigError) fail(`pitstop: ${error.message}`);
  throw error;
}
const database = openDatabase(config.postgres.url, { max: 2 });
try {
  if (command === "list") {
    const rows = await listDeadLetters(database.db, {
      consumer: values.consumer,
      key: values.key,
      status: values.status as "dead" | "parked" | "replayed" | undefined,
      limit,
    });
    if (values.json) {
      console.log(
        JSON.stringify(
          rows.map((r) => ({ ...r, sourceOffset: String(r.sourceOffset), value: r.value?.toString("utf8") })),
        ),
      );
    } else {
      for (const r of rows) {
        console.log(
          `#${r.id} ${r.status} ${r.consumer} ${r.sourceTopic}[${r.sourcePartition}]@${r.sourceOffset} key=${r.messageKey ?? "-"} ` +
            `${r.errorClass}: ${r.errorMessage} (attempts ${r.attempts}, last ${r.lastFailureAt.toISOString()})`,
        );
      }
      console.log(`${rows.length} dead letter(s)`);
    }
  } else {
    if (!ids && !(values.consumer && values.key !== undefined))
      fail("replay needs --id, or --consumer and --key");
    const replayed = await replayDeadLetters(
      database.sql,
      ids ? { ids } : { consumer: values.consumer, key: values.key },
    );
    console.log(
      values.json
        ? JSON.stringify({ replayed })
        : `replayed ${replayed.length}: ${replayed.join(", ") || "-"}`,
    );
  }
} finally {
  await database.close();
}
