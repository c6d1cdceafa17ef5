import type { Role } from "../kernel/roles.ts";

/**
 * Haven's access matrix as data (issue 13): for every procedure, who may call it and which row
 * rule then applies. This file is the reviewed specification; `access-matrix.test.ts` enumerates
 * the router at run time (a procedure without an entry fails), calls every procedure × caller over
 * HTTP and checks the answers against it, and that every refusal of a signed-in caller is audited.
 *
 * Row rules (ARCHITECTURE §3):
 * - `none`: no per-row rule beyond the role (own account, own organization's settings …);
 * - `patient`: a patient's rows: patient → self only, clinician → care relationship only,
 *   staff/admin → own organization only (checked own/foreign per role by the test);
 * - `org`: rows of the caller's organization only;
 * - `self`: the caller's own account, sessions, grants or keys.
 */
export type RowRule = "none" | "patient" | "org" | "self";

export interface MatrixEntry {
  /** Roles that pass the role check; `"public"` = no session needed. */
  roles: "public" | readonly Role[];
  row: RowRule;
}

const SIGNED_IN = ["patient", "clinician", "staff", "admin"] as const;
const CALENDAR = ["clinician", "staff", "admin"] as const;
const FRONT_DESK = ["staff", "admin"] as const;

export const ACCESS_MATRIX: Record<string, MatrixEntry> = {
  "auth.login": { roles: "public", row: "none" },
  "auth.logout": { roles: SIGNED_IN, row: "self" },
  "auth.logoutEverywhere": { roles: SIGNED_IN, row: "self" },
  "auth.me": { roles: SIGNED_IN, row: "self" },
  "auth.sessions.list": { roles: SIGNED_IN, row: "self" },
  "auth.sessions.revoke": { roles: SIGNED_IN, row: "self" },
  "auth.mfa.status": { roles: SIGNED_IN, row: "self" },
  "auth.mfa.enroll": { roles: SIGNED_IN, row: "self" },
  "auth.mfa.confirm": { roles: SIGNED_IN, row: "self" },
  "auth.mfa.verify": { roles: SIGNED_IN, row: "self" },
  "auth.mfa.regenerateRecoveryCodes": { roles: SIGNED_IN, row: "self" },
  "auth.password.change": { roles: SIGNED_IN, row: "self" },
  "auth.password.requestReset": { roles: "public", row: "none" },
  "auth.password.reset": { roles: "public", row: "none" },
  "auth.invitations.create": { roles: FRONT_DESK, row: "org" },
  "auth.invitations.accept": { roles: "public", row: "none" },
  "auth.invitations.list": { roles: FRONT_DESK, row: "org" },
  "auth.invitations.revoke": { roles: FRONT_DESK, row: "org" },
  "auth.users.list": { roles: ["admin"], row: "org" },
  "auth.users.setRole": { roles: ["admin"], row: "org" },
  "auth.users.setDisabled": { roles: ["admin"], row: "org" },
  "auth.users.resetMfa": { roles: ["admin"], row: "org" },
  "auth.apiKeys.create": { roles: ["admin"], row: "org" },
  "auth.apiKeys.list": { roles: ["admin"], row: "org" },
  "auth.apiKeys.revoke": { roles: ["admin"], row: "org" },
  "patients.search": { roles: CALENDAR, row: "patient" },
  "patients.get": { roles: SIGNED_IN, row: "patient" },
  "patients.exportMyRecord": { roles: ["patient"], row: "self" },
  "appointments.listForPatient": { roles: SIGNED_IN, row: "patient" },
  "appointments.slots": { roles: SIGNED_IN, row: "org" },
  "appointments.practitioners": { roles: CALENDAR, row: "org" },
  "appointments.availability.get": { roles: SIGNED_IN, row: "org" },
  "appointments.availability.setWeekly": { roles: CALENDAR, row: "org" },
  "appointments.availability.addException": { roles: CALENDAR, row: "org" },
  "appointments.availability.removeException": { roles: CALENDAR, row: "org" },
  "appointments.book": { roles: ["patient", "staff", "admin"], row: "patient" },
  "appointments.reschedule": { roles: ["patient", "staff", "admin"], row: "patient" },
  "appointments.cancel": { roles: SIGNED_IN, row: "patient" },
  "appointments.checkIn": { roles: FRONT_DESK, row: "org" },
  "appointments.complete": { roles: CALENDAR, row: "patient" },
  "appointments.markNoShow": { roles: CALENDAR, row: "patient" },
  "appointments.day": { roles: FRONT_DESK, row: "org" },
  "appointments.forPractitioner": { roles: CALENDAR, row: "org" },
  "appointments.onChange": { roles: CALENDAR, row: "org" },
  "audit.forPatient": { roles: ["admin", "patient"], row: "patient" },
  "audit.search": { roles: ["admin"], row: "org" },
  "audit.verify": { roles: ["admin"], row: "none" },
  "audit.breakGlassReview": { roles: ["admin"], row: "org" },
  "audit.breakGlassAcknowledge": { roles: ["admin"], row: "org" },
  "access.breakGlass": { roles: ["clinician"], row: "org" },
  "access.revoke": { roles: ["clinician", "admin"], row: "org" },
  "access.myGrants": { roles: ["clinician"], row: "self" },
  "reminders.claimDue": { roles: ["service"], row: "org" },
  "reminders.complete": { roles: ["service"], row: "org" },
  "reminders.completeMany": { roles: ["service"], row: "org" },
  "reminders.stats": { roles: FRONT_DESK, row: "org" },
  "reminders.list": { roles: FRONT_DESK, row: "org" },
  "reminders.retry": { roles: FRONT_DESK, row: "org" },
};

/**
 * Own/foreign cells of the `patient` row rule, checked over HTTP: each procedure's input for a
 * given patient id. Own = the caller's patient (self, in care, same organization); foreign = a
 * patient the caller has no relationship with (another patient, no care link, other organization).
 */
export const PATIENT_ROW_CELLS: Record<string, (patientId: string) => unknown> = {
  "patients.get": (patientId) => ({ patientId }),
  "appointments.listForPatient": (patientId) => ({ patientId }),
  "audit.forPatient": (patientId) => ({ patientId }),
};
