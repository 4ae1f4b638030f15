import { afterAll, describe, expect, test } from "bun:test";
import { Type } from "@sinclair/typebox";
import { createActorClient, defineActor, type Host } from "../../runtime/index.ts";
import { uniqueName, waitFor } from "../support.ts";
import { actorStates, database, freshTopics, kafka, testHost } from "./fixtures.ts";

interface ReminderState {
  booked: number;
  reminders: number[];
  cancelled: boolean;
}

/** Sets a timer per BOOK; CANCEL removes it; a fired timer arrives as REMIND. */
function reminderActor(kind: string, mailbox: string) {
  return defineActor({
    kind,
    mailbox,
    initialState: (): ReminderState => ({ booked: 0, reminders: [], cancelled: false }),
    messages: {
      BOOK: Type.Object({ inMs: Type.Integer({ minimum: 0 }) }),
      CANCEL: Type.Object({}),
      REMIND: Type.Object({ n: Type.Integer() }),
    },
    handle(state, message, ctx) {
      switch (message.type) {
        case "BOOK": {
          const n = state.booked + 1;
          const at = new Date(ctx.now.getTime() + message.payload.inMs);
          return {
            state: { ...state, booked: n },
            timers: [{ set: "reminder", at, type: "REMIND", payload: { n } }],
          };
        }
        case "CANCEL":
          return { state: { ...state, cancelled: true }, timers: [{ cancel: "reminder" }] };
        case "REMIND":
          return { state: { ...state, reminders: [...state.reminders, message.payload.n] } };
      }
    },
  });
}

const hosts: Host[] = [];
afterAll(() => Promise.all(hosts.map((h) => h.stop())));

describe("durable timers", () => {
  test("a timer set in a turn fires through the actor's mailbox even when the host that set it stopped", async () => {
    const { mailbox } = await freshTopics("timer", 3);
    const kind = uniqueName("timer");
    const groupPrefix = uniqueName("g");
    const client = createActorClient({ kafka });
    const first = testHost({ actors: [reminderActor(kind, mailbox)], groupPrefix });
    await first.start();
    await client.tell({ kind, mailbox, key: "r1" }, "BOOK", { inMs: 2500 });
    await client.tell({ kind, mailbox, key: "r2" }, "BOOK", { inMs: 2500 });
    await client.tell({ kind, mailbox, key: "r2" }, "CANCEL", {});
    await waitFor(async () => (await actorStates<ReminderState>(kind)).get("r2")?.state.cancelled === true, {
      what: "booked and cancelled",
    });
    const [stored] = await database.sql<
      { n: number }[]
    >`select count(*)::int as n from actor_timer where kind = ${kind}`;
    expect(stored?.n).toBe(1); // r1's; r2's was cancelled
    await first.stop(); // before the timer is due

    const second = testHost({ actors: [reminderActor(kind, mailbox)], groupPrefix });
    hosts.push(second);
    await second.start();
    await waitFor(
      async () => (await actorStates<ReminderState>(kind)).get("r1")?.state.reminders.length === 1,
      {
        timeoutMs: 20_000,
        what: "the reminder after a restart",
      },
    );
    const states = await actorStates<ReminderState>(kind);
    expect(states.get("r1")?.state).toEqual({ booked: 1, reminders: [1], cancelled: false });
    expect(states.get("r2")?.state).toEqual({ booked: 1, reminders: [], cancelled: true });
    const [left] = await database.sql<
      { n: number }[]
    >`select count(*)::int as n from actor_timer where kind = ${kind}`;
    expect(left?.n).toBe(0);
    expect(second.stats().timers.fired).toBe(1);
    await client.close();
  }, 60_000);
});
