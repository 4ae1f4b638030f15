/**
 * SIGTERM while requests are in flight (issue 9, item 8): the process says "draining", stops taking new
 * requests, answers every request already in flight with its real answer, then stops — nothing cut off.
 */
import { afterAll, expect, test } from "bun:test";
import { DEV_JWT_SECRET } from "../../config.ts";
import { createTokens } from "../../http/index.ts";
import { closedPort } from "../support.ts";
import { slotTime } from "./fixtures.ts";
import { serviceProcesses } from "./service-process.ts";

const service = serviceProcesses();
const { namespace } = service;
afterAll(() => service.stop(), 60_000);

test("the process as npm start runs it: a 100 KB token gets a JSON 431; SIGTERM with 20 bookings in flight: every one gets its real answer, then it exits 0", async () => {
  const port = await closedPort();
  const child = await service.start(port);
  const base = `http://127.0.0.1:${port}`;
  const tokens = createTokens(DEV_JWT_SECRET, 3600);
  const book = async (i: number) => {
    const token = await tokens.sign({ sub: `stop-${namespace}-${i}`, role: "customer" });
    return fetch(`${base}/api/v1/bookings`, {
      method: "POST",
      headers: {
        authorization: `Bearer ${token}`,
        "content-type": "application/json",
        "idempotency-key": `stop-${i}`,
      },
      body: JSON.stringify({
        vehicleId: `car-${i}`,
        serviceType: "OIL_CHANGE",
        bookingDate: slotTime(24 + Math.floor(Math.random() * 24 * 300) + i),
      }),
    }).then(
      (r) => r.status,
      () => 0, // cut off without an answer
    );
  };
  expect(await book(0)).toBe(201); // warm: the pipeline is up
  // Served as `npm start` serves it: a 100 KB token is refused with the error shape, not Bun's empty 431.
  const huge = await fetch(`${base}/api/v1/bookings`, {
    headers: { authorization: `Bearer ${"x".repeat(100_000)}` },
  });
  expect(huge.status).toBe(431);
  expect(await huge.json()).toMatchObject({ error: { code: "headers_too_large", retryable: false } });
  const inFlight = Promise.all(Array.from({ length: 20 }, (_, i) => book(i + 1)));
  await Bun.sleep(30); // sent, not answered yet (a booking takes three turns and two hops)
  const stoppedAt = Date.now();
  child.kill("SIGTERM");
  const answers = await inFlight;
  console.log(`[shutdown] answers: ${answers.join(" ")}`);
  expect(answers.filter((s) => s === 0)).toEqual([]); // nothing cut off
  for (const status of answers) expect([201, 202, 409]).toContain(status);
  // A request after the SIGTERM is not taken: refused by the closed listener, or 503 draining.
  const late = await fetch(`${base}/healthz`).then(
    (r) => r.status,
    () => 0,
  );
  expect([0, 503]).toContain(late);
  expect(await child.exited).toBe(0);
  console.log(`[shutdown] exited ${Date.now() - stoppedAt} ms after SIGTERM`);
}, 180_000);
