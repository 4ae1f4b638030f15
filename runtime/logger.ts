/** Structured JSON logs (pino) for every process; the level comes from configuration. */
import pino, { type Logger } from "pino";

export type { Logger };

export function createLogger(level: string, name = "pitstop"): Logger {
  return pino({ name, level, base: { pid: process.pid } });
}
