import { sql } from "drizzle-orm";
import { check, index, integer, pgTable, text, timestamp, uuid } from "drizzle-orm/pg-core";
import { roleEnum, users } from "./auth.ts";
import { blindIndexColumn, createdAt, encrypted, id } from "./columns.ts";
import { organizations } from "./organizations.ts";
import { patients, practitioners } from "./patients.ts";

const at = (name: string) => timestamp(name, { withTimezone: true, mode: "date" });

/**
 * Account invitations: a portal invitation tied to a patient record (accepted with the token and the
 * patient's date of birth), or a workforce invitation (clinician, staff, admin). The token is random,
 * single use, expiring and stored only as its SHA-256; the e-mail is encrypted with a blind index.
 */
export const invitations = pgTable(
  "invitations",
  {
    id: id(),
    organizationId: uuid("organization_id")
      .notNull()
      .references(() => organizations.id),
    role: roleEnum("role").notNull(),
    patientId: uuid("patient_id").references(() => patients.id, { onDelete: "cascade" }),
    practitionerId: uuid("practitioner_id").references(() => practitioners.id),
    email: encrypted("email").notNull(),
    emailIndex: blindIndexColumn("email_index").notNull(),
    tokenHash: text("token_hash").notNull().unique(),
    expiresAt: at("expires_at").notNull(),
    acceptedAt: at("accepted_at"),
    acceptedUserId: uuid("accepted_user_id").references(() => users.id),
    revokedAt: at("revoked_at"),
    failedAttempts: integer("failed_attempts").notNull().default(0),
    /**
     * Portal invitations sent to an address that is not the contact on file: SHA-256 of the
     * confirmation code sent to the contact on file, required to accept (ADR 0008). Null when the
     * invitation itself went to the contact on file.
     */
    contactCodeHash: text("contact_code_hash"),
    createdBy: uuid("created_by").references(() => users.id),
    createdAt: createdAt(),
  },
  (t) => [
    check("invitations_patient_role", sql`(${t.role} = 'patient') = (${t.patientId} IS NOT NULL)`),
    check("invitations_no_service", sql`${t.role} <> 'service'`),
    index("invitations_org_idx").on(t.organizationId, t.createdAt),
  ],
);
