/**
 * Text the service can store, checked at the edge: Postgres `text` refuses NUL and `jsonb` refuses lone UTF-16
 * surrogates, so a field carrying one would fail deep inside a turn (a 503, a dead letter) instead of being
 * refused here. Every body, query and path value is walked before validation; the first such string (or object
 * key) answers 422 with its JSON pointer.
 */
import { Elysia } from "elysia";
import { isStorableText } from "../runtime/index.ts";
import { unprocessable } from "./errors.ts";

/** The JSON pointer of the first string in `value` (keys included) Postgres cannot store, if any. */
export function firstUnstorable(value: unknown, at = ""): string | undefined {
  if (typeof value === "string") return isStorableText(value) ? undefined : at || "/";
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const found = firstUnstorable(value[i], `${at}/${i}`);
      if (found) return found;
    }
    return undefined;
  }
  if (value && typeof value === "object") {
    for (const [key, inner] of Object.entries(value)) {
      const path = `${at}/${key.replaceAll("~", "~0").replaceAll("/", "~1")}`;
      if (!isStorableText(key)) return path;
      const found = firstUnstorable(inner, path);
      if (found) return found;
    }
  }
  return undefined;
}

/** Throws 422 naming the field when a string in `value` cannot be stored. */
export function requireStorable(value: unknown, prefix = ""): void {
  const field = firstUnstorable(value, prefix);
  if (field) {
    throw unprocessable(
      `${field} contains a character that cannot be stored (NUL or an unpaired UTF-16 surrogate)`,
      field,
    );
  }
}

/** Elysia plugin: every request's body, query and path parameters are checked before validation. */
export function storableInput() {
  return new Elysia({ name: "pitstop-storable-input" }).onTransform(
    { as: "global" },
    ({ body, query, params }) => {
      requireStorable(params, "/params");
      requireStorable(query, "/query");
      requireStorable(body);
    },
  );
}
