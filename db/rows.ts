/**
 * Rows of a raw `db.execute(sql…)` result. postgres.js returns an array of rows, PGlite an object
 * with `rows`; Haven runs on both (ARCHITECTURE §5).
 * @throws Error when the driver returned neither shape
 */
export function rowsOf<T>(result: unknown): T[] {
  if (Array.isArray(result)) return result as T[];
  const rows = (result as { rows?: unknown } | null)?.rows;
  if (Array.isArray(rows)) return rows as T[];
  throw new Error("unexpected database result shape");
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;

/**
 * `rows` as the JSON text of ONE bind parameter for `jsonb_to_recordset($1::jsonb)` (a multi-row
 * write with one parameter instead of one per value). Strings get what a text parameter gets on
 * the wire: a lone UTF-16 surrogate becomes U+FFFD (UTF-8 encoding replaces it; Postgres' jsonb
 * parser would instead refuse the `\uD800` escape JSON.stringify writes). `undefined` fields are
 * dropped, which `jsonb_to_recordset` reads as NULL, like JSON null.
 */
export function recordsetJson(rows: readonly object[]): string {
  return JSON.stringify(rows, (_key, value: unknown) =>
    typeof value === "string" ? value.replace(LONE_SURROGATE, "\uFFFD") : value,
  );
}
