/** Request schemas shared by the routes: ids, dates, paging. Unknown fields are refused (422), never stored. */
import { t } from "elysia";
import { unprocessable } from "../errors.ts";

export const Id = t.String({ minLength: 1, maxLength: 100, pattern: "^[A-Za-z0-9._:@-]+$" });
export const IdParams = t.Object({ id: Id });
export const ListQuery = t.Object({
  limit: t.Optional(t.Numeric({ minimum: 1, maximum: 200 })),
  /** Staff only: whose entities (customers always see their own). */
  customerId: t.Optional(Id),
});
export const strict = { additionalProperties: false } as const;

const ISO_DATE_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2})$/;
const MAX_AHEAD_MS = 365 * 24 * 3600 * 1000;

/** A booking time: an ISO 8601 date-time with a zone, in the future, at most a year ahead. */
export function bookingTime(value: string, field: string, now = new Date()): Date {
  const at = new Date(value);
  if (!ISO_DATE_TIME.test(value) || Number.isNaN(at.getTime())) {
    throw unprocessable(
      `${field} must be an ISO 8601 date-time with a zone, e.g. 2026-12-01T09:00:00Z`,
      field,
    );
  }
  if (at.getTime() <= now.getTime()) throw unprocessable(`${field} must be in the future`, field);
  if (at.getTime() > now.getTime() + MAX_AHEAD_MS)
    throw unprocessable(`${field} must be within a year`, field);
  return at;
}
