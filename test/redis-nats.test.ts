import { afterAll, describe, expect, test } from "bun:test";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { openNats, openRedis, pingNats, pingRedis } from "../runtime/index.ts";
import { testConfig, uniqueName } from "./support.ts";

const config = testConfig();

describe("Redis", () => {
  const redis = openRedis(config.redis.url);
  afterAll(() => redis.quit());

  test("answers PING and round-trips a string, a counter and a hash", async () => {
    await pingRedis(redis);
    const key = uniqueName("redis-rt");
    await redis.set(key, "hello", "EX", 60);
    expect(await redis.get(key)).toBe("hello");
    expect(await redis.incrby(`${key}:n`, 3)).toBe(3);
    await redis.hset(`${key}:h`, { progress: "25" });
    expect(await redis.hgetall(`${key}:h`)).toEqual({ progress: "25" });
    await redis.del(key, `${key}:n`, `${key}:h`);
  });
});

describe("NATS", async () => {
  const nc = await openNats(config.nats.servers);
  afterAll(() => nc.drain());

  test("request/reply round-trips between two subscribers", async () => {
    await pingNats(nc);
    const subject = uniqueName("rt");
    const sub = nc.subscribe(subject);
    (async () => {
      for await (const msg of sub) msg.respond(`echo:${msg.string()}`);
    })();
    const reply = await nc.request(subject, "ping", { timeout: 2000 });
    expect(reply.string()).toBe("echo:ping");
    sub.unsubscribe();
  });

  test("JetStream is enabled: a stream stores a message and a consumer reads it back", async () => {
    const jsm = await jetstreamManager(nc);
    const name = uniqueName("PITSTOP_TEST").replaceAll("-", "_");
    await jsm.streams.add({ name, subjects: [`${name}.>`], max_age: 60_000_000_000 });
    try {
      const js = jetstream(nc);
      const ack = await js.publish(`${name}.a`, "stored");
      expect(ack.seq).toBe(1);
      const msg = await js.streams.get(name).then((s) => s.getMessage({ seq: 1 }));
      expect(msg?.string()).toBe("stored");
    } finally {
      await jsm.streams.delete(name);
    }
  });
});
