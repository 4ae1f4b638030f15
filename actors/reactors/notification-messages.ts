/**
 * What the customer is told about each event, on which channels: the seed's notification table in one switch.
 * Events not listed here send nothing.
 */
import { CURRENCY } from "../service-catalogue.ts";
import type { KnownEvent } from "./known-event.ts";
import type { Channel } from "./reactor-deps.ts";

export interface NotificationMessage {
  customerId: string;
  template: string;
  channels: Channel[];
  subject: string;
  body: string;
}

/** Amounts are in minor units (satang): 150000 -> "1500.00 THB". */
export function money(amount: number, currency: string = CURRENCY): string {
  return `${(amount / 100).toFixed(2)} ${currency}`;
}

/**
 * The message an event sends, or undefined when it sends none.
 *
 * @example
 * notificationFor({ type: "PAYMENT_COMPLETED", payload })?.channels; // ["email"]
 */
export function notificationFor(event: KnownEvent): NotificationMessage | undefined {
  const message = (
    customerId: string,
    template: string,
    channels: Channel[],
    subject: string,
    body: string,
  ) => ({
    customerId,
    template,
    channels,
    subject,
    body,
  });
  switch (event.type) {
    case "BOOKING_CREATED": {
      const p = event.payload;
      return message(
        p.customerId,
        "booking-confirmed",
        ["email", "sms", "push"],
        `Booking ${p.bookingId} is confirmed`,
        `Your ${p.serviceType} booking ${p.bookingId} for vehicle ${p.vehicleId} on ${p.bookingDate} is confirmed.`,
      );
    }
    case "BOOKING_REJECTED": {
      const p = event.payload;
      return message(
        p.customerId,
        "booking-rejected",
        ["email"],
        `Booking ${p.bookingId} could not be made`,
        `We could not book ${p.bookingId} (slot ${p.slotId}): ${p.reason}. Please choose another time.`,
      );
    }
    case "BOOKING_CANCELLED": {
      const p = event.payload;
      return message(
        p.customerId,
        "booking-cancelled",
        ["email", "sms"],
        `Booking ${p.bookingId} is cancelled`,
        `Your booking ${p.bookingId} was cancelled: ${p.reason}.`,
      );
    }
    case "BOOKING_RESCHEDULED": {
      const p = event.payload;
      return message(
        p.customerId,
        "booking-rescheduled",
        ["email"],
        `Booking ${p.bookingId} moved to ${p.bookingDate}`,
        `Your booking ${p.bookingId} moved from ${p.fromDate} to ${p.bookingDate}.`,
      );
    }
    case "REPAIR_STARTED": {
      const p = event.payload;
      return message(
        p.customerId,
        "repair-started",
        ["push"],
        "Work on your car has started",
        `Repair ${p.repairId} for booking ${p.bookingId} has started; it should take about ${p.estimatedMinutes} minutes.`,
      );
    }
    case "REPAIR_COMPLETED": {
      const p = event.payload;
      return message(
        p.customerId,
        "car-ready",
        ["sms", "push"],
        "Your car is ready",
        `Repair ${p.repairId} for booking ${p.bookingId} is done: your car is ready to collect.`,
      );
    }
    case "INVOICE_CREATED": {
      const p = event.payload;
      return message(
        p.customerId,
        "invoice",
        ["email"],
        `Invoice ${p.invoiceId}: ${money(p.amount, p.currency)}`,
        `Invoice ${p.invoiceId} for booking ${p.bookingId} is ${money(p.amount, p.currency)}, due by ${p.dueAt}.`,
      );
    }
    case "PAYMENT_COMPLETED": {
      const p = event.payload;
      return message(
        p.customerId,
        "receipt",
        ["email"],
        `Receipt for invoice ${p.invoiceId}`,
        `We received ${money(p.amount, p.currency)} for invoice ${p.invoiceId} (charge ${p.chargeId}). Thank you.`,
      );
    }
    case "PAYMENT_FAILED": {
      const p = event.payload;
      return message(
        p.customerId,
        "payment-failed",
        ["email"],
        `Payment for invoice ${p.invoiceId} failed`,
        `Payment of ${money(p.amount)} for invoice ${p.invoiceId} failed after ${p.attempts} attempt(s): ${p.reason}.`,
      );
    }
    case "PAYMENT_REFUNDED": {
      const p = event.payload;
      return message(
        p.customerId,
        "refund",
        ["email"],
        `Refund for invoice ${p.invoiceId}`,
        `${money(p.amount)} paid for invoice ${p.invoiceId} (charge ${p.chargeId}) has been refunded.`,
      );
    }
    case "INVOICE_REMINDER": {
      const p = event.payload;
      return message(
        p.customerId,
        "payment-reminder",
        ["email", "sms"],
        `Reminder: invoice ${p.invoiceId} is due`,
        `Invoice ${p.invoiceId} for booking ${p.bookingId}, ${money(p.amount)}, is due by ${p.dueAt}.`,
      );
    }
    case "ROLLBACK_BOOKING": {
      const p = event.payload;
      const refund = p.invoiceId
        ? ` Any prepayment on invoice ${p.invoiceId} is refunded.`
        : " Any prepayment is refunded.";
      return message(
        p.customerId,
        "booking-rolled-back",
        ["email", "sms"],
        `Booking ${p.bookingId} is cancelled`,
        `Your booking ${p.bookingId} was cancelled because payment failed (${p.reason}).${refund}`,
      );
    }
    default:
      return undefined;
  }
}
