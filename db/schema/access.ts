import { sql } from "drizzle-orm";
import { check, index, pgEnum, pgTable, timestamp, uuid } from "drizzle-orm/pg-core";
import { users } from "./auth.ts";
import { createdAt, encrypted, id } from "./columns.ts";
import { organizations } from "./organizations.ts";
import { patients, practitioners } from "./patients.ts";

export const breakGlassReviewOutcomeEnum = pgEnum("break_glass_review_outcome", [
  "appropriate",
  "inappropriate",
]);

/**
 * Break-the-glass grants (emergency access, ARCHITECTURE §3): a clinician without a care
 * relationship states a reason and passes a fresh MFA code, and may then read ONE patient until
 * `expires_at` unless revoked. The reason may describe the patient's condition, so it is sealed;
 * audit rows point at the grant by id. Admins of the patient's organization review every grant
 * (`reviewed_at`, outcome, sealed note). Times are UTC.
 */
export const breakGlassGrants = pgTable(
  "break_glass_grants",
  {
    id: id(),
    /** The patient's organization (whose admins review the grant). */
    organizationId: uuid("organization_id")
      .notNull()
      .references(() => organizations.id),
    patientId: uuid("patient_id")
      .notNull()
      .references(() => patients.id, { onDelete: "cascade" }),
    /** The clinician's account. */
    userId: uuid("user_id")
      .notNull()
      .references(() => users.id),
    practitionerId: uuid("practitioner_id").references(() => practitioners.id),
    reason: encrypted("reason").notNull(),
    grantedAt: timestamp("granted_at", { withTimezone: true, mode: "date" }).notNull(),
    expiresAt: timestamp("expires_at", { withTimezone: true, mode: "date" }).notNull(),
    revokedAt: timestamp("revoked_at", { withTimezone: true, mode: "date" }),
    revokedByUserId: uuid("revoked_by_user_id").references(() => users.id),
    reviewedAt: timestamp("reviewed_at", { withTimezone: true, mode: "date" }),
    reviewedByUserId: uuid("reviewed_by_user_id").references(() => users.id),
    reviewOutcome: breakGlassReviewOutcomeEnum("review_outcome"),
    reviewNote: encrypted("review_note"),
    createdAt: createdAt(),
  },
  (t) => [
    check("break_glass_grants_time_order", sql`${t.expiresAt} > ${t.grantedAt}`),
    index("break_glass_grants_user_patient_idx").on(t.userId, t.patientId, t.expiresAt),
    index("break_glass_grants_review_idx").on(t.organizationId, t.reviewedAt, t.grantedAt),
  ],
);
