/**
 * A time slot of one service type (key: `OIL_CHANGE@2026-12-01T09:00:00.000Z`). It holds at most `capacity`
 * bookings. Because one actor decides every hold of its slot, one turn at a time, two requests can never both
 * take the last place (the seed's `isSlotAvailable` check-then-insert could).
 */
import { Type } from "@sinclair/typebox";
import { defineActor } from "../../runtime/index.ts";
import type { Refs } from "../refs.ts";

export interface SlotState {
  /** Booking id -> when it was held. */
  holds: Record<string, { customerId: string; at: string }>;
}

const Purpose = Type.Union([Type.Literal("create"), Type.Literal("reschedule")]);

export const slotMessages = {
  HOLD: Type.Object({
    bookingId: Type.String(),
    customerId: Type.String(),
    capacity: Type.Integer({ minimum: 1 }),
    purpose: Purpose,
  }),
  RELEASE: Type.Object({ bookingId: Type.String() }),
};

export function slotActor(refs: Refs) {
  return defineActor({
    kind: "slot",
    mailbox: refs.mailboxes.slot,
    initialState: (): SlotState => ({ holds: {} }),
    messages: slotMessages,
    handle(state, message, ctx) {
      const toBooking = (bookingId: string, type: string, payload: Record<string, unknown>) => ({
        to: refs.booking(bookingId),
        type,
        payload: { slotId: ctx.key, ...payload },
        forwardReply: true, // the booking answers whoever asked for it
      });
      switch (message.type) {
        case "HOLD": {
          const { bookingId, customerId, capacity, purpose } = message.payload;
          if (state.holds[bookingId])
            return { state, send: [toBooking(bookingId, "SLOT_HELD", { purpose })] };
          const taken = Object.keys(state.holds).length;
          if (taken >= capacity) {
            const reason = `slot ${ctx.key} is full: ${taken} of ${capacity} places taken`;
            return { state, send: [toBooking(bookingId, "SLOT_REFUSED", { purpose, reason })] };
          }
          return {
            state: { holds: { ...state.holds, [bookingId]: { customerId, at: ctx.now.toISOString() } } },
            send: [toBooking(bookingId, "SLOT_HELD", { purpose })],
          };
        }
        case "RELEASE": {
          if (!state.holds[message.payload.bookingId]) return { state };
          const { [message.payload.bookingId]: _released, ...holds } = state.holds;
          return { state: { holds } };
        }
      }
    },
  });
}
