import { ValidationError } from "./errors.ts";

/** Keyset cursor over `(starts_at, id)`: base64url of `<startsAt ISO>|<id>`; opaque to clients. */
export function encodeCursor(startsAt: Date, id: string): string {
  return Buffer.from(`${startsAt.toISOString()}|${id}`, "utf8").toString("base64url");
}

/** @throws ValidationError (`bad_cursor`) for anything {@link encodeCursor} did not produce */
export function decodeCursor(cursor: string): { startsAt: Date; id: string } {
  const [iso, id] = Buffer.from(cursor, "base64url").toString("utf8").split("|");
  const startsAt = new Date(iso ?? "");
  if (!id || Number.isNaN(startsAt.getTime()) || !/^[0-9a-f-]{36}$/.test(id)) {
    throw new ValidationError("Malformed cursor", "bad_cursor");
  }
  return { startsAt, id };
}
