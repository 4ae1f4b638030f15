/**
 * What the service center offers: service types, how many cars of a type one time slot takes, and labour
 * rates. Slots are one hour long (UTC), so a slot is a service type and the hour it starts.
 */

export const SERVICE_TYPES = {
  OIL_CHANGE: { name: "Oil change", capacityPerSlot: 3 },
  BRAKE_SERVICE: { name: "Brake service", capacityPerSlot: 3 },
  TIRE_CHANGE: { name: "Tire change", capacityPerSlot: 3 },
  INSPECTION: { name: "Inspection", capacityPerSlot: 3 },
  GENERAL_REPAIR: { name: "General repair", capacityPerSlot: 3 },
} as const;

export type ServiceType = keyof typeof SERVICE_TYPES;
export const serviceTypes = Object.keys(SERVICE_TYPES) as ServiceType[];

/** Labour is billed per started quarter hour at this rate (minor units, THB satang). */
export const LABOUR_RATE_PER_HOUR = 80_000;
export const CURRENCY = "THB";

/** The hour a booking's time falls in, as an ISO string ("2026-12-01T09:00:00.000Z"). */
export function slotStart(bookingDate: Date): string {
  const hour = new Date(bookingDate);
  hour.setUTCMinutes(0, 0, 0);
  return hour.toISOString();
}

/** The slot actor's key: a service type and the hour it starts. */
export function slotKey(serviceType: ServiceType, bookingDate: Date): string {
  return `${serviceType}@${slotStart(bookingDate)}`;
}
