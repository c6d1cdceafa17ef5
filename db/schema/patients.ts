import { sql } from "drizzle-orm";
import { index, pgEnum, pgTable, text, timestamp, unique, uuid } from "drizzle-orm/pg-core";
import { users } from "./auth.ts";
import { blindIndexColumn, createdAt, encrypted, id, updatedAt, version } from "./columns.ts";
import { organizations } from "./organizations.ts";

/** FHIR Practitioner. Workforce identity (name, NPI) is not PHI and stays in plaintext. */
export const practitioners = pgTable("practitioners", {
  id: id(),
  organizationId: uuid("organization_id").references(() => organizations.id),
  fhirId: text("fhir_id").unique(),
  userId: uuid("user_id")
    .unique()
    .references(() => users.id),
  npi: text("npi").unique(),
  name: text("name").notNull(),
  createdAt: createdAt(),
  updatedAt: updatedAt(),
});

/**
 * FHIR Patient. All demographics live in ONE encrypted JSON column; exact-match search goes through
 * blind indexes. `source_mac` is a keyed MAC of the imported FHIR resource so a re-import of an
 * unchanged resource writes nothing.
 */
export const patients = pgTable(
  "patients",
  {
    id: id(),
    organizationId: uuid("organization_id")
      .notNull()
      .references(() => organizations.id),
    /**
     * Keyed blind index (`patient.fhir_id`, exact, not normalised) of the source FHIR Patient id —
     * never the id itself: in Synthea the id equals the MRN (PHI). The original id is in `resource`.
     */
    fhirId: blindIndexColumn("fhir_id").unique(),
    userId: uuid("user_id")
      .unique()
      .references(() => users.id),
    demographics: encrypted("demographics").notNull(),
    /** The imported FHIR Patient resource as received (for export), encrypted. */
    resource: encrypted("resource"),
    mrnIndex: blindIndexColumn("mrn_index"),
    emailIndex: blindIndexColumn("email_index"),
    familyBirthIndex: blindIndexColumn("family_birth_index"),
    sourceMac: text("source_mac"),
    version: version(),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [
    index("patients_org_idx").on(t.organizationId),
    index("patients_mrn_idx").on(t.mrnIndex),
    index("patients_email_idx").on(t.emailIndex),
    index("patients_family_birth_idx").on(t.familyBirthIndex),
  ],
);

export const careSourceEnum = pgEnum("care_source", ["encounter", "care-team", "assignment"]);

/** Which practitioner may see which patient, from what, and for how long (`valid_to` null = open). */
export const careRelationships = pgTable(
  "care_relationships",
  {
    id: id(),
    organizationId: uuid("organization_id")
      .notNull()
      .references(() => organizations.id),
    patientId: uuid("patient_id")
      .notNull()
      .references(() => patients.id, { onDelete: "cascade" }),
    practitionerId: uuid("practitioner_id")
      .notNull()
      .references(() => practitioners.id),
    source: careSourceEnum("source").notNull(),
    validFrom: timestamp("valid_from", { withTimezone: true, mode: "date" })
      .notNull()
      .default(sql`now()`),
    validTo: timestamp("valid_to", { withTimezone: true, mode: "date" }),
    createdAt: createdAt(),
  },
  (t) => [
    unique("care_relationships_unique").on(t.patientId, t.practitionerId, t.source),
    index("care_relationships_practitioner_idx").on(t.practitionerId, t.patientId),
  ],
);

export const clinicalKindEnum = pgEnum("clinical_kind", [
  "encounter",
  "condition",
  "observation",
  "immunization",
  "procedure",
  "diagnostic-report",
  "care-plan",
  "care-team",
  "note",
]);
export const entrySourceEnum = pgEnum("entry_source", ["fhir-import", "portal"]);

/** Clinical entries: the FHIR resource body is ciphertext; only kind and time are plaintext. */
export const clinicalEntries = pgTable(
  "clinical_entries",
  {
    id: id(),
    organizationId: uuid("organization_id")
      .notNull()
      .references(() => organizations.id),
    patientId: uuid("patient_id")
      .notNull()
      .references(() => patients.id, { onDelete: "cascade" }),
    fhirId: text("fhir_id").unique(),
    kind: clinicalKindEnum("kind").notNull(),
    recordedAt: timestamp("recorded_at", { withTimezone: true, mode: "date" }).notNull(),
    body: encrypted("body").notNull(),
    source: entrySourceEnum("source").notNull(),
    authorPractitionerId: uuid("author_practitioner_id").references(() => practitioners.id),
    sourceMac: text("source_mac"),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [index("clinical_entries_patient_idx").on(t.patientId, t.recordedAt)],
);
