/**
 * The README's walk-through ("The service center, step by step"), run as written, twice in a row, against the
 * service: its shell blocks in order (all but the `watch` one, which runs until stopped), with `localhost:3000`
 * pointed at the test's port. Each run books, repairs, invoices and pays a job of its own.
 */
import { afterAll, beforeAll, expect, test } from "bun:test";
import { join } from "node:path";
import { type Service, startService } from "./fixtures.ts";

let service: Service;
beforeAll(async () => {
  service = await startService();
}, 120_000);
afterAll(() => service?.stop(), 60_000);

const root = join(import.meta.dir, "..", "..");

async function walkThrough(): Promise<string> {
  const readme = await Bun.file(join(root, "README.md")).text();
  const section = readme.split("## The service center, step by step")[1]?.split("\n## ")[0] ?? "";
  const blocks = [...section.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1] as string);
  expect(blocks.length).toBeGreaterThanOrEqual(5);
  const port = new URL(service.baseUrl).port;
  const script = blocks
    .filter((block) => !block.includes("npm run -s watch"))
    .join("\n")
    .replaceAll("localhost:3000", `localhost:${port}`);
  const run = Bun.spawn(["bash", "-c", `set -u\n${script}\necho "BOOKING_ID=$BOOKING_ID"`], {
    cwd: root,
    stdout: "pipe",
    stderr: "pipe",
  });
  const [out, err, code] = await Promise.all([
    new Response(run.stdout).text(),
    new Response(run.stderr).text(),
    run.exited,
  ]);
  expect({ code, err }).toEqual({ code: 0, err: "" });
  return out;
}

/** What each step printed: booking, repair, 3 progress answers, completion, invoice, payment, status, job. */
function check(out: string) {
  const lines = out.trim().split("\n");
  const json = (line: string | undefined) => JSON.parse(line ?? "null");
  const booking = json(lines[0]);
  expect(booking).toMatchObject({ status: "CONFIRMED", customerId: "alice", serviceType: "OIL_CHANGE" });
  expect(json(lines[1])).toMatchObject({ status: "STARTED", bookingId: booking.bookingId });
  expect(lines.slice(2, 5).map((l) => json(l).status)).toEqual(["DIAGNOSING", "REPAIRING", "TESTING"]);
  expect(json(lines[5])).toMatchObject({ status: "COMPLETED" });
  const invoice = json(lines[6]);
  expect(invoice).toMatchObject({ status: "OPEN", bookingId: booking.bookingId });
  expect(json(lines[7])).toMatchObject({ status: "PAID", invoiceId: invoice.invoiceId });
  expect(lines[8]).toBe("PAID");
  expect(json(lines[9])).toMatchObject({ bookingId: booking.bookingId, status: "PAID" });
  expect(lines[10]).toBe(`BOOKING_ID=${booking.bookingId}`);
  return booking.bookingId as string;
}

test("the README's walk-through runs as written, twice in a row: each run a job of its own, paid", async () => {
  const first = check(await walkThrough());
  const second = check(await walkThrough());
  expect(second).not.toBe(first);
}, 180_000);
