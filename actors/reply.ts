/**
 * What an actor answers a caller: the entity as it now stands, or a refusal with a machine code and a reason a
 * person can read. A refusal is a business answer, not an error: the turn commits (so a copy of the command is
 * not decided twice) and nothing is retried or dead-lettered.
 */

export type RefusalCode =
  | "not_found" // the entity does not exist (yet)
  | "conflict" // the entity is not in a state that allows this
  | "slot_full" // the time slot has no capacity left
  | "invalid_transition" // a repair step out of order
  | "payment_declined"; // the gateway said no (or did not answer)

export type Reply<V> = { accepted: true; view: V } | { accepted: false; code: RefusalCode; reason: string };

export const accept = <V>(view: V): Reply<V> => ({ accepted: true, view });
export const refuse = (code: RefusalCode, reason: string): Reply<never> => ({
  accepted: false,
  code,
  reason,
});
