/**
 * The service as `npm start` runs it (`bun main.ts`, with the same Bun flags), in a process of its own and a
 * namespace of the test's: for the tests that kill or stop the process. `stop()` kills what is left and removes
 * the namespace's topics (and the outbox rows still waiting for them).
 */
import postgres from "postgres";
import { BUN_SERVE_FLAGS } from "../../http/index.ts";
import { createKafka } from "../../topics/index.ts";
import { testConfig, waitFor } from "../support.ts";

export function serviceProcesses() {
  const namespace = `t${Bun.randomUUIDv7().replaceAll("-", "").slice(-10)}`;
  const config = testConfig({ PITSTOP_NAMESPACE: namespace });
  const children: ReturnType<typeof Bun.spawn>[] = [];
  return {
    namespace,
    config,
    /** Starts `bun main.ts` on `port`; resolves once /healthz answers 200. */
    async start(port: number) {
      const child = Bun.spawn([process.execPath, ...BUN_SERVE_FLAGS, `${import.meta.dir}/../../main.ts`], {
        env: {
          ...process.env,
          NODE_ENV: "test",
          PITSTOP_NAMESPACE: namespace,
          PORT: String(port),
          LOG_LEVEL: "error",
        },
        stdout: "ignore",
        stderr: "inherit",
      });
      children.push(child);
      await waitFor(
        () =>
          fetch(`http://127.0.0.1:${port}/healthz`).then(
            (r) => r.ok,
            () => false,
          ),
        { timeoutMs: 90_000, intervalMs: 200, what: "the service to answer /healthz" },
      );
      return child;
    },
    async stop() {
      for (const child of children) child.kill("SIGKILL");
      const sql = postgres(config.postgres.url, { max: 1, onnotice: () => {} });
      await sql`delete from outbox where published_at is null and topic like ${`${namespace}.%`}`;
      await sql.end();
      const admin = createKafka({ brokers: config.kafka.brokers, clientId: `${namespace}-cleanup` }).admin();
      await admin.connect();
      const topics = (await admin.listTopics()).filter((t) => t.startsWith(`${namespace}.`));
      await admin.deleteTopics({ topics }).catch(() => {});
      await admin.disconnect();
    },
  };
}
