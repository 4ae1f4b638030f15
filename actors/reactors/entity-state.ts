/**
 * An entity's current state as its actor last committed it (actor_state), read in the reactor's transaction:
 * what the cache and the customer should see now, which may already be past the event being handled.
 */
import { and, eq } from "drizzle-orm";
import { schema } from "../../db/index.ts";
import type { ReactorContext } from "../../runtime/index.ts";

/** The actor kinds whose state reactors read (and the keys they are found by: booking, repair, invoice id). */
export type EntityKind = "booking" | "repair" | "invoice";

/**
 * The state of `kind`/`key`, or undefined when the actor has no row (never handled a message).
 *
 * @example
 * const booking = await entityState<BookingState>(ctx.tx, "booking", bookingId);
 */
export async function entityState<S extends { version: number }>(
  tx: ReactorContext["tx"],
  kind: EntityKind,
  key: string,
): Promise<S | undefined> {
  const { actorState } = schema;
  const [row] = await tx
    .select({ state: actorState.state })
    .from(actorState)
    .where(and(eq(actorState.kind, kind), eq(actorState.actorKey, key)));
  return row?.state as S | undefined;
}
