/**
 * `/readyz` says whether the work is flowing: every consumer group has a member and every partition an owner, and
 * none is far behind. `/healthz` alone stayed 200 while a group was thousands of records behind.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { createSystem, type System } from "../../system.ts";
import { createKafka, provisionTopics, topicCatalogue } from "../../topics/index.ts";
import { testConfig, testLog, waitFor } from "../support.ts";
import { type Service, startService } from "./fixtures.ts";

let service: Service;
let hostless: System | undefined;
beforeAll(async () => {
  service = await startService();
}, 120_000);
afterAll(async () => {
  await hostless?.close();
  await service?.stop();
}, 60_000);

test("with its hosts running every group is ready; without any host, readiness says which groups have no member", async () => {
  const ready = await waitFor(
    async () => {
      const answer = await service.call("GET", "/readyz");
      return answer.status === 200 ? answer.body : undefined;
    },
    { timeoutMs: 30_000, intervalMs: 250, what: "/readyz 200" },
  );
  expect(ready.status).toBe("ready");
  expect(ready.groups.length).toBe(6); // 5 actor kinds, and the one group of every reactor
  for (const g of ready.groups) expect(g).toMatchObject({ unassigned: [], members: 1 });

  // The same namespace's groups seen by an HTTP process of another namespace with no host at all.
  const namespace = `r${Bun.randomUUIDv7().replaceAll("-", "").slice(-10)}`;
  const config = testConfig({ PITSTOP_NAMESPACE: namespace });
  await provisionTopics(
    createKafka({ brokers: config.kafka.brokers, clientId: `${namespace}-setup` }),
    topicCatalogue(3, namespace),
  );
  hostless = createSystem(config, testLog);
  const system = hostless;
  // New topics take a moment to have leaders; until then readiness cannot read them (and says so).
  const body = await waitFor(
    async () => {
      const response = await system.app.handle(new Request("http://localhost/readyz"));
      expect(response.status).toBe(503);
      const answer = (await response.json()) as { status: string; reasons: string[] };
      return answer.reasons.some((r) => r.startsWith("cannot read")) ? undefined : answer;
    },
    { timeoutMs: 30_000, intervalMs: 250, what: "readiness of the new namespace's groups" },
  );
  expect(body.status).toBe("not_ready");
  expect(body.reasons).toContain(`pitstop-${namespace}.actor.booking: no member (no host runs it)`);
  expect(body.reasons).toContain(`pitstop-${namespace}.reactors: no member (no host runs it)`);
  expect(body.reasons.length).toBe(6);
}, 90_000);

test("/readyz names a dependency of this process that is down", async () => {
  // Redis at a port nothing listens on: this process cannot serve, whatever the groups say.
  const config = testConfig({ PITSTOP_NAMESPACE: service.namespace, REDIS_URL: "redis://127.0.0.1:1" });
  const system = createSystem(config, testLog);
  try {
    const response = await system.app.handle(new Request("http://localhost/readyz"));
    expect(response.status).toBe(503);
    const body = (await response.json()) as { reasons: string[] };
    expect(body.reasons.filter((r) => r.startsWith("redis is down"))).toHaveLength(1);
  } finally {
    await system.close();
  }
}, 60_000);

test("/healthz adds each group's lag and the partitions this process owns; a draining process is not ready", async () => {
  const health = await service.call("GET", "/healthz");
  expect(health.status).toBe(200);
  expect(health.body.groups).toHaveLength(6);
  for (const g of health.body.groups) {
    expect(g.owned).toBeGreaterThanOrEqual(3); // this process is the only host: every partition is its own
    expect(g.owned % 3).toBe(0);
    expect(g.unowned).toBe(0);
    expect(g.lag).toBeGreaterThanOrEqual(0);
  }
  expect(health.body.groups.find((g: { groupId: string }) => g.groupId.endsWith(".reactors")).owned).toBe(15);
  service.system.shutdown("draining"); // (last test of the file: the service is stopped after it)
  const draining = await service.call("GET", "/readyz");
  expect(draining.status).toBe(503);
  expect(draining.body.reasons).toEqual(["draining: this process is shutting down"]);
}, 60_000);
