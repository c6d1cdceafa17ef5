import { integer, jsonb, pgTable, text, timestamp, uuid } from "drizzle-orm/pg-core";

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

/**
 * Live Haven servers and the PHI keys each holds. Every server upserts its row on a
 * heartbeat and deletes it on shutdown; a row whose `expires_at` has passed belongs to a server
 * that died. `npm run keys -- rotate` refuses to re-encrypt under a key some live server lacks.
 * Holds key ids and fingerprints only, never key material.
 */
export const serverInstances = pgTable("server_instances", {
  /** UUIDv7 minted by the server at start. */
  id: uuid("id").primaryKey(),
  hostname: text("hostname").notNull(),
  pid: integer("pid").notNull(),
  /** Base URL the server listens on, once it does. */
  url: text("url"),
  activeKeyId: text("active_key_id").notNull(),
  /** PHI key id → base64url HMAC fingerprint of that key (`server/crypto/fingerprint.ts`). */
  keyFingerprints: jsonb("key_fingerprints").$type<Record<string, string>>().notNull(),
  startedAt: timestamp("started_at", { withTimezone: true, mode: "date" }).notNull(),
  heartbeatAt: timestamp("heartbeat_at", { withTimezone: true, mode: "date" }).notNull(),
  /** Database time after which the row no longer counts as a live server (3 heartbeats). */
  expiresAt: timestamp("expires_at", { withTimezone: true, mode: "date" }).notNull(),
});
