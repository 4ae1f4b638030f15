import { afterAll, describe, expect, test } from "bun:test";
import {
  askState,
  createActorClient,
  type Host,
  openNats,
  type StatusMessage,
  statusSubject,
} from "../../runtime/index.ts";
import { uniqueName, waitFor } from "../support.ts";
import { config, freshTopics, kafka, sendSteps, sequenceActor, testHost } from "./fixtures.ts";

const nc = await openNats(config.nats.servers);
const hosts: Host[] = [];
const children: { kill(signal?: NodeJS.Signals): void }[] = [];
afterAll(async () => {
  for (const child of children) child.kill("SIGKILL");
  await Promise.all(hosts.map((h) => h.stop()));
  await nc.drain();
});

describe("NATS fabric", () => {
  test("ask sends a command through Kafka and gets the actor's reply after its turn; status goes to subscribers", async () => {
    const { mailbox } = await freshTopics("ask", 4);
    const kind = uniqueName("ask");
    const prefix = uniqueName("fab");
    const actor = sequenceActor(kind, mailbox);
    const host = testHost({ actors: [actor], nats: nc, natsPrefix: prefix });
    hosts.push(host);
    await host.start();
    const statuses: StatusMessage[] = [];
    const subscription = nc.subscribe(statusSubject(prefix, kind, "car.42"), {
      callback: (_e, m) => void statuses.push(m.json<StatusMessage>()),
    });
    const client = createActorClient({ kafka, nats: nc });
    const ref = { kind, mailbox, key: "car.42" };
    const first = await client.ask(ref, "STEP", { seq: 1 }, { timeoutMs: 10_000 });
    expect(first).toMatchObject({ status: "replied", ok: true, reply: { lastSeq: 1 } });
    const second = await client.ask(ref, "STEP", { seq: 2 }, { timeoutMs: 10_000 });
    expect(second).toMatchObject({ status: "replied", ok: true, reply: { lastSeq: 2 } });
    // A refused command answers with the reason.
    const refused = await client.ask(ref, "STEP", { seq: 3, fail: "terminal" }, { timeoutMs: 10_000 });
    expect(refused).toMatchObject({
      status: "replied",
      ok: false,
      error: { class: "TerminalError", message: "step 3 refused" },
    });
    await waitFor(() => statuses.length >= 2, { what: "two status messages" });
    expect(statuses.map((s) => [s.kind, s.key, s.status])).toEqual([
      [kind, "car.42", { lastSeq: 1 }],
      [kind, "car.42", { lastSeq: 2 }],
    ]);
    subscription.unsubscribe();
    await client.close();
  }, 60_000);

  test("ask degrades to accepted when no actor answers in time, and the command is still handled later", async () => {
    const { mailbox } = await freshTopics("accepted", 2);
    const kind = uniqueName("accepted");
    const client = createActorClient({ kafka, nats: nc });
    const answer = await client.ask({ kind, mailbox, key: "k" }, "STEP", { seq: 1 }, { timeoutMs: 300 });
    expect(answer.status).toBe("accepted");
    const prefix = uniqueName("fab");
    const host = testHost({ actors: [sequenceActor(kind, mailbox)], nats: nc, natsPrefix: prefix });
    hosts.push(host);
    await host.start();
    const live = await waitFor(
      async () => {
        const answer = await askState(nc, prefix, kind, "k", 500);
        return (answer?.state as { lastSeq?: number } | undefined)?.lastSeq === 1 ? answer : undefined;
      },
      { what: "state of k after the accepted command" },
    );
    expect(live.state).toMatchObject({ lastSeq: 1 });
    await client.close();
  }, 60_000);

  test("any process can ask the host that owns an actor, in another process, for its live state", async () => {
    const { mailbox } = await freshTopics("remote", 3);
    const kind = uniqueName("remote");
    const prefix = uniqueName("fab");
    const child = Bun.spawn([process.execPath, `${import.meta.dir}/host-process.ts`], {
      env: {
        ...process.env,
        TEST_MAILBOX: mailbox,
        TEST_KIND: kind,
        TEST_GROUP_PREFIX: uniqueName("g"),
        TEST_HOST_ID: "remote-host",
        TEST_NATS: prefix,
      },
      stdout: "ignore",
      stderr: "inherit",
    });
    children.push(child);
    const keys = ["a", "b", "c", "d", "e", "f"];
    await sendSteps(mailbox, keys, 3);
    for (const key of keys) {
      const live = await waitFor(
        async () => {
          const answer = await askState(nc, prefix, kind, key, 500);
          return answer && (answer.state as { lastSeq: number }).lastSeq === 3 ? answer : undefined;
        },
        { timeoutMs: 30_000, what: `live state of ${key}` },
      );
      expect(live).toEqual({
        key,
        state: { lastSeq: 3, count: 3, violations: 0, failures: 0 },
        version: 3,
        owner: "remote-host",
      });
    }
    expect(await askState(nc, uniqueName("nobody"), kind, "a", 200)).toBeUndefined();
    child.kill("SIGTERM");
    await child.exited;
  }, 60_000);
});
