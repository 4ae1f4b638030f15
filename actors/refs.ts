/**
 * Where each actor kind of the service center lives in a namespace: its mailbox topic, and references to one
 * actor by key (what a turn or a route needs to send it a command).
 */
import type { ActorRef } from "../runtime/index.ts";
import type { Topics } from "./events.ts";
import { type ServiceType, slotKey } from "./service-catalogue.ts";

export type Kind = "booking" | "slot" | "repair" | "invoice" | "job-saga";

export interface Refs {
  topics: Topics;
  mailboxes: Record<Kind, string>;
  booking(key: string): ActorRef;
  slot(key: string): ActorRef;
  repair(key: string): ActorRef;
  invoice(key: string): ActorRef;
  jobSaga(key: string): ActorRef;
  /**
   * The slot actor's key for a booking time. Slots are the one natural key (every other id is a fresh UUID), so
   * in a test namespace it carries the namespace: two test runs never share a slot.
   */
  slotKey(serviceType: ServiceType, bookingDate: Date): string;
}

export function refsIn(topics: Topics): Refs {
  const mailboxes: Record<Kind, string> = {
    booking: topics.mailbox("booking-mailbox"),
    slot: topics.mailbox("slot-mailbox"),
    repair: topics.mailbox("repair-mailbox"),
    invoice: topics.mailbox("invoice-mailbox"),
    "job-saga": topics.mailbox("job-saga-mailbox"),
  };
  const ref = (kind: Kind) => (key: string) => ({ kind, mailbox: mailboxes[kind], key });
  return {
    topics,
    mailboxes,
    booking: ref("booking"),
    slot: ref("slot"),
    repair: ref("repair"),
    invoice: ref("invoice"),
    jobSaga: ref("job-saga"),
    slotKey: (serviceType, bookingDate) =>
      topics.namespace
        ? `${topics.namespace}/${slotKey(serviceType, bookingDate)}`
        : slotKey(serviceType, bookingDate),
  };
}
