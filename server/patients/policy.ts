import type { Demographics } from "../kernel/demographics.ts";
import type { Actor, Role } from "../kernel/roles.ts";

/**
 * Row-level rules for patient records (ARCHITECTURE §3). Pure functions, exhaustively tested:
 * - patient: only their own record;
 * - clinician: patients with an active care relationship to the clinician's Practitioner, or with
 *   an active break-the-glass grant for this clinician (emergency access: reason, fresh MFA,
 *   time-boxed, audited and reviewed; `server/access/`);
 * - staff, admin: only patients of their own organization;
 * - service: never the full record (reminders get the minimum projection, `reminderContactView`).
 */

/** Why an allowed read is allowed; recorded with the read (accounting of disclosures, 45 CFR 164.528). */
export type AccessBasis = "self" | "care_relationship" | "break_glass" | "organization";

export type PatientAccessDecision =
  | { allowed: true; basis: Exclude<AccessBasis, "break_glass"> }
  | { allowed: true; basis: "break_glass"; breakGlassGrantId: string }
  | { allowed: false; rule: "not_self" | "no_care_relationship" | "other_organization" | "role" };

/** Facts about one patient that the rules need, loaded by the service. */
export interface PatientFacts {
  patientId: string;
  organizationId: string;
  /** True when the actor's practitioner has a care relationship valid at the time of access. */
  activeCareRelationship: boolean;
  /** The actor's break-the-glass grant for this patient valid at the time of access, if any. */
  breakGlassGrantId: string | null;
}

/** May `actor` read the record described by `facts`, and on what basis? */
export function canReadPatient(actor: Actor, facts: PatientFacts): PatientAccessDecision {
  switch (actor.role) {
    case "patient":
      return actor.patientId === facts.patientId
        ? { allowed: true, basis: "self" }
        : { allowed: false, rule: "not_self" };
    case "clinician":
      if (actor.practitionerId !== null && facts.activeCareRelationship) {
        return { allowed: true, basis: "care_relationship" };
      }
      if (facts.breakGlassGrantId) {
        return { allowed: true, basis: "break_glass", breakGlassGrantId: facts.breakGlassGrantId };
      }
      return { allowed: false, rule: "no_care_relationship" };
    case "staff":
    case "admin":
      return actor.organizationId === facts.organizationId
        ? { allowed: true, basis: "organization" }
        : { allowed: false, rule: "other_organization" };
    case "service":
      return { allowed: false, rule: "role" };
    default: {
      const unreachable: never = actor.role;
      return unreachable;
    }
  }
}

/** A demographics field name. */
export type DemographicField = keyof Demographics;

/** Every demographics field, in output order. */
export const ALL_DEMOGRAPHIC_FIELDS = [
  "name",
  "birthDate",
  "sex",
  "phone",
  "email",
  "address",
  "ssn",
  "mrn",
  "deceased",
] as const satisfies readonly DemographicField[];

/**
 * Which parts of a record a role may see (minimum necessary, 45 CFR 164.502(b), 164.514(d)): the
 * explicit response whitelist per role, applied by the serializers in `service.ts`.
 */
export interface PatientView {
  /** Any demographics at all. */
  demographics: boolean;
  /** Exactly these demographics fields (whitelist; anything else is never serialised). */
  demographicFields: readonly DemographicField[];
  /** The FHIR bodies of clinical entries. */
  clinicalBodies: boolean;
  /** Decrypted appointment visit reasons. */
  appointmentReasons: boolean;
}

const FRONT_DESK_FIELDS = [
  "name",
  "birthDate",
  "sex",
  "phone",
  "email",
  "address",
  "mrn",
  "deceased",
] as const satisfies readonly DemographicField[];

/**
 * The response whitelist per role:
 * - patient (self, right of access 45 CFR 164.524): everything;
 * - clinician (treatment): demographics without the SSN, clinical entries with bodies, visit reasons;
 * - staff and admin (front desk, scheduling): demographics without the SSN, appointments with their
 *   reasons, the list of clinical entries (kind, time) but never their bodies;
 * - service (reminder cron): nothing of the record (see `reminderContactView`).
 */
export function patientViewFor(role: Role): PatientView {
  switch (role) {
    case "patient":
      return {
        demographics: true,
        demographicFields: ALL_DEMOGRAPHIC_FIELDS,
        clinicalBodies: true,
        appointmentReasons: true,
      };
    case "clinician":
      return {
        demographics: true,
        demographicFields: ALL_DEMOGRAPHIC_FIELDS.filter((f) => f !== "ssn"),
        clinicalBodies: true,
        appointmentReasons: true,
      };
    case "staff":
    case "admin":
      return {
        demographics: true,
        demographicFields: FRONT_DESK_FIELDS,
        clinicalBodies: false,
        appointmentReasons: true,
      };
    case "service":
      return {
        demographics: false,
        demographicFields: [],
        clinicalBodies: false,
        appointmentReasons: false,
      };
    default: {
      const unreachable: never = role;
      return unreachable;
    }
  }
}
