/**
 * Text Postgres can hold. `text` refuses NUL (0x00) and `jsonb` refuses `\u0000` and lone UTF-16 surrogates
 * (`\ud800`): a record's key, headers or an error message carrying one would make the very row that records the
 * failure (a dead letter) fail too. Such characters are replaced with U+FFFD where text is stored for people.
 */

/** Whether `text` can be stored in a Postgres `text` or `jsonb` string as it is. */
export function isStorableText(text: string): boolean {
  return !text.includes("\u0000") && text.isWellFormed();
}

/** `text` with NUL and lone surrogates replaced by U+FFFD (unchanged when already storable). */
export function storableText(text: string): string {
  return isStorableText(text) ? text : text.toWellFormed().replaceAll("\u0000", "\uFFFD");
}

/** Headers with every name and value made storable. */
export function storableHeaders(headers: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(headers).map(([k, v]) => [storableText(k), storableText(v)]));
}
