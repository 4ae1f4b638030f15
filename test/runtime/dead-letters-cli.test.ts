import { describe, expect, test } from "bun:test";
import { uniqueName } from "../support.ts";
import { database } from "./fixtures.ts";

const cli = (...args: string[]) =>
  Bun.spawnSync([process.execPath, `${import.meta.dir}/../../scripts/dead-letters.ts`, ...args], {
    env: { ...process.env, NODE_ENV: "test" },
  });

describe("dead-letters command", () => {
  test("lists a consumer's dead letters and replays one back onto its source topic through the outbox", async () => {
    const consumer = uniqueName("cli");
    const topic = uniqueName("cli-topic");
    const [row] = await database.sql<{ id: string }[]>`
      insert into dead_letter (consumer, source_topic, source_partition, source_offset, message_key, value, headers,
        error_class, error_message, retryable, attempts, first_failure_at, last_failure_at, host, status)
      values (${consumer}, ${topic}, 3, 41, 'k1', ${Buffer.from("payload")}, '{"h":"v"}'::jsonb, 'TerminalError',
        'no', false, 1, now(), now(), 'test', 'dead')
      returning id`;
    const id = Number(row?.id);

    const listed = cli("list", "--consumer", consumer, "--json");
    expect(listed.exitCode).toBe(0);
    const rows = JSON.parse(listed.stdout.toString());
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({
      id,
      sourceTopic: topic,
      sourcePartition: 3,
      sourceOffset: "41",
      messageKey: "k1",
      value: "payload",
      status: "dead",
    });

    const replay = cli("replay", "--id", String(id), "--json");
    expect(replay.exitCode).toBe(0);
    expect(JSON.parse(replay.stdout.toString())).toEqual({ replayed: [id] });
    const outbox = await database.sql<
      { message_key: string; raw_value: Buffer; headers: Record<string, string> }[]
    >`
      select message_key, raw_value, headers from outbox where topic = ${topic}`;
    expect(outbox.map((o) => [o.message_key, o.raw_value.toString(), o.headers])).toEqual([
      ["k1", "payload", { h: "v", "pitstop-replay-of": String(id) }],
    ]);
    expect(JSON.parse(cli("list", "--consumer", consumer, "--json").stdout.toString())[0].status).toBe(
      "replayed",
    );
    // Replaying again finds nothing waiting.
    expect(JSON.parse(cli("replay", "--id", String(id), "--json").stdout.toString())).toEqual({
      replayed: [],
    });
    // The outbox row would go to a topic that does not exist: remove it so the shared relay is not held back.
    await database.sql`delete from outbox where topic = ${topic}`;
  });

  test("bad arguments answer with usage and exit code 2", () => {
    for (const args of [["nonsense"], ["replay"], ["list", "--limit", "0"], ["replay", "--id", "x"]]) {
      const run = cli(...args);
      expect(run.exitCode).toBe(2);
      expect(run.stderr.toString().length).toBeGreaterThan(0);
    }
  });
});
