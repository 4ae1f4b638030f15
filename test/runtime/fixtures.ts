/** Test actors and helpers for the runtime's integration tests (real Kafka, Postgres, NATS). */
import { Type } from "@sinclair/typebox";
import { and, eq, inArray } from "drizzle-orm";
import { openDatabase, schema } from "../../db/index.ts";
import {
  createHost,
  defineActor,
  type Host,
  type HostOptions,
  RetryableError,
  type SupervisionPolicy,
  TerminalError,
} from "../../runtime/index.ts";
import { deadLetterTopic, provisionTopics } from "../../topics/index.ts";
import { testConfig, testKafka, testLog, uniqueName, waitFor } from "../support.ts";

export const config = testConfig();
export const kafka = testKafka(config);
export const database = openDatabase(config.postgres.url, { max: 20, idleInTransactionTimeoutMs: 5000 });

export interface SequenceState {
  lastSeq: number;
  count: number;
  violations: number;
  failures: number;
}

/**
 * Applies STEP messages carrying 1, 2, 3... per key. A step out of sequence is counted as a violation (order
 * broken, or a message lost or applied twice). `delayMs` makes a turn slow; `fail` makes it throw.
 */
export interface SequenceOptions {
  events?: string;
  supervision?: Partial<SupervisionPolicy>;
  /** Decides whether a turn fails, by key, step and attempt. */
  failWhen?: (key: string, seq: number, attempt: number) => "retryable" | "terminal" | undefined;
}

export function sequenceActor(kind: string, mailbox: string, events?: string, options: SequenceOptions = {}) {
  return defineActor({
    kind,
    mailbox,
    initialState: (): SequenceState => ({ lastSeq: 0, count: 0, violations: 0, failures: 0 }),
    messages: {
      STEP: Type.Object({
        seq: Type.Integer({ minimum: 1 }),
        delayMs: Type.Optional(Type.Integer({ minimum: 0 })),
        fail: Type.Optional(Type.Union([Type.Literal("retryable"), Type.Literal("terminal")])),
        /** Fail only on the first N attempts. */
        failAttempts: Type.Optional(Type.Integer({ minimum: 1 })),
      }),
    },
    supervision: { maxAttempts: 3, backoff: { baseMs: 50, maxMs: 200, jitter: 0.2 }, ...options.supervision },
    async handle(state, message, ctx) {
      const { seq, delayMs, failAttempts } = message.payload;
      if (delayMs) await Bun.sleep(delayMs);
      const fail = message.payload.fail ?? options.failWhen?.(ctx.key, seq, ctx.attempt);
      if (fail && (failAttempts === undefined || ctx.attempt <= failAttempts)) {
        throw fail === "retryable"
          ? new RetryableError(`step ${seq} failed`)
          : new TerminalError(`step ${seq} refused`);
      }
      const next = {
        lastSeq: seq,
        count: state.count + 1,
        violations: state.violations + (seq === state.lastSeq + 1 ? 0 : 1),
        failures: state.failures,
      };
      return {
        state: next,
        emit: events ? [{ topic: events, type: "STEP_APPLIED", payload: { seq } }] : [],
        status: { lastSeq: seq },
        reply: { lastSeq: seq },
      };
    },
  });
}

/** A mailbox topic and an events topic (each with its dead-letter topic) of its own for one test. */
export async function freshTopics(prefix: string, partitions = 10, extra: string[] = []) {
  const mailbox = uniqueName(`${prefix}-mailbox`);
  const events = uniqueName(`${prefix}-events`);
  const names = [mailbox, deadLetterTopic(mailbox), events, deadLetterTopic(events), ...extra];
  await provisionTopics(
    kafka,
    names.map((name) => ({ name, role: "mailbox" as const, partitions })),
  );
  return { mailbox, events, dlt: deadLetterTopic(mailbox), eventsDlt: deadLetterTopic(events) };
}

export function testHost(options: Partial<HostOptions> & Pick<HostOptions, "actors">): Host {
  return createHost({
    kafka,
    database,
    databaseUrl: config.postgres.url,
    log: testLog,
    groupPrefix: uniqueName("g"),
    tuning: { commitIntervalMs: 100, sessionTimeoutMs: 6000, heartbeatIntervalMs: 500, drainTimeoutMs: 5000 },
    ...options,
  });
}

export async function actorStates<S>(
  kind: string,
  keys?: string[],
): Promise<Map<string, { state: S; version: number }>> {
  const rows = await database.db
    .select()
    .from(schema.actorState)
    .where(
      keys
        ? and(eq(schema.actorState.kind, kind), inArray(schema.actorState.actorKey, keys))
        : eq(schema.actorState.kind, kind),
    );
  return new Map(rows.map((r) => [r.actorKey, { state: r.state as S, version: r.version }]));
}

/** Sends STEP firstSeq..firstSeq+perKey-1 (1..perKey by default) to each key, interleaving keys, in batches (one produce request per batch). */
export async function sendSteps(
  mailbox: string,
  keys: string[],
  perKey: number,
  extra: (key: string, seq: number) => Record<string, unknown> = () => ({}),
  firstSeq = 1,
) {
  const { encodeEnvelope, newEnvelope } = await import("../../topics/index.ts");
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  try {
    for (let seq = firstSeq; seq < firstSeq + perKey; seq++) {
      const messages = keys.map((key) => ({
        key,
        value: encodeEnvelope(
          newEnvelope({ eventType: "STEP", entityId: key, payload: { seq, ...extra(key, seq) } }),
        ),
      }));
      for (let i = 0; i < messages.length; i += 2000) {
        await producer.send({ topic: mailbox, acks: -1, messages: messages.slice(i, i + 2000) });
      }
    }
  } finally {
    await producer.disconnect();
  }
}

const children: { kill(signal?: NodeJS.Signals): void }[] = [];

/** Kills every host process the tests started (afterAll). */
export function killChildren() {
  for (const child of children.splice(0)) child.kill("SIGKILL");
}

/**
 * Starts a host process (host-process.ts) and resolves once it printed "ready"; `output()` resolves, after the
 * process ended, to everything it printed (its stats as JSON on the last line when stopped with SIGTERM).
 */
export async function spawnHost(env: Record<string, string>) {
  const child = Bun.spawn([process.execPath, `${import.meta.dir}/host-process.ts`], {
    env: { ...process.env, ...env },
    stdin: "pipe",
    stdout: "pipe",
    stderr: "inherit",
  });
  children.push(child);
  let out = "";
  let ready: () => void = () => {};
  const isReady = new Promise<void>((resolve) => {
    ready = resolve;
  });
  const pumped = (async () => {
    for await (const chunk of child.stdout) {
      out += new TextDecoder().decode(chunk);
      if (out.includes("ready")) ready();
    }
  })();
  await Promise.race([
    isReady,
    child.exited.then(() => Promise.reject(new Error(`host exited early: ${out}`))),
  ]);
  const output = async () => {
    await pumped;
    return out;
  };
  /** Asks the running host for its stats (a "stats" line on its stdin) and returns them once printed. */
  const stats = async () => {
    const before = out.length;
    let signalled = 0;
    const line = await waitFor(
      () => {
        if (child.exitCode !== null)
          throw new Error(`host exited (${child.exitCode}) before printing stats: ${out}`);
        if (Date.now() - signalled > 2000) {
          child.stdin.write("stats\n");
          void child.stdin.flush();
          signalled = Date.now();
        }
        const complete = out.slice(before).split("\n").slice(0, -1); // a line is complete once its newline came
        return complete.find((l) => l.startsWith("{"));
      },
      {
        timeoutMs: 15_000, // a loaded machine can be slow to schedule the child
        what: "stats from the host process",
      },
    );
    return JSON.parse(line) as import("../../runtime/index.ts").HostStats;
  };
  return { child, output, stats };
}

/** The stats a host process printed when it stopped. */
export async function stoppedStats(output: () => Promise<string>) {
  const last = (await output()).trim().split("\n").at(-1) ?? "{}";
  return JSON.parse(last) as import("../../runtime/index.ts").HostStats;
}
