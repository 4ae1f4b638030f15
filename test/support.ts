/** Helpers for integration tests: the test configuration, unique names, bounded waits, a closed port. */
import { createServer } from "node:net";
import { type Config, loadConfig } from "../config.ts";
import { createLogger } from "../runtime/index.ts";
import { createKafka } from "../topics/index.ts";

export function testConfig(overrides: Record<string, string> = {}): Config {
  return loadConfig({ ...process.env, NODE_ENV: "test", ...overrides });
}

// Silent unless TEST_LOG_LEVEL says otherwise (e.g. TEST_LOG_LEVEL=debug bun test ...).
export const testLog = createLogger(process.env.TEST_LOG_LEVEL ?? "silent");

export function testKafka(config = testConfig(), clientId = uniqueName("test")) {
  return createKafka({ brokers: config.kafka.brokers, clientId });
}

/** A name no other test run uses: topics, groups, keys. */
export function uniqueName(prefix: string): string {
  return `${prefix}-${Bun.randomUUIDv7().slice(-12)}`;
}

/** Polls `condition` until it returns a truthy value or `timeoutMs` passes; returns that value. */
export async function waitFor<T>(
  condition: () => T | Promise<T>,
  { timeoutMs = 15_000, intervalMs = 50, what = "condition" } = {},
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let last: T | undefined;
  while (Date.now() < deadline) {
    last = await condition();
    if (last) return last as NonNullable<T>;
    await Bun.sleep(intervalMs);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (last: ${String(last)})`);
}

/** A loopback port nothing listens on: bound by us, then released. */
export async function closedPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

export { tcpProxy } from "../faults/tcp-proxy.ts";
