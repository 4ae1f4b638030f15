/**
 * The plain baseline of bench/booking-vs-peer.ts, as a server process of its own: one Elysia route
 * `POST /bookings` that validates the booking body with `t.Object` (the same schema as http/routes/bookings.ts
 * CreateBooking, as bench/booking-http.ts's in-process baseline) and inserts one row with postgres.js (pool 10,
 * the size bench/booking-http.ts uses) into a scratch table, answering 201 with the row. No auth, no slot check,
 * no Kafka: what one insert per request costs over HTTP on Bun.
 *
 *   PORT=8123 DATABASE_URL=postgres://postgres@127.0.0.1:5432/some_scratch_db node_modules/.bin/bun bench/plain-route.ts
 *
 * The database must exist (the benchmark creates a fresh one per round); the table `bench_plain_booking` is
 * created in it at start. Prints "plain-route listening on <port>" when it serves. SIGTERM/SIGINT stop it.
 */
import { Elysia, t } from "elysia";
import postgres from "postgres";
import { serviceTypes } from "../actors/service-catalogue.ts";
import { Id, strict } from "../http/routes/schemas.ts";

const PG_POOL = 10;
const port = Number(process.env.PORT ?? 0);
const url = process.env.DATABASE_URL;
if (!url) throw new Error("DATABASE_URL is required");

const sql = postgres(url, {
  max: PG_POOL,
  onnotice: () => {},
  connection: { application_name: "bench-plain" },
});
await sql`
  create table if not exists bench_plain_booking (
    id uuid primary key,
    customer_id text not null,
    vehicle_id text not null,
    service_type text not null,
    booking_date timestamptz not null,
    notes text,
    status text not null,
    created_at timestamptz not null default now()
  )`;

// The same body schema as http/routes/bookings.ts CreateBooking.
const PlainBooking = t.Object(
  {
    customerId: t.Optional(Id),
    vehicleId: Id,
    serviceType: t.UnionEnum(serviceTypes as [string, ...string[]]),
    bookingDate: t.String({ minLength: 1, maxLength: 40 }),
    notes: t.Optional(t.String({ maxLength: 500 })),
  },
  strict,
);

const app = new Elysia().post(
  "/bookings",
  async ({ body, set }) => {
    const [row] = await sql`
      insert into bench_plain_booking (id, customer_id, vehicle_id, service_type, booking_date, notes, status)
      values (${Bun.randomUUIDv7()}, ${body.customerId ?? "bench-plain"}, ${body.vehicleId}, ${body.serviceType},
              ${new Date(body.bookingDate)}, ${body.notes ?? null}, 'CONFIRMED')
      returning *`;
    set.status = 201;
    return row;
  },
  { body: PlainBooking },
);
const server = app.listen({ hostname: "127.0.0.1", port });
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
