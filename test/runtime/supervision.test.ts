import { afterAll, describe, expect, test } from "bun:test";
import type { KafkaMessage } from "kafkajs";
import { DLT_HEADERS, type Host, listDeadLetters, replayDeadLetters } from "../../runtime/index.ts";
import { encodeEnvelope, newEnvelope } from "../../topics/index.ts";
import { uniqueName, waitFor } from "../support.ts";
import {
  actorStates,
  database,
  freshTopics,
  kafka,
  type SequenceState,
  sendSteps,
  sequenceActor,
  testHost,
} from "./fixtures.ts";

const hosts: Host[] = [];
afterAll(() => Promise.all(hosts.map((h) => h.stop())));

async function started(host: Host) {
  hosts.push(host);
  await host.start();
  return host;
}

async function stateOf(kind: string, key: string) {
  return (await actorStates<SequenceState>(kind, [key])).get(key)?.state;
}

/** Reads `count` records of a topic from its start with a group of its own. */
async function readTopic(topic: string, count: number): Promise<KafkaMessage[]> {
  const consumer = kafka.consumer({ groupId: uniqueName("reader") });
  const seen: KafkaMessage[] = [];
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  await consumer.run({ eachMessage: async ({ message }) => void seen.push(message) });
  try {
    await waitFor(() => seen.length >= count, { timeoutMs: 30_000, what: `${count} records on ${topic}` });
    return seen;
  } finally {
    await consumer.disconnect();
  }
}

const header = (m: KafkaMessage, name: string) => m.headers?.[name]?.toString();

describe("supervision", () => {
  test("a retryable failure is retried in the key's own mailbox while other keys of the partition keep flowing", async () => {
    const { mailbox } = await freshTopics("retry", 1);
    const kind = uniqueName("retry");
    const host = await started(
      testHost({
        actors: [
          sequenceActor(kind, mailbox, undefined, {
            supervision: { backoff: { baseMs: 400, maxMs: 400, jitter: 0 } },
            failWhen: (key, _seq, attempt) => (key === "flaky" && attempt <= 2 ? "retryable" : undefined),
          }),
        ],
      }),
    );
    const others = Array.from({ length: 20 }, (_, i) => `other-${i}`);
    await sendSteps(mailbox, ["flaky", ...others], 1);
    // The others finish while "flaky" waits out its two backoffs (2 x 400 ms) on the same single partition.
    await waitFor(async () => (await actorStates<SequenceState>(kind, others)).size === others.length, {
      what: "other keys done",
    });
    const flakyMeanwhile = await stateOf(kind, "flaky");
    await waitFor(async () => (await stateOf(kind, "flaky"))?.lastSeq === 1, { what: "flaky done" });
    expect(flakyMeanwhile).toBeUndefined();
    expect(host.stats().actors[kind]?.retries).toBe(2);
    expect(await listDeadLetters(database.db, { consumer: kind })).toEqual([]);
  }, 60_000);

  test("exhausted retries and non-retryable failures go to the dead-letter table and topic with their provenance", async () => {
    const { mailbox, dlt } = await freshTopics("dead", 2);
    const kind = uniqueName("dead");
    const host = await started(
      testHost({
        actors: [
          sequenceActor(kind, mailbox, undefined, {
            failWhen: (key, seq) => (seq === 2 ? (key === "a" ? "retryable" : "terminal") : undefined),
          }),
        ],
      }),
    );
    await sendSteps(mailbox, ["a", "b"], 3);
    await waitFor(async () => (await listDeadLetters(database.db, { consumer: kind })).length === 2, {
      what: "two dead letters",
    });
    const letters = await listDeadLetters(database.db, { consumer: kind });
    const byKey = Object.fromEntries(letters.map((l) => [l.messageKey, l]));
    expect(byKey.a).toMatchObject({
      errorClass: "RetryableError",
      attempts: 3,
      retryable: true,
      status: "dead",
    });
    expect(byKey.b).toMatchObject({
      errorClass: "TerminalError",
      attempts: 1,
      retryable: false,
      status: "dead",
    });
    expect(byKey.a?.host).toBe(host.hostId);
    // "continue" policy: step 3 still applied after step 2 was dead-lettered (one gap in the sequence).
    await waitFor(
      async () => (await stateOf(kind, "a"))?.lastSeq === 3 && (await stateOf(kind, "b"))?.lastSeq === 3,
    );
    expect(await stateOf(kind, "a")).toEqual({ lastSeq: 3, count: 2, violations: 1, failures: 0 });

    const records = await readTopic(dlt, 2);
    const a = records.find((m) => m.key?.toString() === "a") as KafkaMessage;
    expect(header(a, DLT_HEADERS.topic)).toBe(mailbox);
    expect(header(a, DLT_HEADERS.offset)).toBe(String(byKey.a?.sourceOffset));
    expect(header(a, DLT_HEADERS.partition)).toBe(String(byKey.a?.sourcePartition));
    expect(header(a, DLT_HEADERS.key)).toBe("a");
    expect(header(a, DLT_HEADERS.errorClass)).toBe("RetryableError");
    expect(header(a, DLT_HEADERS.errorMessage)).toBe("step 2 failed");
    expect(header(a, DLT_HEADERS.attempts)).toBe("3");
    expect(header(a, DLT_HEADERS.consumer)).toBe(kind);
    expect(header(a, DLT_HEADERS.host)).toBe(host.hostId);
    expect(Date.parse(header(a, DLT_HEADERS.lastFailure) ?? "")).toBeGreaterThanOrEqual(
      Date.parse(header(a, DLT_HEADERS.firstFailure) ?? ""),
    );
    expect(JSON.parse(a.value?.toString() ?? "{}").payload).toEqual({ seq: 2 });
  }, 60_000);

  test("poison records (bad JSON, schema violations, unknown types, no key) are dead-lettered and the partition moves on", async () => {
    const { mailbox } = await freshTopics("poison", 1);
    const kind = uniqueName("poison");
    await started(testHost({ actors: [sequenceActor(kind, mailbox)] }));
    // Idempotent: a plain producer that retries a request after a partial failure writes records twice.
    const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
    await producer.connect();
    const good = (seq: number) =>
      encodeEnvelope(newEnvelope({ eventType: "STEP", entityId: "k", payload: { seq } }));
    const envelope = (type: string, payload: Record<string, unknown>) =>
      JSON.stringify(newEnvelope({ eventType: type, entityId: "k", payload }));
    await producer.send({
      topic: mailbox,
      messages: [
        { key: "k", value: good(1) },
        { key: "k", value: "{not json" },
        { key: "k", value: envelope("STEP", { seq: "two" }) },
        { key: "k", value: envelope("EXPLODE", {}) },
        { key: "k", value: JSON.stringify({ hello: "world" }) },
        { key: null, value: good(2) },
        { key: "k", value: good(2) },
      ],
    });
    await producer.disconnect();
    await waitFor(async () => (await stateOf(kind, "k"))?.lastSeq === 2, {
      what: "good records after poison",
    });
    expect(await stateOf(kind, "k")).toEqual({ lastSeq: 2, count: 2, violations: 0, failures: 0 });
    // Different keys run concurrently: order the letters by where they came from.
    const letters = (await listDeadLetters(database.db, { consumer: kind })).sort((x, y) =>
      Number(x.sourceOffset - y.sourceOffset),
    );
    expect(letters.map((l) => l.errorClass)).toEqual(Array(5).fill("DecodeError"));
    expect(letters.map((l) => l.attempts)).toEqual([1, 1, 1, 1, 1]);
    expect(letters[0]?.value?.toString()).toBe("{not json");
    expect(letters.map((l) => l.errorMessage)).toEqual([
      expect.stringContaining("not JSON"),
      expect.stringContaining("/seq"),
      expect.stringContaining("unknown message type EXPLODE"),
      expect.stringContaining("not a valid envelope"),
      expect.stringContaining("no key"),
    ]);
  }, 60_000);

  test("with the park policy a failed key holds its later messages, in order, until an operator replays it", async () => {
    const { mailbox } = await freshTopics("park", 2);
    const kind = uniqueName("park");
    const broken = new Set(["p"]);
    const host = await started(
      testHost({
        actors: [
          sequenceActor(kind, mailbox, undefined, {
            supervision: { onDeadLetter: "park" },
            failWhen: (key, seq) => (broken.has(key) && seq === 2 ? "terminal" : undefined),
          }),
        ],
      }),
    );
    await sendSteps(mailbox, ["p", "q"], 4);
    await waitFor(
      async () => (await listDeadLetters(database.db, { consumer: kind, key: "p" })).length === 3,
      {
        what: "one dead and two parked letters for p",
      },
    );
    const held = await listDeadLetters(database.db, { consumer: kind, key: "p" });
    expect(held.map((l) => [l.status, JSON.parse(l.value?.toString() ?? "{}").payload.seq])).toEqual([
      ["dead", 2],
      ["parked", 3],
      ["parked", 4],
    ]);
    await waitFor(async () => (await stateOf(kind, "q"))?.lastSeq === 4, { what: "q unaffected" });
    expect(await stateOf(kind, "p")).toEqual({ lastSeq: 1, count: 1, violations: 0, failures: 0 });

    // The operator fixes the cause and replays the key: 2, 3, 4 are handled in order.
    broken.delete("p");
    const replayed = await replayDeadLetters(database.sql, { consumer: kind, key: "p" });
    expect(replayed).toEqual(held.map((l) => l.id));
    await waitFor(async () => (await stateOf(kind, "p"))?.lastSeq === 4, { what: "p replayed" });
    expect(await stateOf(kind, "p")).toEqual({ lastSeq: 4, count: 4, violations: 0, failures: 0 });
    expect((await listDeadLetters(database.db, { consumer: kind, key: "p" })).map((l) => l.status)).toEqual([
      "replayed",
      "replayed",
      "replayed",
    ]);
    expect(host.stats().actors[kind]?.parked).toBe(2);
  }, 60_000);
});
