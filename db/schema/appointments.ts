import { sql } from "drizzle-orm";
import { check, index, pgEnum, pgTable, text, timestamp, uuid } from "drizzle-orm/pg-core";
import { createdAt, encrypted, id, updatedAt, version } from "./columns.ts";
import { organizations } from "./organizations.ts";
import { patients, practitioners } from "./patients.ts";

export const appointmentStatusEnum = pgEnum("appointment_status", [
  "booked",
  "checked_in",
  "completed",
  "cancelled",
  "no_show",
]);

/**
 * FHIR Appointment. Times are UTC instants. Double booking is impossible at the database level:
 * the exclusion constraint `appointments_no_overlap` (btree_gist) lives in the custom migration
 * `0001_appointments_no_overlap.sql`, because drizzle-kit has no builder for EXCLUDE.
 */
export const appointments = pgTable(
  "appointments",
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
    fhirId: text("fhir_id").unique(),
    startsAt: timestamp("starts_at", { withTimezone: true, mode: "date" }).notNull(),
    endsAt: timestamp("ends_at", { withTimezone: true, mode: "date" }).notNull(),
    status: appointmentStatusEnum("status").notNull(),
    reason: encrypted("reason"),
    version: version(),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [
    check("appointments_time_order", sql`${t.endsAt} > ${t.startsAt}`),
    index("appointments_patient_idx").on(t.patientId, t.startsAt),
    index("appointments_practitioner_idx").on(t.practitionerId, t.startsAt),
  ],
);
