import { eq, type SQL } from "drizzle-orm";
import type { z } from "zod";
import type { Executor } from "../../db/client.ts";
import { appointments, patients, practitioners } from "../../db/schema/index.ts";
import type { ServiceDeps } from "../deps.ts";
import type { Demographics } from "../kernel/demographics.ts";
import type { Actor } from "../kernel/roles.ts";
import { patientViewFor } from "../patients/policy.ts";
import type { appointmentDetail, scheduleItem } from "./schemas.ts";

export type AppointmentDetail = z.infer<typeof appointmentDetail>;
export type ScheduleItem = z.infer<typeof scheduleItem>;

/** The columns a serialized appointment needs (explicit whitelist, never `select *` to a client). */
const COLUMNS = {
  id: appointments.id,
  organizationId: appointments.organizationId,
  patientId: appointments.patientId,
  practitionerId: appointments.practitionerId,
  practitionerName: practitioners.name,
  startsAt: appointments.startsAt,
  endsAt: appointments.endsAt,
  status: appointments.status,
  reason: appointments.reason,
  cancellationReason: appointments.cancellationReason,
  overrideReason: appointments.overrideReason,
  version: appointments.version,
  demographics: patients.demographics,
};

/** Select appointment rows with practitioner name and (sealed) demographics. */
export function selectAppointmentRows(db: Executor, where: SQL | undefined) {
  return db
    .select(COLUMNS)
    .from(appointments)
    .innerJoin(practitioners, eq(practitioners.id, appointments.practitionerId))
    .innerJoin(patients, eq(patients.id, appointments.patientId))
    .where(where)
    .$dynamic();
}

export type AppointmentRow = Awaited<ReturnType<typeof selectAppointmentRows>>[number];

/**
 * Serialize one row for `actor`: reasons are decrypted only for roles whose view includes visit
 * reasons (45 CFR 164.502(b) minimum necessary); the row rule itself is checked by the caller.
 */
export function toDetail(deps: ServiceDeps, actor: Actor, row: AppointmentRow): AppointmentDetail {
  const view = patientViewFor(actor.role);
  const open = (column: "reason" | "cancellation_reason", value: string | null) =>
    view.appointmentReasons && value
      ? deps.crypto.open<string>("appointments", column, row.id, value)
      : null;
  return {
    id: row.id,
    organizationId: row.organizationId,
    patientId: row.patientId,
    practitioner: { id: row.practitionerId, name: row.practitionerName },
    startsAt: row.startsAt,
    endsAt: row.endsAt,
    status: row.status,
    reason: open("reason", row.reason),
    cancellationReason: open("cancellation_reason", row.cancellationReason),
    outsideAvailability: row.overrideReason !== null,
    version: row.version,
  };
}

/** {@link toDetail} plus the patient's name for roles that see demographics. */
export function toScheduleItem(deps: ServiceDeps, actor: Actor, row: AppointmentRow): ScheduleItem {
  const view = patientViewFor(actor.role);
  let patientName: ScheduleItem["patientName"] = null;
  if (view.demographics) {
    const d = deps.crypto.open<Demographics>(
      "patients",
      "demographics",
      row.patientId,
      row.demographics,
    );
    patientName = { family: d.name.family, given: d.name.given };
  }
  return { ...toDetail(deps, actor, row), patientName };
}
