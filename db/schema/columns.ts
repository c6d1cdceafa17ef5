import { sql } from "drizzle-orm";
import { integer, text, timestamp, uuid } from "drizzle-orm/pg-core";

/**
 * A PHI value sealed by `server/crypto/envelope.ts` (`hv1:keyId:iv:ct`). The brand keeps plaintext
 * strings from being written into an encrypted column by mistake.
 */
export type Ciphertext = string & { readonly __brand: "Ciphertext" };

/** The one helper every table uses for encrypted columns: ciphertext text that names its key id. */
export const encrypted = (name: string) => text(name).$type<Ciphertext>();

/** Blind-index column (base64url HMAC-SHA-256), see `server/crypto/blind-index.ts`. */
export const blindIndexColumn = (name: string) => text(name);

/** Primary key: UUIDv7 minted by the application (PostgreSQL 15 has no uuidv7()). */
export const id = () => uuid("id").primaryKey();

export const createdAt = () =>
  timestamp("created_at", { withTimezone: true, mode: "date" }).notNull().default(sql`now()`);
export const updatedAt = () =>
  timestamp("updated_at", { withTimezone: true, mode: "date" }).notNull().default(sql`now()`);
export const version = () => integer("version").notNull().default(1);
