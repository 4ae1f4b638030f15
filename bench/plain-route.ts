/**
 * The plain baseline of bench/booking-vs-peer.ts and bench/booking-http.ts: one Elysia route `POST /bookings`
 * that validates the booking body with `t.Object` (its own copy of the body schema of http/routes/bookings.ts
 * CreateBooking) and inserts one row with postgres.js (pool 10, the system's size) into a scratch table,
 * answering 201 with the row. No auth, no slot check, no Kafka: what one insert per request costs over HTTP on
 * Bun.
 *
 * bench/booking-http.ts imports `plainDatabase`, `createPlainTable` and `plainApp` and serves it in its own
 * process; bench/booking-vs-peer.ts runs this file as a server process of its own:
 *
 *   PORT=8123 DATABASE_URL=postgres://postgres@127.0.0.1:5432/some_scratch_db node_modules/.bin/bun bench/plain-route.ts
 *
 * The database must exist (the benchmark creates a fresh one per round); the table `bench_plain_booking` is
 * created in it at start. Prints "plain-route listening on <port>" when it serves. SIGTERM/SIGINT stop it.
 */
import { Elysia, t } from "elysia";
import postgres, { type Sql } from "postgres";
import { serviceTypes } from "../actors/service-catalogue.ts";
import { Id, strict } from "../http/routes/schemas.ts";

/** The plain route's Postgres pool: db/client.ts openDatabase's default, which the system uses. */
export const PLAIN_POOL = 10;
/** The scratch table of the plain route when it runs as a process of its own. */
export const PLAIN_TABLE = "bench_plain_booking";

/** The plain route's postgres.js client (pool PLAIN_POOL, application_name bench-plain). */
export function plainDatabase(url: string): Sql {
  return postgres(url, {
    max: PLAIN_POOL,
    onnotice: () => {},
    connection: { application_name: "bench-plain" },
  });
}

/** Creates the plain route's scratch table `table` (if it is not there yet). */
export async function createPlainTable(sql: Sql, table: string = PLAIN_TABLE): Promise<void> {
  await sql`
    create table if not exists ${sql(table)} (
      id uuid primary key,
      customer_id text not null,
      vehicle_id text not null,
      service_type text not null,
      booking_date timestamptz not null,
      notes text,
      status text not null,
      created_at timestamptz not null default now()
    )`;
}

/**
 * The plain route's own body schema. It is meant to validate the same body as the service's `POST
 * /api/v1/bookings`, so it repeats http/routes/bookings.ts CreateBooking (which that module does not export):
 * keep the two alike when the service's changes.
 */
const PlainBookingBody = t.Object(
  {
    customerId: t.Optional(Id),
    vehicleId: Id,
    serviceType: t.UnionEnum(serviceTypes as [string, ...string[]]),
    bookingDate: t.String({ minLength: 1, maxLength: 40 }),
    notes: t.Optional(t.String({ maxLength: 500 })),
  },
  strict,
);

/** The plain app: `POST /bookings` validates the body and inserts one row into `table`, answering 201 with it. */
export function plainApp(sql: Sql, table: string = PLAIN_TABLE) {
  return new Elysia().post(
    "/bookings",
    async ({ body, set }) => {
      const [row] = await sql`
        insert into ${sql(table)} (id, customer_id, vehicle_id, service_type, booking_date, notes, status)
        values (${Bun.randomUUIDv7()}, ${body.customerId ?? "bench-plain"}, ${body.vehicleId}, ${body.serviceType},
                ${new Date(body.bookingDate)}, ${body.notes ?? null}, 'CONFIRMED')
        returning *`;
      set.status = 201;
      return row;
    },
    { body: PlainBookingBody },
  );
}

if (import.meta.main) {
  const port = Number(process.env.PORT ?? 0);
  const url = process.env.DATABASE_URL;
  if (!url) throw new Error("DATABASE_URL is required");

  const sql = plainDatabase(url);
  await createPlainTable(sql);
  const server = plainApp(sql).listen({ hostname: "127.0.0.1", port });
  console.log(`plain-route listening on ${server.server?.port}`);

  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    await server.stop(true);
    await sql.end({ timeout: 5 });
    process.exit(0);
  };
  process.on("SIGTERM", () => void stop());
  process.on("SIGINT", () => void stop());
}
