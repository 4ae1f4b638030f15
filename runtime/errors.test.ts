import { describe, expect, test } from "bun:test";
import { classifyError } from "./errors.ts";

const pg = (code: string) => Object.assign(new Error(`postgres ${code}`), { code });

describe("classifyError", () => {
  test("Postgres errors that a retry can cure are retryable; the message's own faults are not", () => {
    // 25P02: an earlier statement of the transaction failed (a deps long run dead-lettered one when Postgres was
    // cut mid-transaction); 25P01: a statement of a transaction whose session was ended arrived on a new one
    // (postgres.js after the connection closed: "ROLLBACK TO SAVEPOINT can only be used in transaction blocks",
    // dead-lettered twice in a long deps run); 08006 connection failure; 40P01 deadlock; 57P01 admin shutdown.
    for (const code of ["25P01", "25P02", "25P03", "08006", "40P01", "40001", "53300", "57P01"]) {
      expect(classifyError(pg(code))).toMatchObject({ retryable: true, code });
    }
    // 22P05 untranslatable character, 23505 unique violation, 22P02 invalid text: the same input fails again.
    for (const code of ["22P05", "23505", "22P02"]) expect(classifyError(pg(code)).retryable).toBe(false);
  });
});
