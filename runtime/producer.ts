/**
 * A kafkajs producer that is made again after a send fails. kafkajs' idempotent producer can be left unusable by
 * a broker failover (its sequence numbers out of step with the new leader's: "out of order sequence number",
 * tulios/kafkajs#598, until the producer is made again), and a producer that failed once has nothing worth
 * keeping: the next send gets a fresh one (a new producer id; a record sent twice is deduped by its eventId).
 * Sends still running on the replaced producer finish on it; it is disconnected a little later.
 */
import type { Kafka, Producer, ProducerConfig, ProducerRecord, RecordMetadata } from "kafkajs";
import type { Logger } from "./logger.ts";

/** How long a replaced producer is kept for the sends still running on it. */
const RETIRE_AFTER_MS = 30_000;

export class ReplaceableProducer {
  private current: Promise<Producer> | undefined;
  private readonly retiring = new Set<Producer>();
  private closed = false;
  readonly stats = { replaced: 0 };

  constructor(
    private readonly kafka: Kafka,
    private readonly config: ProducerConfig,
    private readonly log: Logger,
  ) {}

  async send(record: ProducerRecord): Promise<RecordMetadata[]> {
    if (this.closed) throw new Error("the producer is closed");
    const connecting = this.current ?? this.connect();
    let producer: Producer;
    try {
      producer = await connecting;
    } catch (error) {
      if (this.current === connecting) this.current = undefined;
      throw error;
    }
    try {
      return await producer.send(record);
    } catch (error) {
      if (this.current === connecting && !isTopicProblem(error)) this.retire(producer, error);
      throw error;
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    const producer = await this.current?.catch(() => undefined);
    this.current = undefined;
    await Promise.all([producer, ...this.retiring].map((p) => p?.disconnect().catch(() => {})));
    this.retiring.clear();
  }

  private connect(): Promise<Producer> {
    const producer = this.kafka.producer(this.config);
    this.current = producer.connect().then(
      () => producer,
      async (error: unknown) => {
        await producer.disconnect().catch(() => {}); // a half-made producer holds sockets and timers
        throw error;
      },
    );
    return this.current;
  }

  private retire(producer: Producer, error: unknown): void {
    this.current = undefined;
    this.stats.replaced++;
    this.retiring.add(producer);
    this.log.warn({ err: error }, "producer send failed; the next send makes a new producer");
    setTimeout(() => {
      this.retiring.delete(producer);
      void producer.disconnect().catch(() => {});
    }, RETIRE_AFTER_MS).unref();
  }
}

/** Errors about the topic, not the producer (missing, unauthorised): a new producer would fail the same way. */
const TOPIC_ERRORS = new Set([
  "UNKNOWN_TOPIC_OR_PARTITION",
  "TOPIC_AUTHORIZATION_FAILED",
  "INVALID_TOPIC_EXCEPTION",
]);

function isTopicProblem(error: unknown): boolean {
  for (let e = error as { type?: string; originalError?: unknown; cause?: unknown } | undefined; e; ) {
    if (e.type && TOPIC_ERRORS.has(e.type)) return true;
    e = (e.originalError ?? e.cause) as typeof e;
  }
  return false;
}
