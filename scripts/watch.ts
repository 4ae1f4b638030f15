/**
 * Watches bookings and repairs live over the WebSocket, printing each frame as one JSON line:
 *
 *   npm run -s watch -- --token "$CUSTOMER" --booking "$BOOKING_ID" [--repair "$REPAIR_ID"] [--port 3000 | --url ws://host:3000/ws]
 *
 * Runs until Ctrl-C.
 */
import { parseArgs } from "node:util";

const { values } = parseArgs({
  options: {
    token: { type: "string" },
    booking: { type: "string", multiple: true, default: [] },
    repair: { type: "string", multiple: true, default: [] },
    port: { type: "string" },
    url: { type: "string" },
  },
});
// --url names the whole address; --port (or PORT) only the local port.
values.url ??= `ws://127.0.0.1:${values.port ?? process.env.PORT ?? 3000}/ws`;
if (!values.token || (values.booking.length === 0 && values.repair.length === 0)) {
  console.error("watch: give --token and at least one --booking or --repair");
  process.exit(1);
}
const socket = new WebSocket(`${values.url}?token=${encodeURIComponent(values.token)}`);
socket.onopen = () => {
  for (const bookingId of values.booking) socket.send(JSON.stringify({ type: "subscribe", bookingId }));
  for (const repairId of values.repair) socket.send(JSON.stringify({ type: "subscribe", repairId }));
};
socket.onmessage = (event) => console.log(String(event.data));
socket.onclose = (event) => {
  console.error(`watch: connection closed (${event.code}${event.reason ? `: ${event.reason}` : ""})`);
  process.exit(event.code === 1000 ? 0 : 1);
};
