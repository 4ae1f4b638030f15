/**
 * A host in a process of its own, for the crash, zombie and rebalance tests: runs the sequence actor on the
 * mailbox named in the environment and prints "ready" once it has started; a "stats" line on stdin prints its
 * stats as one JSON line. SIGTERM stops it cleanly.
 */
import { createHost, openNats } from "../../runtime/index.ts";
import { testKafka, testLog } from "../support.ts";
import { config, database, kafka, sequenceActor } from "./fixtures.ts";

const env = (name: string) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is required`);
  return value;
};

// TEST_INSTANCE_ID: the host's stable name (HostOptions.instanceClientId), kept when it is started again.
const instance = process.env.TEST_INSTANCE_ID;
const clientId = instance ? `test.${instance}` : undefined;
const nats = process.env.TEST_NATS ? await openNats(config.nats.servers) : undefined;
const host = createHost({
  nats,
  natsPrefix: process.env.TEST_NATS,
  kafka: clientId ? testKafka(config, clientId) : kafka,
  instanceClientId: clientId,
  database,
  databaseUrl: config.postgres.url,
  log: testLog,
  groupPrefix: env("TEST_GROUP_PREFIX"),
  hostId: env("TEST_HOST_ID"),
  actors: [sequenceActor(env("TEST_KIND"), env("TEST_MAILBOX"), process.env.TEST_EVENTS)],
  tuning: { commitIntervalMs: 100, sessionTimeoutMs: 6000, heartbeatIntervalMs: 500, drainTimeoutMs: 5000 },
});
await host.start();
console.log("ready");
// A "stats" line on stdin: print the stats now (tests poll them without stopping the host). Not a signal: a
// SIGUSR2 was seen to go unanswered for 15 s now and then.
void (async () => {
  for await (const line of console) {
    if (line.trim() === "stats") console.log(JSON.stringify(host.stats()));
  }
})();
process.on("SIGTERM", async () => {
  await host.stop();
  console.log(JSON.stringify(host.stats()));
  process.exit(0);
});
