import { afterAll, describe, expect, test } from "bun:test";
import { createSystem, type System } from "../system.ts";
import { closedPort, testConfig, testLog } from "../test/support.ts";

const systems: System[] = [];
afterAll(() => Promise.all(systems.map((s) => s.close())));

async function healthz(overrides: Record<string, string> = {}) {
  const system = createSystem(testConfig(overrides), testLog);
  systems.push(system);
  const response = await system.app.handle(new Request("http://localhost/healthz"));
  return { status: response.status, body: (await response.json()) as HealthBody };
}

type HealthBody = {
  status: "up" | "down" | "draining";
  dependencies: Record<string, { status: "up" | "down"; latencyMs: number; error?: string }>;
};

describe("GET /healthz", () => {
  test("says draining (503) once the process is shutting down, and new requests are refused, retryable", async () => {
    const system = createSystem(testConfig(), testLog);
    systems.push(system);
    system.shutdown("draining");
    const health = await system.app.handle(new Request("http://localhost/healthz"));
    expect(health.status).toBe(503);
    expect(((await health.json()) as HealthBody).status).toBe("draining");
    // Draining: requests are still served (here: 401, the route ran); closing: refused before any route.
    expect((await system.app.handle(new Request("http://localhost/api/v1/bookings"))).status).toBe(401);
    system.shutdown("closing");
    const other = await system.app.handle(new Request("http://localhost/api/v1/bookings"));
    expect(other.status).toBe(503);
    expect(other.headers.get("retry-after")).toBe("1");
    expect(await other.json()).toMatchObject({ error: { code: "draining", retryable: true } });
  });

  test("answers 200 with Kafka, Postgres, Redis and NATS up, each with its latency", async () => {
    const { status, body } = await healthz();
    expect(status).toBe(200);
    expect(body.status).toBe("up");
    expect(Object.keys(body.dependencies).sort()).toEqual(["kafka", "nats", "postgres", "redis"]);
    for (const dependency of Object.values(body.dependencies)) {
      expect(dependency.status).toBe("up");
      expect(dependency.latencyMs).toBeGreaterThanOrEqual(0);
      expect(dependency.error).toBeUndefined();
    }
  });

  const pointAtClosedPort: Record<string, (port: number) => Record<string, string>> = {
    kafka: (port) => ({ KAFKA_BROKERS: `127.0.0.1:${port}` }),
    postgres: (port) => ({ DATABASE_URL: `postgres://postgres@127.0.0.1:${port}/pitstop_test` }),
    redis: (port) => ({ REDIS_URL: `redis://127.0.0.1:${port}/1` }),
    nats: (port) => ({ NATS_URL: `nats://127.0.0.1:${port}` }),
  };

  for (const [name, override] of Object.entries(pointAtClosedPort)) {
    test(`answers 503 naming ${name} as down when ${name} points at a closed port, the others still up`, async () => {
      const { status, body } = await healthz(override(await closedPort()));
      expect(status).toBe(503);
      expect(body.status).toBe("down");
      const { [name]: down, ...others } = body.dependencies;
      expect(down?.status).toBe("down");
      expect(down?.error).toBeString();
      expect(Object.values(others).map((d) => d.status)).toEqual(["up", "up", "up"]);
    });
  }
});
