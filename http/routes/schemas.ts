/** Request schemas shared by the routes: ids, dates, paging. Unknown fields are refused (422), never stored. */
import { t } from "elysia";
import { unprocessable } from "../errors.ts";

/** What an id may hold: letters, digits and `._:@-` (a NATS subject token, a Redis key part, a log field). */
export const ID_PATTERN = "^[A-Za-z0-9._:@-]+$";
export const Id = t.String({ minLength: 1, maxLength: 100, pattern: ID_PATTERN });
export const IdParams = t.Object({ id: Id });
/** A page size: a whole number (range checked by `pageSize`, which names the parameter when it is out of range). */
export const Limit = t.Optional(t.Integer({ description: "how many, a whole number from 1" }));
export const ListQuery = t.Object({
  limit: Limit,
  /** Staff only: whose entities (customers always see their own). */
  customerId: t.Optional(Id),
});
export const strict = { additionalProperties: false } as const;

/** The page size asked for (`fallback` when absent); 422 naming `limit` outside 1..max. */
export function pageSize(limit: number | undefined, fallback: number, max: number): number {
  if (limit === undefined) return fallback;
  if (!Number.isSafeInteger(limit) || limit < 1 || limit > max)
    throw unprocessable(`limit must be a whole number from 1 to ${max}`, "/limit");
  return limit;
}

const ISO_DATE_TIME =
  /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2})(?:\.\d{1,9})?)?(?:Z|[+-](\d{2}):(\d{2}))$/;
const MAX_AHEAD_MS = 365 * 24 * 3600 * 1000;

/** A booking time: an ISO 8601 date-time with a zone, in the future, at most a year ahead. */
export function bookingTime(value: string, field: string, now = new Date()): Date {
  const at = new Date(value);
  if (!isCalendarDateTime(value) || Number.isNaN(at.getTime())) {
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

/**
 * Whether `value` is an ISO 8601 date-time with a zone naming a real moment: JavaScript's Date rolls February 30
 * over to March 2 and takes 24:00, which would book a day the customer did not ask for.
 */
export function isCalendarDateTime(value: string): boolean {
  const m = ISO_DATE_TIME.exec(value);
  if (!m) return false;
  const [year, month, day, hour, minute, second, zoneHours, zoneMinutes] = m
    .slice(1)
    .map((x) => Number(x ?? 0));
  const daysInMonth = new Date(Date.UTC(year as number, month as number, 0)).getUTCDate();
  return (
    (month as number) >= 1 &&
    (month as number) <= 12 &&
    (day as number) >= 1 &&
    (day as number) <= daysInMonth &&
    (hour as number) <= 23 &&
    (minute as number) <= 59 &&
    (second as number) <= 59 &&
    (zoneHours as number) <= 23 &&
    (zoneMinutes as number) <= 59
  );
}
