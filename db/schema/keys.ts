import { pgTable, text, timestamp } from "drizzle-orm/pg-core";

/**
 * Facts about the keys the stored data was built with — never key material. Row `blind_index`
 * holds an HMAC fingerprint of the blind-index key that computed every stored blind index and
 * source MAC, so a process started with another index key notices (searches and logins would
 * silently miss) and `npm run keys -- reindex` knows when it is done.
 */
export const keyMetadata = pgTable("key_metadata", {
  name: text("name").primaryKey(),
  /** base64url HMAC-SHA-256 fingerprint of the key (`server/crypto/fingerprint.ts`). */
  fingerprint: text("fingerprint").notNull(),
  updatedAt: timestamp("updated_at", { withTimezone: true, mode: "date" }).notNull(),
});
