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
