/**
 * Evidence for the Kafka version decision (docs/kafka.md): for each API kafkajs uses, the range the broker
 * accepts and the version kafkajs 2.2.4 negotiates (the highest both support). A "none" means kafkajs could
 * not talk that API to this broker.
 *
 *   bun scripts/kafka-api-versions.ts [host:port]
 */
import { createRequire } from "node:module";
import "../topics/kafka.ts"; // applies the busy-loop fix before any connection exists

const require = createRequire(import.meta.url);
const Broker = require("kafkajs/src/broker/index.js");
const ConnectionPool = require("kafkajs/src/network/connectionPool.js");
const { createLogger, LEVELS } = require("kafkajs/src/loggers/index.js");
const apiKeys = require("kafkajs/src/protocol/requests/apiKeys.js") as Record<string, number>;
/** kafkajs' request folders are the API names in camelCase; the group coordinator lookup is FindCoordinator. */
const knownVersions = (name: string): number[] => {
  const folder = name === "GroupCoordinator" ? "findCoordinator" : name[0]?.toLowerCase() + name.slice(1);
  const { versions } = require(`kafkajs/src/protocol/requests/${folder}/index.js`) as { versions: string[] };
  return versions.map(Number).sort((a, b) => a - b);
};

const [host, port] = (Bun.argv[2] ?? "127.0.0.1:9092").split(":");
const logger = createLogger({ level: LEVELS.NOTHING, logCreator: () => () => {} });
const connectionPool = new ConnectionPool({
  host,
  port: Number(port),
  logger,
  socketFactory: require("kafkajs/src/network/socketFactory.js")(),
  connectionTimeout: 3000,
  requestTimeout: 10_000,
  maxInFlightRequests: null,
  clientId: "pitstop-api-versions",
});
const broker = new Broker({ connectionPool, logger });
await broker.connect();
const used = [
  "Produce",
  "Fetch",
  "ListOffsets",
  "Metadata",
  "OffsetCommit",
  "OffsetFetch",
  "GroupCoordinator",
  "JoinGroup",
  "Heartbeat",
  "LeaveGroup",
  "SyncGroup",
  "ApiVersions",
  "CreateTopics",
  "InitProducerId",
  "DescribeConfigs",
  "DescribeGroups",
];
console.log(`Kafka broker at ${host}:${port}, kafkajs 2.2.4\n`);
console.log("| API | broker accepts | kafkajs knows | negotiated |");
console.log("| --- | --- | --- | --- |");
for (const name of used) {
  const key = apiKeys[name];
  const range = key === undefined ? undefined : broker.versions[key];
  const known = knownVersions(name);
  const negotiated = range
    ? known.filter((v) => v >= range.minVersion && v <= range.maxVersion).at(-1)
    : undefined;
  const accepts = range ? `v${range.minVersion}-v${range.maxVersion}` : "not offered";
  console.log(
    `| ${name} | ${accepts} | v${known[0]}-v${known.at(-1)} | ${negotiated === undefined ? "none" : `v${negotiated}`} |`,
  );
}
await broker.disconnect();
