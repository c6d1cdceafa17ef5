import { boolean, index, pgEnum, pgTable, text, timestamp, uuid } from "drizzle-orm/pg-core";
import { blindIndexColumn, createdAt, encrypted, id, updatedAt } from "./columns.ts";
import { organizations } from "./organizations.ts";

export const roleEnum = pgEnum("role", ["patient", "clinician", "staff", "admin", "service"]);

/**
 * Accounts. The e-mail is a login identifier and, for portal patients, PHI: it is stored only as
 * ciphertext plus a blind index for the case-insensitive unique lookup (ADR 0002).
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
  disabledAt: timestamp("disabled_at", { withTimezone: true, mode: "date" }),
  passwordChangedAt: timestamp("password_changed_at", { withTimezone: true, mode: "date" }),
  createdAt: createdAt(),
  updatedAt: updatedAt(),
});

/** Lucia sessions. `id` is the SHA-256 (hex) of the bearer token; the token itself is never stored. */
export const sessions = pgTable(
  "sessions",
  {
    id: text("id").primaryKey(),
    userId: uuid("user_id")
      .notNull()
      .references(() => users.id, { onDelete: "cascade" }),
    expiresAt: timestamp("expires_at", { withTimezone: true, mode: "date" }).notNull(),
    lastSeenAt: timestamp("last_seen_at", { withTimezone: true, mode: "date" }).notNull(),
    mfaVerified: boolean("mfa_verified").notNull().default(false),
    ip: text("ip"),
    userAgent: text("user_agent"),
    createdAt: createdAt(),
  },
  (t) => [index("sessions_user_id_idx").on(t.userId)],
);
