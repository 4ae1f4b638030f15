/**
 * The ops console (`/ops`) in a real headless browser: Debian's Chromium (installed by test/setup.ts when missing)
 * driven by playwright-core, against the whole service center in process. An operator logs in with an admin token
 * (a customer's gets the API's 403), sees the hosts, looks up a booking's actor and parks and unparks it, skips
 * one dead letter with a reason and replays another, pauses a partition of the reactors and watches its lag rise
 * under load and fall back to 0 once resumed. Every wait is on a condition of the page, with a bound.
 *
 * CONSOLE_SCREENSHOT=docs/console.png writes the screenshot the README shows (otherwise it goes to the temp dir).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Browser, chromium, type Locator, type Page } from "playwright-core";
import { createKafka, encodeEnvelope, newEnvelope } from "../../topics/index.ts";
import { CHROMIUM, CHROMIUM_ARGS } from "../chromium.ts";
import { testConfig, waitFor } from "../support.ts";
import { type Json, type Service, slotTime, startService } from "./fixtures.ts";

const WAIT = { timeout: 30_000 };

let service: Service;
let browser: Browser;
let page: Page;
let admin: string;
const pageErrors: string[] = [];

beforeAll(async () => {
  service = await startService();
  admin = await service.token("admin", "console-test");
  browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
  page = await browser.newPage({ viewport: { width: 1680, height: 1050 } });
  page.on("pageerror", (error) => pageErrors.push(String(error)));
  page.on("console", (message) => {
    // (A refused call is logged by the browser as a failed resource: the tests provoke some, and check them.)
    if (message.type() === "error" && !message.text().startsWith("Failed to load resource"))
      pageErrors.push(message.text());
  });
}, 120_000);
afterAll(async () => {
  await browser?.close();
  await service?.stop();
}, 60_000);

/** The element's text as the page shows it now. */
const text = async (locator: Locator) => ((await locator.textContent()) ?? "").trim();

/** Waits until the element's text satisfies `test` (a regular expression on the page side). */
async function untilText(selector: string, pattern: RegExp, what: string, timeout = WAIT.timeout) {
  try {
    await page.waitForFunction(
      ([sel, source, flags]) =>
        new RegExp(source as string, flags).test(document.querySelector(sel as string)?.textContent ?? ""),
      [selector, pattern.source, pattern.flags],
      { timeout, polling: 100 },
    );
  } catch (error) {
    const now = await page
      .locator(selector)
      .first()
      .textContent()
      .catch(() => null);
    throw new Error(`${what}: ${selector} never matched ${pattern} (it shows ${JSON.stringify(now)})`, {
      cause: error,
    });
  }
}

/** Answers the console's reason dialog. */
async function giveReason(reason: string) {
  await page.locator("#reason-dialog").waitFor({ state: "visible", ...WAIT });
  await page.fill("#reason-input", reason);
  await page.click("#reason-confirm");
  await page.locator("#reason-dialog").waitFor({ state: "hidden", ...WAIT });
}

let booked = 0;
async function book(customer: string) {
  const answer = await service.call("POST", "/api/v1/bookings", {
    token: customer,
    body: {
      vehicleId: `v-console-${booked}`,
      serviceType: "OIL_CHANGE",
      bookingDate: slotTime(7000 + booked++),
    },
  });
  expect(answer.status).toBe(201);
  return answer.body as Json;
}

/** A command the booking actor cannot decode (its payload is off-schema): it is dead-lettered. */
async function poison(...keys: string[]) {
  const kafka = createKafka({ brokers: testConfig().kafka.brokers, clientId: `${service.namespace}-poison` });
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  await producer.send({
    topic: `${service.namespace}.booking-mailbox`,
    acks: -1,
    messages: keys.map((key) => ({
      key,
      value: encodeEnvelope(newEnvelope({ eventType: "CREATE", entityId: key, payload: { nope: 1 } })),
    })),
  });
  await producer.disconnect();
}

describe("the ops console", () => {
  test("is one page of our own; a customer's token gets the API's 403, the live feed refuses it; an admin logs in and the feed runs", async () => {
    const served = await page.goto(`${service.baseUrl}/ops`);
    expect(served?.status()).toBe(200);
    expect(served?.headers()["content-security-policy"]).toContain("default-src 'none'");
    await page.locator("#login").waitFor({ state: "visible", ...WAIT });
    // The page is not part of the API's document.
    const docs = Object.keys((await service.call("GET", "/docs/json")).body.paths);
    expect(docs.filter((p) => p === "/ops" || p.startsWith("/ops/"))).toEqual([]);

    const customer = await service.token("customer", `console-${Bun.randomUUIDv7()}`);
    await page.fill("#token-input", customer);
    await page.click("#login-button");
    await untilText(
      "#login-error",
      /^403 forbidden: this needs the admin role; the token has customer$/,
      "refused",
    );
    expect(await page.locator("#console").isVisible()).toBe(false);
    // The live feed refuses it before the upgrade, with the API's answer.
    const refused = await fetch(`${service.baseUrl}/api/v1/ops/live?token=${customer}`, {
      headers: {
        connection: "upgrade",
        upgrade: "websocket",
        "sec-websocket-version": "13",
        "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
      },
    });
    expect(refused.status).toBe(403);
    expect((await refused.json()).error.code).toBe("forbidden");

    await page.fill("#token-input", admin);
    await page.click("#login-button");
    await page.locator("#console").waitFor({ state: "visible", ...WAIT });
    await page.waitForFunction(
      () => document.querySelector("#live-status")?.getAttribute("data-state") === "live",
      null,
      WAIT,
    );
    // Every consumer group of the namespace is listed from the live snapshots.
    const booking = `pitstop-${service.namespace}.actor.booking`;
    await page.locator(`article[data-group-id="${booking}"] tbody tr`).nth(2).waitFor(WAIT);
    expect(await page.locator(`article[data-group-id="${booking}"] tbody tr`).count()).toBe(3);

    // The token stays for the tab: a reload is still logged in.
    await page.reload();
    await page.waitForFunction(
      () => document.querySelector("#live-status")?.getAttribute("data-state") === "live",
      null,
      WAIT,
    );
    expect(await text(page.locator("#principal"))).toBe("console-test (admin)");
  }, 60_000);

  test("shows the hosts with the partitions each owns and their lag", async () => {
    const hosts = await service.call("GET", "/api/v1/ops/hosts", { token: admin });
    expect(hosts.status).toBe(200);
    const ours = (hosts.body as Json[]).find((h) => String(h.hostId).includes(`:${process.pid}:`) && h.up);
    expect(ours).toBeDefined();
    const row = page.locator(`#hosts tbody[data-host-id="${ours.hostId}"]`);
    await row.waitFor(WAIT);
    expect(await text(row.locator('[data-field="up"]'))).toBe("up");
    const reactors = `pitstop-${service.namespace}.reactors`;
    await untilText(
      `#hosts tbody[data-host-id="${ours.hostId}"] [data-field="partitions"]`,
      new RegExp(`${reactors.replaceAll(".", "\\.")}`),
      "the reactors' partitions on the host",
    );
    expect(
      await text(row.locator(`.chip[data-topic="${service.namespace}.booking-events"][data-partition="0"]`)),
    ).toMatch(/^.+\[0\] lag \d+$/);
  }, 60_000);

  test("looks up a booking: its actor's status, version, position and state; parks and unparks it", async () => {
    const customer = await service.token("customer", `console-${Bun.randomUUIDv7()}`);
    const { bookingId } = await book(customer);
    await page.fill("#actor-kind", "booking");
    await page.fill("#actor-key", bookingId);
    await page.click("#actor-lookup");
    await untilText("#actor-status", /^CONFIRMED$/, "the booking's status");
    expect(Number(await text(page.locator("#actor-version")))).toBeGreaterThanOrEqual(2);
    expect(await text(page.locator("#actor-position"))).toMatch(/^partition \d @ \d+$/);
    expect(JSON.parse(await text(page.locator("#actor-state")))).toMatchObject({ status: "CONFIRMED" });
    expect(await text(page.locator("#actor-id"))).toBe(`booking/${bookingId}`);

    await page.click("#actor-park");
    await giveReason("console test: hold it");
    await untilText("#actor-parked", /^parked since /, "parked");
    const view = await service.call("GET", `/api/v1/ops/actors/booking/${bookingId}`, { token: admin });
    expect(view.body.parked).toBe(true);
    await page.click("#actor-unpark");
    await giveReason("");
    await untilText("#actor-parked", /^no/, "unparked");
    expect(
      (await service.call("GET", `/api/v1/ops/actors/booking/${bookingId}`, { token: admin })).body.parked,
    ).toBe(false);

    await page.fill("#actor-key", "no-such-booking");
    await page.click("#actor-lookup");
    await untilText(
      '[data-testid="actor-error"]',
      /^404 not_found: actor booking\/no-such-booking not found$/,
      "404",
    );
  }, 60_000);

  test("replays a dead letter and skips another with a reason; keys are shown as text, never as HTML", async () => {
    const uid = Bun.randomUUIDv7().slice(-8);
    const plain = `poison-${uid}`;
    const hostile = `<img src=x onerror="window.__pwned=1">&amp;-${uid}`;
    await poison(plain, hostile);
    const lettersOf = async (key: string) =>
      (
        await service.call(
          "GET",
          `/api/v1/ops/dead-letters?consumer=booking&key=${encodeURIComponent(key)}`,
          {
            token: admin,
          },
        )
      ).body as Json[];
    const letterOf = (key: string) =>
      waitFor(async () => (await lettersOf(key))[0], {
        timeoutMs: 30_000,
        what: `the dead letter of ${key}`,
      });
    const [first, second] = [await letterOf(plain), await letterOf(hostile)];
    const rowOf = (id: number) => `#dead-letters tr[data-dead-letter-id="${id}"]`;
    // (Filtered by key: the test database keeps other runs' dead letters.)
    const list = async (key: string) => {
      await page.fill("#dl-consumer", "booking");
      await page.fill("#dl-key", key);
      await page.click("#dl-refresh");
    };

    await list(hostile);
    await page.locator(rowOf(second.id)).waitFor(WAIT);
    expect(await text(page.locator(`${rowOf(second.id)} [data-field="key"]`))).toBe(hostile);
    expect(await page.locator("#dead-letters img").count()).toBe(0);
    expect(await page.evaluate(() => (window as unknown as { __pwned?: number }).__pwned)).toBeUndefined();
    await page.click(`${rowOf(second.id)} [data-testid="skip"]`);
    await page.locator("#reason-dialog").waitFor({ state: "visible", ...WAIT });
    await page.click("#reason-confirm"); // no reason: the dialog stays, a skip needs one
    expect(await page.locator("#reason-dialog").isVisible()).toBe(true);
    await giveReason("poison: not a booking command");
    await untilText(`${rowOf(second.id)} [data-field="status"]`, /^skipped$/, "marked skipped");
    await untilText("#message", new RegExp(`^skipped dead letter ${second.id}$`), "said skipped");
    expect(await page.locator(`${rowOf(second.id)} button`).count()).toBe(1); // the key's link only
    expect((await lettersOf(hostile)).map((d) => [d.id, d.status])).toEqual([[second.id, "skipped"]]);

    await list(plain);
    await page.locator(rowOf(first.id)).waitFor(WAIT);
    expect(await text(page.locator(`${rowOf(first.id)} [data-field="status"]`))).toBe("dead");
    await page.click(`${rowOf(first.id)} [data-testid="replay"]`);
    await untilText(`${rowOf(first.id)} [data-field="status"]`, /^replayed$/, "marked replayed");
    await untilText("#message", new RegExp(`^replayed dead letter ${first.id}$`), "said replayed");
    // Replayed, the record is as undecodable as before: the actor dead-letters it again, a new letter.
    await waitFor(async () => (await lettersOf(plain)).length === 2, {
      what: "the replayed record dead again",
    });
    await page.click("#dl-refresh");
    await page.locator("#dead-letters tbody tr").nth(1).waitFor(WAIT);
    expect(await page.locator('#dead-letters tbody tr[data-status="dead"]').count()).toBe(1);
  }, 90_000);

  test("a paused partition shows paused, its lag rises under load on the page and falls to 0 once resumed", async () => {
    const group = `pitstop-${service.namespace}.reactors`;
    const topic = `${service.namespace}.booking-events`;
    const row = `article[data-group-id="${group}"] tr[data-topic="${topic}"][data-partition="0"]`;
    const lag = async () => Number(await text(page.locator(`${row} [data-field="lag"]`)));
    await untilText(`${row} [data-field="lag"]`, /^0$/, "lag 0 before the pause", 60_000);

    await page.click(`${row} [data-testid="pause-toggle"]`);
    await giveReason("console test: hold the reactors");
    await untilText(`${row} [data-field="paused"]`, /^paused$/, "shown paused");
    expect(await text(page.locator(`${row} [data-testid="pause-toggle"]`))).toBe("Resume");
    const [pause] = (
      await service.call("GET", `/api/v1/ops/groups?group=${group}`, { token: admin })
    ).body[0].partitions.filter((p: Json) => p.topic === topic && p.partition === 0);
    expect(pause.paused).toBe(true);

    // Load: bookings until the paused partition's lag, as the page shows it, has grown past 3 records (each
    // booking's events go to its id's partition, one in three here).
    let customer = "";
    let last: Json;
    for (let i = 0; (await lag()) < 3; i++) {
      if (i >= 60) throw new Error(`60 bookings and the page still shows lag ${await lag()}`);
      if (i % 10 === 0) customer = await service.token("customer", `console-load-${Bun.randomUUIDv7()}`);
      last = await book(customer);
    }
    await untilText(`${row} [data-field="lag"]`, /^([3-9]|\d\d+)$/, "the lag risen");
    await untilText(
      `article[data-group-id="${group}"] [data-field="group-lag"]`,
      /^lag [1-9]\d*$/,
      "the group's lag risen",
    );
    // The chart drew it.
    await untilText(
      `article[data-group-id="${group}"] [data-field="rate"]`,
      /max lag [1-9]/,
      "the chart's maximum",
    );
    expect(
      (await page.getAttribute(`article[data-group-id="${group}"] polyline.lag`, "points"))?.split(" ")
        .length,
    ).toBeGreaterThan(2);

    // The screenshot of docs/console.png: the partition held with its lag, the charts, one of the load's bookings,
    // the dead letters of the test before.
    await page.fill("#actor-key", last.bookingId);
    await page.click("#actor-lookup");
    await untilText("#actor-status", /^CONFIRMED$/, "the booking's status");
    const file = process.env.CONSOLE_SCREENSHOT ?? join(tmpdir(), `pitstop-console-${service.namespace}.png`);
    await page.screenshot({ path: file, fullPage: true });
    expect((await Bun.file(file).arrayBuffer()).byteLength).toBeGreaterThan(10_000);

    await page.click(`${row} [data-testid="pause-toggle"]`);
    await giveReason("");
    await untilText(`${row} [data-field="paused"]`, /^no$/, "shown resumed");
    await untilText(`${row} [data-field="lag"]`, /^0$/, "the lag back to 0", 60_000);
    expect(await text(page.locator(`${row} [data-testid="pause-toggle"]`))).toBe("Pause");
    expect(pageErrors).toEqual([]);
  }, 120_000);
});
