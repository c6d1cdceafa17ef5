import { sql } from "drizzle-orm";
import {
  bigint,
  boolean,
  index,
  pgEnum,
  pgTable,
  text,
  timestamp,
  uuid,
} from "drizzle-orm/pg-core";
import { blindIndexColumn, createdAt, encrypted, id, updatedAt } from "./columns.ts";
import { organizations } from "./organizations.ts";

export const roleEnum = pgEnum("role", ["patient", "clinician", "staff", "admin", "service"]);

const at = (name: string) => timestamp(name, { withTimezone: true, mode: "date" });

/**
 * Accounts. The e-mail is a login identifier and, for portal patients, PHI: it is stored only as
 * ciphertext plus a blind index for the case-insensitive unique lookup (ADR 0001).
 * TOTP (RFC 6238): `totp_secret` is the confirmed secret, `totp_pending_secret` one awaiting its
 * confirmation code (both encrypted); `totp_last_step` is the last accepted time step, so a code is
 * accepted at most once (replay protection, OWASP ASVS 2.8.4).
 */
export const users = pgTable("users", {
  id: id(),
  organizationId: uuid("organization_id")
    .notNull()
    .references(() => organizations.id),
  role: roleEnum("role").notNull(),
  emailIndex: blindIndexColumn("email_index").notNull().unique(),
  email: encrypted("email").notNull(),
  /** argon2id PHC string. */
  passwordHash: text("password_hash").notNull(),
  totpSecret: encrypted("totp_secret"),
  totpPendingSecret: encrypted("totp_pending_secret"),
  totpEnabledAt: at("totp_enabled_at"),
  totpLastStep: bigint("totp_last_step", { mode: "number" }),
  disabledAt: at("disabled_at"),
  passwordChangedAt: at("password_changed_at"),
  createdAt: createdAt(),
  updatedAt: updatedAt(),
});

/**
 * Sessions. `id` is the SHA-256 (hex) of the bearer token; the token itself is never stored.
 * `expires_at` is the absolute end (created + TTL, never extended); `last_seen_at` drives the idle
 * timeout of privileged roles.
 */
export const sessions = pgTable(
  "sessions",
  {
    id: text("id").primaryKey(),
    userId: uuid("user_id")
      .notNull()
      .references(() => users.id, { onDelete: "cascade" }),
    expiresAt: at("expires_at").notNull(),
    lastSeenAt: at("last_seen_at").notNull(),
    mfaVerified: boolean("mfa_verified").notNull().default(false),
    ip: text("ip"),
    userAgent: text("user_agent"),
    createdAt: createdAt(),
  },
  (t) => [
    index("sessions_user_id_idx").on(t.userId),
    index("sessions_expires_at_idx").on(t.expiresAt),
  ],
);

/**
 * Failed (or in-flight) authentication attempts, one row each, for the sliding-window throttle.
 * `bucket` is a SHA-256 of `scope:kind:value` (account or IP), so no e-mail or address is readable
 * here. Kept in Postgres so every app instance sees the same counts (ARCHITECTURE §3).
 */
export const authThrottleEvents = pgTable(
  "auth_throttle_events",
  {
    id: id(),
    bucket: text("bucket").notNull(),
    occurredAt: at("occurred_at").notNull(),
  },
  (t) => [
    index("auth_throttle_bucket_idx").on(t.bucket, t.occurredAt),
    index("auth_throttle_time_idx").on(t.occurredAt),
  ],
);

/** One-time MFA recovery codes (120 random bits each), stored as SHA-256 only (ASVS 2.6.2). */
export const mfaRecoveryCodes = pgTable(
  "mfa_recovery_codes",
  {
    id: id(),
    userId: uuid("user_id")
      .notNull()
      .references(() => users.id, { onDelete: "cascade" }),
    codeHash: text("code_hash").notNull().unique(),
    usedAt: at("used_at"),
    createdAt: createdAt(),
  },
  (t) => [index("mfa_recovery_codes_user_idx").on(t.userId)],
);

/** Password-reset tokens: random, single use, expiring, stored as SHA-256 only (ASVS 2.5.1). */
export const passwordResetTokens = pgTable(
  "password_reset_tokens",
  {
    id: id(),
    userId: uuid("user_id")
      .notNull()
      .references(() => users.id, { onDelete: "cascade" }),
    tokenHash: text("token_hash").notNull().unique(),
    expiresAt: at("expires_at").notNull(),
    usedAt: at("used_at"),
    createdAt: createdAt(),
  },
  (t) => [index("password_reset_tokens_user_idx").on(t.userId)],
);

/**
 * Machine credentials (the reminder cron). Each key owns a `users` row of role `service`, so audit
 * rows keep a user id. Only the SHA-256 of the key is stored; `prefix` is shown in lists.
 */
export const apiKeys = pgTable(
  "api_keys",
  {
    id: id(),
    organizationId: uuid("organization_id")
      .notNull()
      .references(() => organizations.id),
    userId: uuid("user_id")
      .notNull()
      .unique()
      .references(() => users.id, { onDelete: "cascade" }),
    name: text("name").notNull(),
    prefix: text("prefix").notNull(),
    keyHash: text("key_hash").notNull().unique(),
    scopes: text("scopes").array().notNull().default(sql`'{}'::text[]`),
    createdBy: uuid("created_by").references(() => users.id),
    createdAt: createdAt(),
    lastUsedAt: at("last_used_at"),
    revokedAt: at("revoked_at"),
    expiresAt: at("expires_at"),
  },
  (t) => [index("api_keys_org_idx").on(t.organizationId)],
);

/**
 * Fixed-window API rate-limit counters (`server/rate-limit-store.ts`), one row per bucket.
 * `bucket` is `kind:` plus a SHA-256 (session, API key) or the client IP; `reset_at` is the end
 * of the current window, read against the database clock so every instance agrees.
 */
export const rateLimitBuckets = pgTable(
  "rate_limit_buckets",
  {
    bucket: text("bucket").primaryKey(),
    hits: bigint("hits", { mode: "number" }).notNull(),
    resetAt: at("reset_at").notNull(),
  },
  (t) => [index("rate_limit_reset_idx").on(t.resetAt)],
);
