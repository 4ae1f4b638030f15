/**
 * Operates the project's own Kafka cluster.
 *
 *   bun scripts/kafka.ts start  [--brokers 1|3]   start (or reuse) and wait until ready
 *   bun scripts/kafka.ts stop   [--brokers 1|3]   stop what this project started (default: both clusters)
 *   bun scripts/kafka.ts status [--brokers 1|3]   brokers, pids' resident memory
 */
import { parseArgs } from "node:util";
import { InfraError } from "../infra/infra-error.ts";
import { brokerRss, type ClusterSize, clusterLayout, startKafka, stopKafka } from "../infra/kafka-cluster.ts";

const { values, positionals } = parseArgs({
  args: Bun.argv.slice(2),
  options: { brokers: { type: "string" } },
  allowPositionals: true,
});
const command = positionals[0] ?? "status";
const sizes: ClusterSize[] = values.brokers === undefined ? [1, 3] : [Number(values.brokers) as ClusterSize];
if (!sizes.every((s) => s === 1 || s === 3) || !["start", "stop", "status"].includes(command)) {
  console.error("usage: bun scripts/kafka.ts start|stop|status [--brokers 1|3]");
  process.exit(2);
}

try {
  for (const size of sizes) {
    const name = `${size}-broker cluster`;
    if (command === "start") {
      if (values.brokers === undefined && size === 3) continue; // start defaults to the single broker
      const t0 = performance.now();
      const result = await startKafka(size);
      const how = result.started.length ? `started nodes ${result.started.join(",")}` : "already running";
      console.log(
        `${name}: ${how}; ready at ${result.brokers.join(",")} in ${Math.round(performance.now() - t0)} ms`,
      );
    } else if (command === "stop") {
      const stopped = await stopKafka(size);
      console.log(
        `${name}: ${stopped.length ? `stopped nodes ${stopped.join(",")}` : "nothing of ours running"}`,
      );
    } else {
      const rss = brokerRss(size);
      const nodes = clusterLayout(size).nodes.map((n) => {
        const kib = rss[n.id];
        return kib
          ? `node ${n.id} ${n.host}:${n.port} rss ${Math.round(kib / 1024)} MiB`
          : `node ${n.id} down`;
      });
      console.log(`${name}: ${nodes.join("; ")}`);
    }
  }
} catch (error) {
  if (!(error instanceof InfraError)) throw error;
  console.error(`pitstop: ${error.message}`);
  process.exit(1);
}
