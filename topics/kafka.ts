/**
 * The one place kafkajs clients are made: shared defaults, logs through our logger, and a fix for a known
 * kafkajs busy loop applied once before any client exists.
 */
import { createRequire } from "node:module";
import { type Admin, Kafka, type KafkaConfig, type logCreator, logLevel } from "kafkajs";

/**
 * kafkajs 2.2.4 re-arms a 1 ms timer forever once a connection has answered its first request, even when
 * nothing is pending: `throttledUntil` starts at -1, so `throttledUntil - Date.now()` is a huge negative
 * delay that timers clamp to 1 ms (Bun and Node 24 print TimeoutNegativeWarning). Unfixed upstream:
 * tulios/kafkajs#1704 and #1751, open PRs #1755 and #1768. We keep the original behaviour when requests are
 * pending or a throttle is running, and stop re-arming when there is nothing to check; `push` re-arms it.
 */
function patchRequestQueueBusyLoop(): void {
  const require = createRequire(import.meta.url);
  const RequestQueue = require("kafkajs/src/network/requestQueue/index.js") as {
    prototype: { scheduleCheckPendingRequests(): void; __pitstopPatched?: boolean };
  };
  const proto = RequestQueue.prototype;
  if (proto.__pitstopPatched) return;
  const original = proto.scheduleCheckPendingRequests;
  proto.scheduleCheckPendingRequests = function (this: { pending: unknown[]; throttledUntil: number }) {
    if (this.pending.length === 0 && this.throttledUntil <= Date.now()) return;
    original.call(this);
  };
  proto.__pitstopPatched = true;
}
patchRequestQueueBusyLoop();

export interface KafkaLogger {
  error(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
  debug(obj: object, msg: string): void;
}

export interface KafkaClientOptions {
  brokers: string[];
  clientId: string;
  logger?: KafkaLogger;
  /** Overrides for probes and tests (e.g. no retries). */
  overrides?: Partial<KafkaConfig>;
}

/** A kafkajs client with the project's defaults; its logs go to `logger` (silent without one). */
export function createKafka({ brokers, clientId, logger, overrides }: KafkaClientOptions): Kafka {
  process.env.KAFKAJS_NO_PARTITIONER_WARNING = "1"; // we use the default (murmur2, Java-compatible) partitioner
  const toLogger: logCreator = () => (entry) => {
    if (!logger) return;
    const { message, ...rest } = entry.log;
    const fields = { ...rest, kafkaNamespace: entry.namespace };
    if (entry.level === logLevel.ERROR) logger.error(fields, message);
    else if (entry.level === logLevel.WARN) logger.warn(fields, message);
    else if (entry.level === logLevel.INFO) logger.info(fields, message);
    else logger.debug(fields, message);
  };
  return new Kafka({
    clientId,
    brokers,
    logLevel: logger ? logLevel.WARN : logLevel.NOTHING,
    logCreator: toLogger,
    connectionTimeout: 3000,
    requestTimeout: 30_000,
    // Outlast a broker failover: a dead leader is fenced after broker.session.timeout.ms (9 s by default),
    // then a new one is elected. kafkajs' default retries give up after about 9 s; these keep going ~30 s.
    retry: { initialRetryTime: 300, maxRetryTime: 5000, retries: 10 },
    ...overrides,
  });
}

/**
 * Round trip to the cluster: the number of brokers its metadata lists. Give it a client without retries; an
 * admin client is connected if it is not (and again after an outage), a Kafka client gets a new one each call.
 */
export async function pingKafka(client: Kafka | Admin): Promise<number> {
  const admin = client instanceof Kafka ? client.admin() : client;
  try {
    await admin.connect(); // no-op while connected
    return (await admin.describeCluster()).brokers.length;
  } finally {
    if (admin !== client) await admin.disconnect().catch(() => {});
  }
}
