import { and, eq, gt, lt, or, type SQL } from "drizzle-orm";
import type { PgColumn } from "drizzle-orm/pg-core";
import { ValidationError } from "./errors.ts";
import { isInstantInRange } from "./input-guard.ts";

/**
 * Keyset pagination over `(time, id)`, shared by every cursor-paged listing (appointments,
 * reminders, audit, break-the-glass review). Offsets skip or repeat rows when rows are added
 * between pages; a keyset does not.
 */

/** Where the previous page ended: its last row's time (UTC) and id. */
export interface KeysetPosition {
  at: Date;
  id: string;
}

/** Cursor = base64url of `<time ISO>|<id>`; opaque to clients. */
export function encodeCursor(at: Date, id: string): string {
  return Buffer.from(`${at.toISOString()}|${id}`, "utf8").toString("base64url");
}

/** @throws ValidationError (`bad_cursor`) for anything {@link encodeCursor} did not produce */
export function decodeCursor(cursor: string): KeysetPosition {
  const [iso, id, ...rest] = Buffer.from(cursor, "base64url").toString("utf8").split("|");
  const at = new Date(iso ?? "");
  // Only what encodeCursor writes: a 4-digit-year ISO instant in range and a canonical uuid.
  if (
    rest.length > 0 ||
    !id ||
    !/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/.test(iso ?? "") ||
    !isInstantInRange(at) ||
    !/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(id)
  ) {
    throw new ValidationError("Malformed cursor", "bad_cursor");
  }
  return { at, id };
}

/** Decode an optional cursor (`undefined` = first page). @throws ValidationError (`bad_cursor`) */
export function decodeOptionalCursor(cursor: string | undefined): KeysetPosition | null {
  return cursor ? decodeCursor(cursor) : null;
}

/**
 * The rows after `position` in `(time, id)` order, ascending or descending; `undefined` (no
 * condition) for the first page. Order the query by the same two columns in the same direction.
 */
export function keysetAfter(
  position: KeysetPosition | null,
  time: PgColumn,
  id: PgColumn,
  order: "asc" | "desc",
): SQL | undefined {
  if (!position) return undefined;
  const beyond = order === "asc" ? gt : lt;
  return or(beyond(time, position.at), and(eq(time, position.at), beyond(id, position.id)));
}
