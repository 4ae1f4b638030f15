/**
 * Every operation an operator runs through the ops API leaves a row in `ops_audit`: who (the token's subject),
 * what (the action and its target), when, and how it ended. A change and its audit row commit together; a
 * refused or failed operation is recorded too, after the fact.
 */
import type postgres from "postgres";
import type { Principal } from "./auth.ts";
import { HttpError } from "./errors.ts";

type Fields = Record<string, unknown>;

export async function audited<T extends Fields>(
  { sql, namespace }: { sql: postgres.Sql; namespace: string },
  principal: Principal,
  action: string,
  target: Fields,
  work: (tx: postgres.TransactionSql) => Promise<T>,
): Promise<T> {
  const who = `${principal.role}:${principal.sub}`;
  try {
    return (await sql.begin(async (tx) => {
      const outcome = await work(tx);
      await tx`insert into ops_audit (namespace, who, action, target, outcome)
        values (${namespace}, ${who}, ${action}, ${JSON.stringify(target)}::jsonb, ${JSON.stringify(outcome)}::jsonb)`;
      return outcome;
    })) as T;
  } catch (error) {
    const outcome =
      error instanceof HttpError
        ? { refused: error.code, message: error.message }
        : { failed: error instanceof Error ? error.message : String(error) };
    await sql`insert into ops_audit (namespace, who, action, target, outcome)
      values (${namespace}, ${who}, ${action}, ${JSON.stringify(target)}::jsonb, ${JSON.stringify(outcome)}::jsonb)`.catch(
      () => {}, // the operation's own error is the one to answer with
    );
    throw error;
  }
}
