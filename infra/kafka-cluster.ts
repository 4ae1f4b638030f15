/**
 * The project's own Apache Kafka, in KRaft mode on loopback: jars fetched from Maven Central into a
 * git-ignored cache, storage formatted once, brokers started as detached JVMs whose pids we record.
 *
 * - `startKafka(size)` is idempotent: nodes already running (ours, or anything answering on the port) are reused.
 * - `stopKafka(size)` stops only the processes whose pid files this module wrote.
 * - Readiness is a poll of the cluster's metadata until every broker is registered, never a sleep.
 *
 * Kafka version: see docs/kafka.md (why 4.4.0 works with kafkajs 2.2.4, and the evidence).
 */
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createKafka } from "../topics/kafka.ts";
import { InfraError } from "./infra-error.ts";
import { isListening } from "./port.ts";

export const KAFKA_VERSION = "4.4.0";

const ROOT = join(import.meta.dir, "..");
const CACHE = join(ROOT, ".cache", "kafka");
const LIBS = join(CACHE, KAFKA_VERSION, "libs");
const POM = join(import.meta.dir, "kafka", "pom.xml");
const LOG4J = join(import.meta.dir, "kafka", "log4j2.yaml");

export type ClusterSize = 1 | 3;

export interface KafkaNode {
  id: number;
  host: string;
  port: number;
  controllerPort: number;
  dir: string;
}

export interface Cluster {
  name: string;
  size: ClusterSize;
  dir: string;
  nodes: KafkaNode[];
  brokers: string[];
}

/** The single broker listens on 9092; the 3-broker cluster on 19092, 19102 and 19112 (controllers at +1). */
export function clusterLayout(size: ClusterSize): Cluster {
  const name = size === 1 ? "single" : "triple";
  const dir = join(CACHE, "run", name);
  const base = size === 1 ? 9092 : 19092;
  const nodes = Array.from({ length: size }, (_, i) => ({
    id: i + 1,
    host: "127.0.0.1",
    port: base + i * 10,
    controllerPort: base + i * 10 + 1,
    dir: join(dir, `node-${i + 1}`),
  }));
  return { name, size, dir, nodes, brokers: nodes.map((n) => `${n.host}:${n.port}`) };
}

export interface StartResult {
  brokers: string[];
  /** Node ids this call started (empty when everything was already running). */
  started: number[];
  reused: number[];
}

/** Starts (or reuses) the cluster and waits until every broker is registered and answering. */
export async function startKafka(size: ClusterSize, opts: { timeoutMs?: number } = {}): Promise<StartResult> {
  const cluster = clusterLayout(size);
  const result: StartResult = { brokers: cluster.brokers, started: [], reused: [] };
  const listening = await Promise.all(cluster.nodes.map((n) => isListening(n.host, n.port)));
  if (listening.every(Boolean)) {
    await waitForBrokers(cluster, opts.timeoutMs ?? 90_000);
    result.reused = cluster.nodes.map((n) => n.id);
    return result;
  }
  ensureJars();
  const clusterId = ensureClusterId(cluster);
  for (const [i, node] of cluster.nodes.entries()) {
    if (listening[i] || ownedPid(node) !== undefined) {
      result.reused.push(node.id);
      continue;
    }
    startNode(cluster, node, clusterId);
    result.started.push(node.id);
  }
  await waitForBrokers(cluster, opts.timeoutMs ?? 90_000);
  return result;
}

/** Stops the nodes this project started (by pid file); anything else on those ports is left alone. */
export async function stopKafka(size: ClusterSize): Promise<number[]> {
  const cluster = clusterLayout(size);
  const stopped: number[] = [];
  await Promise.all(
    cluster.nodes.map(async (node) => {
      if (await stopNode(node, "SIGTERM")) stopped.push(node.id);
    }),
  );
  return stopped.sort();
}

/** Kills one node hard (fault tests). Returns false when this project was not running it. */
export async function killNode(size: ClusterSize, id: number): Promise<boolean> {
  const node = clusterLayout(size).nodes.find((n) => n.id === id);
  if (!node) throw new InfraError(`no node ${id} in a ${size}-broker cluster`);
  return stopNode(node, "SIGKILL");
}

/** Starts one stopped node of an already formatted cluster again (fault tests). */
export function restartNode(size: ClusterSize, id: number): void {
  const cluster = clusterLayout(size);
  const node = cluster.nodes.find((n) => n.id === id);
  if (!node) throw new InfraError(`no node ${id} in a ${size}-broker cluster`);
  if (ownedPid(node) === undefined) startNode(cluster, node, ensureClusterId(cluster));
}

/** Resident memory (KiB) of each running node this project started, read from /proc. */
export function brokerRss(size: ClusterSize): Record<number, number> {
  const rss: Record<number, number> = {};
  for (const node of clusterLayout(size).nodes) {
    const pid = ownedPid(node);
    if (pid === undefined) continue;
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const match = /VmRSS:\s+(\d+) kB/.exec(status);
    if (match?.[1]) rss[node.id] = Number(match[1]);
  }
  return rss;
}

export async function waitForBrokers(cluster: Cluster, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const kafka = createKafka({
    clientId: "pitstop-infra",
    brokers: cluster.brokers,
    overrides: { connectionTimeout: 1000, retry: { retries: 0 } },
  });
  let lastError: unknown;
  while (Date.now() < deadline) {
    for (const node of cluster.nodes) {
      const pid = readPid(node);
      if (pid !== undefined && !isAlive(pid)) {
        throw new InfraError(
          `Kafka node ${node.id} exited while starting; see ${join(node.dir, "server.log")}`,
        );
      }
    }
    const admin = kafka.admin();
    try {
      await admin.connect();
      const { brokers } = await admin.describeCluster();
      if (brokers.length >= cluster.size) return;
      lastError = new Error(`${brokers.length} of ${cluster.size} brokers registered`);
    } catch (error) {
      lastError = error;
    } finally {
      await admin.disconnect().catch(() => {});
    }
    await Bun.sleep(250); // poll interval of the readiness wait, not a guess at readiness
  }
  throw new InfraError(
    `Kafka (${cluster.brokers.join(",")}) was not ready within ${timeoutMs} ms: ${String(lastError)}; ` +
      `see ${cluster.dir}/node-*/server.log`,
    true,
  );
}

function ensureJars(): void {
  if (existsSync(join(LIBS, `kafka_2.13-${KAFKA_VERSION}.jar`)) && existsSync(join(LIBS, ".complete")))
    return;
  for (const tool of ["java", "mvn"]) {
    if (spawnSync("which", [tool]).status !== 0) {
      throw new InfraError(
        `Kafka needs ${tool === "java" ? "Java 17 (apt-get install openjdk-17-jre-headless)" : "Maven (apt-get install maven)"} ` +
          "to fetch and run the broker, or run `docker compose up -d` and set KAFKA_BROKERS",
      );
    }
  }
  console.error(`pitstop: fetching Apache Kafka ${KAFKA_VERSION} jars with Maven (first run only)...`);
  rmSync(LIBS, { recursive: true, force: true });
  const mvn = spawnSync(
    "mvn",
    [
      "-q",
      "-B",
      "-f",
      POM,
      `-Dkafka.version=${KAFKA_VERSION}`,
      "org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy-dependencies",
      "-DincludeScope=runtime",
      `-DoutputDirectory=${LIBS}`,
    ],
    { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] },
  );
  if (mvn.status !== 0) {
    const tail = `${mvn.stdout}\n${mvn.stderr}`.trim().split("\n").slice(-5).join(" | ");
    throw new InfraError(`Maven could not fetch the Kafka ${KAFKA_VERSION} jars: ${tail}`, true);
  }
  writeFileSync(join(LIBS, ".complete"), `${new Date().toISOString()}\n`);
}

function ensureClusterId(cluster: Cluster): string {
  const file = join(cluster.dir, "cluster.id");
  if (existsSync(file)) return readFileSync(file, "utf8").trim();
  mkdirSync(cluster.dir, { recursive: true });
  const out = spawnSync("java", ["-cp", `${LIBS}/*`, "kafka.tools.StorageTool", "random-uuid"], {
    encoding: "utf8",
  });
  const id = out.stdout
    .trim()
    .split("\n")
    .map((l) => l.trim())
    .find((l) => /^[A-Za-z0-9_-]{22}$/.test(l));
  if (out.status !== 0 || !id)
    throw new InfraError(`could not generate a Kafka cluster id: ${out.stderr.trim()}`);
  writeFileSync(file, `${id}\n`);
  return id;
}

function serverProperties(cluster: Cluster, node: KafkaNode): string {
  const rf = cluster.size;
  const minIsr = cluster.size >= 3 ? 2 : 1;
  return [
    "process.roles=broker,controller",
    `node.id=${node.id}`,
    `controller.quorum.voters=${cluster.nodes.map((n) => `${n.id}@${n.host}:${n.controllerPort}`).join(",")}`,
    `listeners=PLAINTEXT://${node.host}:${node.port},CONTROLLER://${node.host}:${node.controllerPort}`,
    `advertised.listeners=PLAINTEXT://${node.host}:${node.port}`,
    "controller.listener.names=CONTROLLER",
    "inter.broker.listener.name=PLAINTEXT",
    "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
    `log.dirs=${join(node.dir, "data")}`,
    // Topics are provisioned explicitly (topics/provision.ts); auto-creation would hide a missing topic.
    "auto.create.topics.enable=false",
    "num.partitions=10",
    `default.replication.factor=${rf}`,
    `min.insync.replicas=${minIsr}`,
    `offsets.topic.replication.factor=${rf}`,
    // Fewer internal partitions than the default 50: the first consumer group starts in a second, not ten.
    "offsets.topic.num.partitions=10",
    `transaction.state.log.replication.factor=${rf}`,
    `transaction.state.log.min.isr=${minIsr}`,
    "transaction.state.log.num.partitions=10",
    `share.coordinator.state.topic.replication.factor=${rf}`,
    `share.coordinator.state.topic.min.isr=${minIsr}`,
    // Local development: a group forms as soon as its first member joins.
    "group.initial.rebalance.delay.ms=0",
    "",
  ].join("\n");
}

function startNode(cluster: Cluster, node: KafkaNode, clusterId: string): void {
  mkdirSync(node.dir, { recursive: true });
  const props = join(node.dir, "server.properties");
  writeFileSync(props, serverProperties(cluster, node));
  if (!existsSync(join(node.dir, "data", "meta.properties"))) {
    const format = spawnSync(
      "java",
      [
        "-cp",
        `${LIBS}/*`,
        "kafka.tools.StorageTool",
        "format",
        "-t",
        clusterId,
        "-c",
        props,
        "--ignore-formatted",
      ],
      { encoding: "utf8" },
    );
    if (format.status !== 0) {
      throw new InfraError(`could not format Kafka storage for node ${node.id}: ${format.stderr.trim()}`);
    }
  }
  const heap = cluster.size === 1 ? "512m" : "384m";
  const out = openSync(join(node.dir, "stdout.log"), "a");
  // Detached, with its own files for output: the broker outlives this process and holds no pipe of ours.
  const child = spawn(
    "java",
    [
      "-Xms128m",
      `-Xmx${heap}`,
      "-XX:+UseG1GC",
      "-XX:MaxGCPauseMillis=20",
      "-XX:+ExitOnOutOfMemoryError",
      "-Djava.awt.headless=true",
      `-Dkafka.logs.dir=${node.dir}`,
      `-Dlog4j2.configurationFile=${LOG4J}`,
      `-Dpitstop.kafka.node=${node.dir}`,
      "-cp",
      `${LIBS}/*`,
      "kafka.Kafka",
      props,
    ],
    { detached: true, stdio: ["ignore", out, out] },
  );
  if (child.pid === undefined) throw new InfraError(`could not start Java for Kafka node ${node.id}`);
  writeFileSync(join(node.dir, "kafka.pid"), `${child.pid}\n`);
  child.unref();
}

function readPid(node: KafkaNode): number | undefined {
  const pidFile = join(node.dir, "kafka.pid");
  if (!existsSync(pidFile)) return undefined;
  const pid = Number(readFileSync(pidFile, "utf8").trim());
  return Number.isInteger(pid) && pid > 0 ? pid : undefined;
}

/** True while the process exists and is not a zombie waiting to be reaped. */
function isAlive(pid: number): boolean {
  try {
    return !/\) Z /.test(readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return false;
  }
}

/**
 * The pid in the node's pid file, if that process is alive and is really our broker (not a reused pid).
 * Only meaningful once the JVM is running: right after spawn the child may not have exec'd java yet.
 */
function ownedPid(node: KafkaNode): number | undefined {
  const pid = readPid(node);
  if (pid === undefined || !isAlive(pid)) return undefined;
  try {
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, "utf8");
    return cmdline.includes(`-Dpitstop.kafka.node=${node.dir}\0`) ? pid : undefined;
  } catch {
    return undefined;
  }
}

async function stopNode(node: KafkaNode, signal: "SIGTERM" | "SIGKILL"): Promise<boolean> {
  const pid = ownedPid(node);
  const pidFile = join(node.dir, "kafka.pid");
  if (pid === undefined) {
    rmSync(pidFile, { force: true });
    return false;
  }
  process.kill(pid, signal);
  const deadline = Date.now() + 30_000;
  while (ownedPid(node) !== undefined) {
    if (Date.now() > deadline) process.kill(pid, "SIGKILL");
    await Bun.sleep(100); // poll for the process to exit
  }
  rmSync(pidFile, { force: true });
  return true;
}
