import { sql } from "drizzle-orm";
import { bigint, check, index, pgEnum, pgTable, text, timestamp, uuid } from "drizzle-orm/pg-core";
import { users } from "./auth.ts";
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
 * `reason`, `cancellation_reason` and `override_reason` are PHI and stored only as ciphertext
 * (associated data `appointments.<column>:<id>`).
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
    /** Why the visit was cancelled (required on cancel). */
    cancellationReason: encrypted("cancellation_reason"),
    /** Why staff booked outside the practitioner's availability (set only for such bookings). */
    overrideReason: encrypted("override_reason"),
    /** The account that booked it (null for imported encounters). */
    bookedByUserId: uuid("booked_by_user_id").references(() => users.id),
    version: version(),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [
    check("appointments_time_order", sql`${t.endsAt} > ${t.startsAt}`),
    index("appointments_patient_idx").on(t.patientId, t.startsAt),
    index("appointments_practitioner_idx").on(t.practitionerId, t.startsAt),
    index("appointments_org_time_idx").on(t.organizationId, t.startsAt),
    // The slot engine's busy intervals (`loadSlotInputs`): one practitioner's active visits. Without
    // it the planner scans a whole exclusion-constraint GiST index (query-plans test, issue 15).
    index("appointments_practitioner_active_idx")
      .on(t.practitionerId, t.startsAt, t.endsAt)
      .where(sql`${t.status} IN ('booked', 'checked_in')`),
  ],
);

export const appointmentChangeKindEnum = pgEnum("appointment_change_kind", [
  "booked",
  "rescheduled",
  "cancelled",
  "checked_in",
  "completed",
  "no_show",
]);

/**
 * Ordered log of appointment changes (ids only, never PHI) behind `appointments.onChange`.
 * `seq` is the SSE event id a client resumes from (`lastEventId`). Writers take a per-organization
 * transaction advisory lock before inserting, so within one organization `seq` values become
 * visible in increasing order and a reader that has seen `seq = n` can never later miss a row with
 * `seq < n` (see `server/appointments/changes.ts`).
 */
export const appointmentChanges = pgTable(
  "appointment_changes",
  {
    seq: bigint("seq", { mode: "number" }).primaryKey().generatedAlwaysAsIdentity(),
    organizationId: uuid("organization_id")
      .notNull()
      .references(() => organizations.id),
    appointmentId: uuid("appointment_id")
      .notNull()
      .references(() => appointments.id, { onDelete: "cascade" }),
    practitionerId: uuid("practitioner_id").notNull(),
    patientId: uuid("patient_id").notNull(),
    kind: appointmentChangeKindEnum("kind").notNull(),
    occurredAt: timestamp("occurred_at", { withTimezone: true, mode: "date" }).notNull(),
  },
  (t) => [
    index("appointment_changes_org_idx").on(t.organizationId, t.seq),
    index("appointment_changes_practitioner_idx").on(t.practitionerId, t.seq),
  ],
);
