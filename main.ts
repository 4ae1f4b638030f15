/**
 * Pitstop, all in one process: brings up its dependencies (see infra/), starts the actor host, then serves HTTP.
 * `npm start` runs this file. SIGTERM or SIGINT stops taking requests, answers those in flight (bounded by
 * SHUTDOWN_GRACE_MS), drains the host's running turns and commits their offsets, closes the connections, exits.
 */
import { ConfigError, loadConfig } from "./config.ts";
import { ensureInfra, InfraError } from "./infra/index.ts";
import { createLogger } from "./runtime/index.ts";
import { createSystem } from "./system.ts";

/** After SIGTERM, requests are still taken this long (see stop below). */
const DRAIN_DELAY_MS = 1000;

async function main(): Promise<void> {
  const config = loadConfig();
  const log = createLogger(config.logLevel);
  const started = performance.now();
  const report = await ensureInfra(config);
  log.info(
    {
      services: report.services,
      kafka: report.kafka,
      database: report.database,
      topicsCreated: report.topics.created.length,
      replicationFactor: report.topics.replicationFactor,
    },
    "dependencies ready",
  );
  for (const t of report.topics.underPartitioned) {
    log.warn(t, "topic has fewer partitions than the catalogue asks for; left unchanged");
  }
  const system = createSystem(config, log);
  const host = await system.startHost();
  log.info({ hostId: host.hostId, run: config.run }, "actor host started");
  // Without `http` in PITSTOP_RUN the process serves its ops endpoints only (/livez, /readyz, /healthz, /metrics).
  const server = system.app.listen({ hostname: config.http.host, port: config.http.port });
  log.info(
    {
      url: `http://${config.http.host}:${server.server?.port}`,
      serves: config.run.http ? "the API and the ops endpoints" : "the ops endpoints only",
      readyInMs: Math.round(performance.now() - started),
    },
    "pitstop is serving",
  );

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal, graceMs: config.http.shutdownGraceMs }, "stopping");
    // Health says draining at once; requests sent just before the signal may not have been read yet, so they
    // are still served for a moment (DRAIN_DELAY_MS). Then new requests are refused (503, retryable), the
    // listener closes, and those in flight are answered — the actor host still runs, so with their real answers —
    // for at most the grace; then what is left (open WebSockets, a slow request) is closed and the host drains.
    system.shutdown("draining");
    await Bun.sleep(Math.min(DRAIN_DELAY_MS, config.http.shutdownGraceMs));
    system.shutdown("closing");
    if (server) {
      let timer: Timer | undefined;
      const finished = await Promise.race([
        server.stop(false).then(() => true),
        new Promise<boolean>((resolve) => {
          timer = setTimeout(() => resolve(false), config.http.shutdownGraceMs);
        }),
      ]);
      clearTimeout(timer);
      // Past the grace: close what is left. (Not after a graceful stop that finished: Elysia throws when asked to
      // stop a server that is no longer running, and the host would not be drained.)
      if (!finished) await server.stop(true).catch(() => {});
    }
    await system.close();
    process.exit(0);
  };
  // An operator's (and the fault harness's) look inside a running host without stopping it: its runtime stats,
  // every owned partition's backlog, running turns and positions, logged as one line.
  process.on("SIGUSR2", () => log.info({ stats: host.stats() }, "host stats"));
  process.on("SIGTERM", () => void stop("SIGTERM"));
  process.on("SIGINT", () => void stop("SIGINT"));
}

main().catch((error: unknown) => {
  // What a person can act on gets one line; anything else is a bug and keeps its stack.
  if (error instanceof InfraError || error instanceof ConfigError) {
    console.error(`pitstop: ${error.message}`);
  } else {
    console.error(error);
  }
  process.exit(1);
});
