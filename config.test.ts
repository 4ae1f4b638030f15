import { describe, expect, test } from "bun:test";
import { ConfigError, DEV_JWT_SECRET, loadConfig } from "./config.ts";

describe("configuration", () => {
  test("defaults point at the loopback services and the single broker", () => {
    const config = loadConfig({});
    expect(config).toEqual({
      env: "development",
      http: { host: "127.0.0.1", port: 3000, shutdownGraceMs: 10_000, rateLimitPerMinute: 1200 },
      kafka: { clusterSize: 1, brokers: ["127.0.0.1:9092"], clientId: "pitstop" },
      postgres: { url: "postgres://postgres@127.0.0.1:5432/pitstop", poolSize: 20 },
      redis: { url: "redis://127.0.0.1:6379/0" },
      nats: { servers: ["nats://127.0.0.1:4222"] },
      manageInfra: true,
      logLevel: "info",
      run: { http: true, actors: true, reactors: true },
      namespace: "",
      tracing: {},
      auth: { jwtSecret: DEV_JWT_SECRET, tokenTtlSeconds: 86_400 },
      service: {
        askTimeoutMs: 3000,
        maxOpenBookings: 20,
        invoiceDueMs: 86_400_000,
        paymentAttempts: 3,
        paymentRetryMs: 1000,
        answerTimeoutMs: 30_000,
        checkIntervalMs: 600_000,
        noShowGraceMs: 86_400_000,
        readyMaxLag: 1000,
      },
    });
  });

  test("PITSTOP_RUN picks what a process runs; an unknown part is refused", () => {
    expect(loadConfig({ PITSTOP_RUN: "reactors" }).run).toEqual({
      http: false,
      actors: false,
      reactors: true,
    });
    expect(loadConfig({ PITSTOP_RUN: "http, actors" }).run).toEqual({
      http: true,
      actors: true,
      reactors: false,
    });
    expect(() => loadConfig({ PITSTOP_RUN: "http,workers" })).toThrow("PITSTOP_RUN must list some of");
  });

  test("PITSTOP_INSTANCE_ID names the host slot (none by default); a name Kafka and logs cannot carry is refused", () => {
    expect(loadConfig({}).kafka.instanceId).toBeUndefined();
    expect(loadConfig({ PITSTOP_INSTANCE_ID: "actors-2" }).kafka.instanceId).toBe("actors-2");
    expect(() => loadConfig({ PITSTOP_INSTANCE_ID: "a b" })).toThrow("PITSTOP_INSTANCE_ID must be");
    expect(() => loadConfig({ PITSTOP_INSTANCE_ID: "host.1" })).toThrow("PITSTOP_INSTANCE_ID must be");
  });

  test("OTEL_EXPORTER_OTLP_ENDPOINT turns tracing on (off without it); a URL that is not HTTP is refused", () => {
    expect(loadConfig({}).tracing.otlpEndpoint).toBeUndefined();
    expect(loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://collector:4318" }).tracing).toEqual({
      otlpEndpoint: "http://collector:4318",
    });
    expect(() => loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: "grpc://collector:4317" })).toThrow(
      "OTEL_EXPORTER_OTLP_ENDPOINT must use http: or https:",
    );
  });

  test("production refuses the development JWT secret and a short one", () => {
    expect(() => loadConfig({ NODE_ENV: "production" })).toThrow(
      "JWT_SECRET must be set in production (the development secret is refused)",
    );
    expect(() => loadConfig({ NODE_ENV: "production", JWT_SECRET: "short" })).toThrow(
      "JWT_SECRET must be at least 32 characters",
    );
    const secret = "x".repeat(40);
    expect(loadConfig({ NODE_ENV: "production", JWT_SECRET: secret }).auth.jwtSecret).toBe(secret);
  });

  test("under test the database, Redis db and log level change; the 3-broker size brings its brokers", () => {
    const config = loadConfig({ NODE_ENV: "test", KAFKA_CLUSTER_SIZE: "3" });
    expect(config.postgres.url).toBe("postgres://postgres@127.0.0.1:5432/pitstop_test");
    expect(config.redis.url).toBe("redis://127.0.0.1:6379/1");
    expect(config.logLevel).toBe("warn");
    expect(config.kafka.brokers).toEqual(["127.0.0.1:19092", "127.0.0.1:19102", "127.0.0.1:19112"]);
  });

  test("every bad variable is listed at once", () => {
    let error: unknown;
    try {
      loadConfig({
        PORT: "70000",
        KAFKA_CLUSTER_SIZE: "2",
        DATABASE_URL: "mysql://x",
        PITSTOP_MANAGE_INFRA: "maybe",
      });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const problems = (error as ConfigError).problems;
    expect(problems).toHaveLength(4);
    expect(problems.join("\n")).toContain("PORT");
    expect(problems.join("\n")).toContain("KAFKA_CLUSTER_SIZE");
    expect(problems.join("\n")).toContain("DATABASE_URL");
    expect(problems.join("\n")).toContain("PITSTOP_MANAGE_INFRA");
  });
});
