/**
 * The whole service center in one test process, in a namespace of its own (topics `<ns>.booking-events`...,
 * consumer groups and NATS subjects `pitstop-<ns>`): the real Kafka, Postgres, Redis and NATS, the real host with
 * every actor and reactor, the real HTTP app on a loopback port (WebSockets need one), and tokens per role.
 */
import postgres from "postgres";
import { createSystem, type System } from "../../system.ts";
import { createKafka, provisionTopics, topicCatalogue } from "../../topics/index.ts";
import { testConfig, testLog, waitFor } from "../support.ts";
import { answerChecker } from "./documented-answers.ts";

/**
 * A JSON body or frame as a test reads it: whatever the server sent. Tests index into it freely and assert on
 * what they find, so it is typed loosely on purpose.
 */
// biome-ignore lint/suspicious/noExplicitAny: parsed JSON read by assertions
export type Json = any;

export interface Service {
  system: System;
  namespace: string;
  baseUrl: string;
  wsUrl: string;
  token(role: "customer" | "technician" | "admin", sub: string): Promise<string>;
  /** JSON request through the real HTTP server. Throws if the answer is not what its route documents. */
  call(
    method: string,
    path: string,
    options?: { token?: string; body?: unknown; headers?: Record<string, string>; raw?: string },
  ): Promise<{ status: number; body: Json; headers: Headers }>;
  /** What is wrong with an answer against its route's documented ones (undefined: nothing). */
  checkAnswer: ReturnType<typeof answerChecker>;
  stop(): Promise<void>;
}

export async function startService(env: Record<string, string> = {}): Promise<Service> {
  const namespace = `t${Bun.randomUUIDv7().replaceAll("-", "").slice(-10)}`;
  const config = testConfig({
    PITSTOP_NAMESPACE: namespace,
    ASK_TIMEOUT_MS: "8000",
    PAYMENT_RETRY_MS: "100",
    ...env,
  });
  const kafka = createKafka({ brokers: config.kafka.brokers, clientId: `${namespace}-setup` });
  const topics = topicCatalogue(3, namespace);
  await provisionTopics(kafka, topics);
  const system = createSystem(config, testLog);
  const cleanupSql = postgres(config.postgres.url, { max: 1, onnotice: () => {} });
  const host = await system.startHost();
  // Every consumer group owns its partitions before the first request (a cold group would only be slower).
  await waitFor(
    () => Object.values(host.stats().consumers).every((c) => c.partitions.length === 3 * c.topics.length),
    {
      timeoutMs: 60_000,
      what: "every consumer group of the namespace to own its partitions",
    },
  );
  const server = system.app.listen({ hostname: "127.0.0.1", port: 0 });
  const port = server.server?.port;
  const baseUrl = `http://127.0.0.1:${port}`;
  const checkAnswer = answerChecker(system.app.routes);
  return {
    system,
    namespace,
    baseUrl,
    wsUrl: `ws://127.0.0.1:${port}/ws`,
    token: (role, sub) => system.routes.tokens.sign({ role, sub }),
    checkAnswer,
    async call(method, path, options = {}) {
      const headers: Record<string, string> = { ...options.headers };
      if (options.token) headers.authorization = `Bearer ${options.token}`;
      let body: string | undefined = options.raw;
      if (options.body !== undefined) {
        headers["content-type"] = "application/json";
        body = JSON.stringify(options.body);
      }
      const response = await fetch(`${baseUrl}${path}`, { method, headers, body });
      const text = await response.text();
      let parsed: unknown = text;
      try {
        parsed = text ? JSON.parse(text) : undefined;
      } catch {}
      const problem = checkAnswer(method, path, response.status, parsed);
      if (problem) throw new Error(problem);
      return { status: response.status, body: parsed, headers: response.headers };
    },
    async stop() {
      await server.stop(true); // true: close open WebSockets too, or stop waits for them
      await system.close();
      // Rows the relay had not published yet would wait forever for topics that are about to go.
      await cleanupSql`delete from outbox where published_at is null and topic like ${`${namespace}.%`}`;
      await cleanupSql.end();
      const admin = kafka.admin();
      await admin.connect();
      await admin.deleteTopics({ topics: topics.map((t) => t.name) }).catch(() => {});
      await admin.disconnect();
    },
  };
}

/** A time slot `hoursAhead` hours from now, on the hour plus `minute`. */
export function slotTime(hoursAhead: number, minute = 0): string {
  const at = new Date(Date.now() + hoursAhead * 3600_000);
  at.setUTCMinutes(minute, 0, 0);
  return at.toISOString();
}

/** A WebSocket client that collects frames. */
export async function openSocket(url: string) {
  const frames: Json[] = [];
  const ws = new WebSocket(url);
  ws.onmessage = (event) => frames.push(JSON.parse(String(event.data)));
  await new Promise<void>((resolve, reject) => {
    ws.onopen = () => resolve();
    ws.onerror = () => reject(new Error(`websocket to ${url} failed`));
  });
  return {
    frames,
    send: (frame: unknown) => ws.send(typeof frame === "string" ? frame : JSON.stringify(frame)),
    close: () => ws.close(),
    waitFor: (predicate: (frame: Json) => boolean, what: string) =>
      waitFor(() => frames.find(predicate), { timeoutMs: 30_000, what }),
  };
}
