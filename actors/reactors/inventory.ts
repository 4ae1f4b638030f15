/**
 * The inventory reactor: a completed repair takes the parts it used out of stock. Stock never goes below zero;
 * what was used but not in stock is recorded as the movement's shortfall, and a part at or under its threshold
 * is flagged low. A part the catalogue does not know is recorded too (all of it short) and logged, never
 * failing the event: the repair happened either way.
 */
import { eq, sql } from "drizzle-orm";
import { schema } from "../../db/index.ts";
import { defineReactor, type ReactorDefinition } from "../../runtime/index.ts";
import type { PartUsed } from "../events.ts";
import { knownEvent } from "./known-event.ts";
import { type ReactorDeps, reactorLog } from "./reactor-deps.ts";

/**
 * One quantity per part (a part may be listed twice; a movement is unique per event and part), in id order so
 * that concurrent repairs lock part rows in the same order and cannot deadlock.
 */
export function quantitiesByPart(parts: PartUsed[]): [partId: string, quantity: number][] {
  const totals = new Map<string, number>();
  for (const { partId, quantity } of parts) totals.set(partId, (totals.get(partId) ?? 0) + quantity);
  return [...totals].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}

export function inventoryReactor(deps: ReactorDeps): ReactorDefinition {
  const log = reactorLog(deps, "inventory");
  const { part, partMovement } = schema;
  return defineReactor({
    name: "inventory",
    topics: [deps.topics.event("repair-events")],
    async handle(envelope, { tx, now }) {
      const event = knownEvent(envelope);
      if (event?.type !== "REPAIR_COMPLETED") return;
      const { repairId } = event.payload;
      for (const [partId, quantity] of quantitiesByPart(event.payload.parts)) {
        const [before] = await tx
          .select({ stock: part.stock })
          .from(part)
          .where(eq(part.id, partId))
          .for("update");
        if (before) {
          const left = sql`greatest(${part.stock} - ${quantity}, 0)`;
          const [after] = await tx
            .update(part)
            .set({ stock: left, lowStock: sql`${left} <= ${part.lowStockThreshold}`, updatedAt: now })
            .where(eq(part.id, partId))
            .returning({ stock: part.stock, lowStock: part.lowStock });
          if (after?.lowStock) log.info({ partId, stock: after.stock, repairId }, "part is low on stock");
        } else {
          log.warn(
            { partId, repairId, eventId: envelope.eventId },
            "repair used a part not in the catalogue",
          );
        }
        const shortfall = Math.max(quantity - (before?.stock ?? 0), 0);
        await tx
          .insert(partMovement)
          .values({ partId, eventId: envelope.eventId, repairId, quantity, shortfall, at: now })
          .onConflictDoNothing({ target: [partMovement.eventId, partMovement.partId] });
      }
    },
  });
}
