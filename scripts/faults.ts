/**
 * The fault harness: `npm run faults -- [scenario ...] [--long] [--keep]`. Runs each scenario (all by default)
 * against real processes of the system, prints its report, and writes it to .cache/faults/<run>/report.json;
 * with --long (10 minutes a scenario) the reports also go to docs/reliability.md with the command, commit and
 * machine. Exits 1 if any scenario found a violation. Needs what `npm start` needs (it starts Kafka itself).
 */
import { execSync } from "node:child_process";
import { appendFileSync, existsSync, writeFileSync } from "node:fs";
import { cpus, hostname, totalmem } from "node:os";
import { join } from "node:path";
import { loadConfig } from "../config.ts";
import { formatReport, runScenario } from "../faults/run.ts";
import { scenarios } from "../faults/scenarios.ts";
import { killEverythingStarted } from "../faults/system.ts";
import { ensureServices, serviceSpecs } from "../infra/services.ts";

const args = process.argv.slice(2);
const long = args.includes("--long");
const keep = args.includes("--keep");
const names = args.filter((a) => !a.startsWith("--"));
const unknown = names.filter((n) => !scenarios.some((s) => s.name === n));
if (unknown.length > 0) {
  console.error(
    `unknown scenario ${unknown.join(", ")}; the scenarios: ${scenarios.map((s) => s.name).join(", ")}`,
  );
  process.exit(2);
}
// Stopped by hand: take the run's processes down too, or they run on (a killed host holds nothing; a live one
// would go on consuming the run's topics).
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, () => {
    killEverythingStarted();
    process.exit(130);
  });
}
const chosen = names.length ? scenarios.filter((s) => names.includes(s.name)) : scenarios;
const config = loadConfig({ ...process.env, NODE_ENV: "development" });
await ensureServices(
  serviceSpecs({
    postgres: "postgres://postgres@127.0.0.1:5432/postgres",
    redis: config.redis.url,
    nats: config.nats.servers,
  }),
  { start: true },
);

const commit = execSync("git rev-parse --short HEAD", { encoding: "utf8" }).trim();
const dirty = execSync("git status --porcelain", { encoding: "utf8" }).trim() !== "";
const machine = `${hostname()}: ${cpus().length} cores, ${Math.round(totalmem() / 2 ** 30)} GiB, Bun ${Bun.version}`;
const command = `npm run faults -- ${args.join(" ")}`.trim();
let failed = 0;
for (const scenario of chosen) {
  const report = await runScenario(scenario, { long, keep });
  const text = formatReport(report);
  console.log(`\n${text}`);
  writeFileSync(join(report.logDir, "report.json"), JSON.stringify(report, null, 2));
  if (long) {
    const doc = join(import.meta.dir, "..", "docs", "reliability.md");
    if (!existsSync(doc)) writeFileSync(doc, "# Reliability: the fault harness's long runs\n\n");
    appendFileSync(
      doc,
      `\n\`${command}\` at commit ${commit}${dirty ? " (with uncommitted changes)" : ""}, on ${machine}\n\n${text}`,
    );
  }
  if (!report.passed) failed++;
}
console.log(`\n${chosen.length - failed} of ${chosen.length} scenarios passed`);
process.exit(failed > 0 ? 1 : 0);
