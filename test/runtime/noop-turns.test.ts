import { afterAll, expect, test } from "bun:test";
import { Type } from "@sinclair/typebox";
import { defineActor, type Host } from "../../runtime/index.ts";
import { encodeEnvelope, newEnvelope } from "../../topics/index.ts";
import { uniqueName, waitFor } from "../support.ts";
import { actorStates, database, freshTopics, kafka, testHost } from "./fixtures.ts";

const hosts: Host[] = [];
afterAll(() => Promise.all(hosts.map((h) => h.stop())));

/** INC changes the state; PING returns the same state object and nothing else: a no-op turn. */
function counter(kind: string, mailbox: string, noopTurns: "commit" | "skip") {
  return defineActor({
    kind,
    mailbox,
    noopTurns,
    initialState: () => ({ n: 0 }),
    messages: { INC: Type.Object({}), PING: Type.Object({}) },
    handle: (state, message) => (message.type === "INC" ? { state: { n: state.n + 1 } } : { state }),
  });
}

async function send(mailbox: string, keys: string[], types: string[]) {
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  await producer.send({
    topic: mailbox,
    acks: -1,
    messages: types.flatMap((eventType) =>
      keys.map((key) => ({
        key,
        value: encodeEnvelope(newEnvelope({ eventType, entityId: key, payload: {} })),
      })),
    ),
  });
  await producer.disconnect();
}

const inboxRows = async (kind: string) =>
  Number((await database.sql`select count(*)::int as n from inbox where consumer = ${kind}`)[0]?.n);

for (const mode of ["skip", "commit"] as const) {
  test(`noopTurns "${mode}": a turn that changes nothing is ${mode === "skip" ? "not committed" : "committed like any other"}`, async () => {
    const { mailbox } = await freshTopics(`noop-${mode}`, 2);
    const kind = uniqueName(`noop-${mode}`);
    const host = testHost({ actors: [counter(kind, mailbox, mode)] });
    hosts.push(host);
    await host.start();
    const keys = Array.from({ length: 10 }, (_, i) => `k${i}`);
    const pingOnly = Array.from({ length: 5 }, (_, i) => `p${i}`);
    await send(mailbox, keys, ["PING", "INC", "PING", "INC", "PING"]);
    await send(mailbox, pingOnly, ["PING", "PING"]);
    const handled = () => {
      const s = host.stats().actors[kind];
      return s ? s.turns + s.noops : 0;
    };
    await waitFor(() => handled() === 60, { timeoutMs: 30_000, what: "60 turns handled" });
    const stats = host.stats().actors[kind];
    const states = await actorStates<{ n: number }>(kind);
    for (const key of keys) expect(states.get(key)?.state.n).toBe(2);
    if (mode === "skip") {
      expect(stats?.turns).toBe(20);
      expect(stats?.noops).toBe(40);
      expect(await inboxRows(kind)).toBe(20); // only the INCs are recorded as handled
      for (const key of pingOnly) expect(states.has(key)).toBe(false); // never written
    } else {
      expect(stats?.turns).toBe(60);
      expect(stats?.noops).toBe(0);
      expect(await inboxRows(kind)).toBe(60);
      for (const key of pingOnly) expect(states.get(key)?.state.n).toBe(0);
    }
  }, 60_000);
}
