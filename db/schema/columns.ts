import { sql } from "drizzle-orm";
import { integer, text, timestamp, uuid } from "drizzle-orm/pg-core";

/**
 * A PHI value sealed by `server/crypto/envelope.ts` (`hv1:keyId:iv:ct`). The brand keeps plaintext
 * strings from being written into an encrypted column by mistake.
 */
export type Ciphertext = string & { readonly __brand: "Ciphertext" };

/**
 * Marks on a column's config object (shared by the builder and the built column), so the key
 * registry (`server/crypto/registry.ts`) finds every encrypted and blind-index column from the
 * schema itself: a column added later with these helpers is rotated and re-indexed automatically.
 */
export const ENCRYPTED_COLUMN = Symbol.for("haven.column.encrypted");
export const BLIND_INDEX_COLUMN = Symbol.for("haven.column.blindIndex");

function mark<T extends object>(builder: T, flag: symbol): T {
  (builder as unknown as { config: Record<symbol, unknown> }).config[flag] = true;
  return builder;
}

/** True when `column` (a built Drizzle column) was declared with {@link encrypted}. */
export function isEncryptedColumn(column: object): boolean {
  return (column as { config?: Record<symbol, unknown> }).config?.[ENCRYPTED_COLUMN] === true;
}

/** True when `column` (a built Drizzle column) was declared with {@link blindIndexColumn}. */
export function isBlindIndexColumn(column: object): boolean {
  return (column as { config?: Record<symbol, unknown> }).config?.[BLIND_INDEX_COLUMN] === true;
}

/**
 * The one helper every table uses for encrypted columns: ciphertext text that names its key id.
 * Seal values with AAD `(<sql table>, <sql column>, <primary key>)` so rotation can re-encrypt them.
 */
export const encrypted = (name: string) => mark(text(name).$type<Ciphertext>(), ENCRYPTED_COLUMN);

/** Blind-index column (base64url HMAC-SHA-256), see `server/crypto/blind-index.ts`. */
export const blindIndexColumn = (name: string) => mark(text(name), BLIND_INDEX_COLUMN);

/** Primary key: UUIDv7 minted by the application (PostgreSQL 15 has no uuidv7()). */
export const id = () => uuid("id").primaryKey();

export const createdAt = () =>
  timestamp("created_at", { withTimezone: true, mode: "date" }).notNull().default(sql`now()`);
export const updatedAt = () =>
  timestamp("updated_at", { withTimezone: true, mode: "date" }).notNull().default(sql`now()`);
export const version = () => integer("version").notNull().default(1);
