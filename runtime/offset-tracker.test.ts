import { describe, expect, test } from "bun:test";
import { backoffDelay } from "./backoff.ts";
import { OffsetTracker } from "./offset-tracker.ts";

describe("offset tracker", () => {
  test("commits only the contiguous run of finished offsets", () => {
    const t = new OffsetTracker(10n);
    for (const o of [10n, 11n, 12n, 13n]) t.add(o);
    expect(t.committable()).toBe(10n);
    t.finish(12n);
    t.finish(11n);
    expect(t.committable()).toBe(10n); // 10 still running: nothing beyond it
    t.finish(10n);
    expect(t.committable()).toBe(13n);
    t.finish(13n);
    expect(t.committable()).toBe(14n);
    expect(t.pending).toBe(0);
  });

  test("gaps in offsets (compaction, transaction markers) do not hold the position back", () => {
    const t = new OffsetTracker(0n);
    t.add(0n);
    t.add(5n);
    t.finish(0n);
    expect(t.committable()).toBe(5n);
    t.finish(5n);
    expect(t.committable()).toBe(6n);
  });

  test("refuses an offset below the dispatch position", () => {
    const t = new OffsetTracker(3n);
    t.add(3n);
    expect(() => t.add(2n)).toThrow("out of order");
  });

  test("a long run of random finishes ends at the last offset + 1 and never passes an unfinished one", () => {
    const t = new OffsetTracker(0n);
    const offsets = Array.from({ length: 5000 }, (_, i) => BigInt(i));
    for (const o of offsets) t.add(o);
    const order = [...offsets].sort(() => Math.random() - 0.5);
    const finished = new Set<bigint>();
    for (const o of order) {
      t.finish(o);
      finished.add(o);
      const c = t.committable();
      for (let i = 0n; i < c; i++) expect(finished.has(i)).toBe(true);
      if (c < 5000n) expect(finished.has(c)).toBe(false);
    }
    expect(t.committable()).toBe(5000n);
  });
});

describe("backoff", () => {
  const policy = { baseMs: 1000, maxMs: 8000, jitter: 0 };
  test("doubles from the base up to the cap", () => {
    expect([1, 2, 3, 4, 5].map((a) => backoffDelay(policy, a))).toEqual([1000, 2000, 4000, 8000, 8000]);
  });
  test("jitter stays within its fraction", () => {
    const jittery = { ...policy, jitter: 0.2 };
    expect(backoffDelay(jittery, 1, () => 0)).toBe(800);
    expect(backoffDelay(jittery, 1, () => 1)).toBe(1200);
  });
});
