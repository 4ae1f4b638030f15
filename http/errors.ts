/**
 * Errors of the HTTP edge, in one place: each carries a status, a machine code and whether retrying can help.
 * `errorHandling` turns them, Elysia's validation and parse errors, and anything unexpected into one JSON shape:
 *
 *   { "error": { "code": "invalid_request", "message": "...", "field": "/bookingDate", "retryable": false } }
 */
import { Elysia } from "elysia";
import type { Logger } from "../runtime/index.ts";
import { requestLog } from "./observability.ts";

export class HttpError extends Error {
  override name = "HttpError";
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly extra: { field?: string; retryable?: boolean; headers?: Record<string, string> } = {},
  ) {
    super(message);
  }
}

export const badRequest = (message: string, field?: string) =>
  new HttpError(400, "invalid_request", message, { field });
export const unprocessable = (message: string, field?: string) =>
  new HttpError(422, "invalid_request", message, { field });
export const unauthorized = (message: string) =>
  new HttpError(401, "unauthorized", message, { headers: { "www-authenticate": 'Bearer realm="pitstop"' } });
export const forbidden = (message: string) => new HttpError(403, "forbidden", message);
export const notFound = (what: string) => new HttpError(404, "not_found", `${what} not found`);

interface ErrorBody {
  error: { code: string; message: string; field?: string; retryable: boolean };
}

function body(code: string, message: string, retryable: boolean, field?: string): ErrorBody {
  return { error: { code, message, retryable, ...(field ? { field } : {}) } };
}

/** Elysia's validation error -> the first failing field and why (every problem in `details`). */
function validationBody(error: unknown) {
  const e = error as { all?: { path?: string; message?: string; summary?: string }[]; message?: string };
  const all = Array.isArray(e.all) ? e.all : [];
  const first = all[0];
  const field = first?.path || undefined;
  const message = first
    ? `${field ?? "body"}: ${first.summary ?? first.message ?? "is invalid"}`
    : "request is invalid";
  return {
    ...body("invalid_request", message, false, field),
    details: all.slice(0, 10).map((p) => ({ field: p.path || "/", message: p.summary ?? p.message })),
  };
}

export function errorHandling(log: Logger) {
  return new Elysia({ name: "pitstop-errors" }).onError({ as: "global" }, ({ code, error, set, request }) => {
    if (error instanceof HttpError) {
      set.status = error.status;
      Object.assign(set.headers, error.extra.headers ?? {});
      return body(error.code, error.message, error.extra.retryable ?? false, error.extra.field);
    }
    switch (code) {
      case "VALIDATION":
        set.status = 422;
        return validationBody(error);
      case "PARSE":
        set.status = 400;
        return body("invalid_request", "the body is not valid JSON", false);
      case "NOT_FOUND":
        set.status = 404;
        return body("not_found", "no such route", false);
      case "INVALID_COOKIE_SIGNATURE":
      case "INVALID_FILE_TYPE":
        set.status = 400;
        return body("invalid_request", String((error as Error).message), false);
      default: {
        requestLog(log, request).error({ err: error }, "request failed");
        set.status = 500;
        return body("internal", "something went wrong on our side; try again", true);
      }
    }
  });
}
