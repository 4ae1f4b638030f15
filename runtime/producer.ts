/**
 * A kafkajs producer that coalesces concurrent sends, and is made again after a send fails.
 *
 * Coalescing: kafkajs' idempotent producer keeps one request in flight per broker, so sends issued while one is
 * in flight would each wait for the one before (one round trip per send: a ceiling of a few hundred sends a
 * second). Instead, each topic has a lane: sends to a topic that arrive while one of its requests is in flight
 * are queued and go out together in its next request, in the order they were made, so per-partition order is
 * kept as with one send each. Topics' lanes are independent: a topic that cannot be published to (missing,
 * unauthorised: kafkajs retries its metadata for seconds) holds up only its own sends.
 * kafkajs' idempotent producer can be left unusable by
 * a broker failover (its sequence numbers out of step with the new leader's: "out of order sequence number",
 * tulios/kafkajs#598, until the producer is made again), and a producer that failed once has nothing worth
 * keeping: the next send gets a fresh one (a new producer id; a record sent twice is deduped by its eventId).
 * Sends still running on the replaced producer finish on it; it is disconnected a little later.
 */
import type { Kafka, Message, Producer, ProducerConfig, ProducerRecord } from "kafkajs";
import type { Logger } from "./logger.ts";

/** How long a replaced producer is kept for the sends still running on it. */
const RETIRE_AFTER_MS = 30_000;
/** Records in one coalesced request at most (kafkajs' and the broker's request size stay small). */
const MAX_RECORDS_PER_REQUEST = 1000;

interface QueuedSend {
  messages: Message[];
  resolve(): void;
  reject(error: unknown): void;
}

/** A topic's sends: queued ones, and whether a request of the topic is in flight. */
interface Lane {
  queue: QueuedSend[];
  flushing: boolean;
}

export class ReplaceableProducer {
  private current: Promise<Producer> | undefined;
  private readonly retiring = new Set<Producer>();
  private closed = false;
  private readonly lanes = new Map<string, Lane>();
  readonly stats = { replaced: 0, requests: 0, records: 0 };

  constructor(
    private readonly kafka: Kafka,
    private readonly config: ProducerConfig,
    private readonly log: Logger,
  ) {}

  /** Sends the records (acks from every in-sync replica); resolves once they are written. */
  send(record: Pick<ProducerRecord, "topic" | "messages">): Promise<void> {
    if (this.closed) return Promise.reject(new Error("the producer is closed"));
    let lane = this.lanes.get(record.topic);
    if (!lane) {
      lane = { queue: [], flushing: false };
      this.lanes.set(record.topic, lane);
    }
    const { queue } = lane;
    const sent = new Promise<void>((resolve, reject) => {
      queue.push({ messages: record.messages, resolve, reject });
    });
    if (!lane.flushing) void this.flush(record.topic, lane);
    return sent;
  }

  /** Sends what is queued for the topic, one request at a time, until its queue is empty. */
  private async flush(topic: string, lane: Lane): Promise<void> {
    lane.flushing = true;
    try {
      while (lane.queue.length > 0) {
        let count = 0;
        let take = 0;
        while (take < lane.queue.length && (take === 0 || count < MAX_RECORDS_PER_REQUEST)) {
          count += (lane.queue[take] as QueuedSend).messages.length;
          take++;
        }
        const batch = lane.queue.splice(0, take);
        try {
          await this.request(
            topic,
            batch.flatMap((s) => s.messages),
          );
          for (const s of batch) s.resolve();
        } catch (error) {
          for (const s of batch) s.reject(error);
        }
      }
    } finally {
      lane.flushing = false;
      if (this.lanes.get(topic) === lane && lane.queue.length === 0) this.lanes.delete(topic);
    }
  }

  private async request(topic: string, messages: Message[]): Promise<void> {
    const connecting = this.current ?? this.connect();
    let producer: Producer;
    try {
      producer = await connecting;
    } catch (error) {
      if (this.current === connecting) this.current = undefined;
      throw error;
    }
    this.stats.requests++;
    this.stats.records += messages.length;
    try {
      await producer.send({ topic, acks: -1, messages });
    } catch (error) {
      if (this.current === connecting && !isTopicProblem(error)) this.retire(producer, error);
      throw error;
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    // The sends already queued go out first (bounded: a broker out of reach must not hold the close up).
    for (const until = Date.now() + 5000; this.lanes.size > 0 && Date.now() < until; ) await Bun.sleep(5);
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
