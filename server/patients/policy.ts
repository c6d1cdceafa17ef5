import type { Actor } from "../auth/roles.ts";

/**
 * Row-level rules for patient records (ARCHITECTURE §3). Pure functions, exhaustively tested:
 * - patient: only their own record;
 * - clinician: only patients with an active care relationship to the clinician's Practitioner;
 * - staff, admin: only patients of their own organization;
 * - service: never the full record (reminders get a minimum projection elsewhere).
 */
export type PatientAccessDecision =
  | { allowed: true }
  | { allowed: false; rule: "not_self" | "no_care_relationship" | "other_organization" | "role" };

/** Facts about one patient that the rules need, loaded by the service. */
export interface PatientFacts {
  patientId: string;
  organizationId: string;
  /** True when the actor's practitioner has a care relationship valid at the time of access. */
  activeCareRelationship: boolean;
}

/** May `actor` read the record described by `facts`? */
export function canReadPatient(actor: Actor, facts: PatientFacts): PatientAccessDecision {
  switch (actor.role) {
    case "patient":
      return actor.patientId === facts.patientId
        ? { allowed: true }
        : { allowed: false, rule: "not_self" };
    case "clinician":
      return actor.practitionerId !== null && facts.activeCareRelationship
        ? { allowed: true }
        : { allowed: false, rule: "no_care_relationship" };
    case "staff":
    case "admin":
      return actor.organizationId === facts.organizationId
        ? { allowed: true }
        : { allowed: false, rule: "other_organization" };
    case "service":
      return { allowed: false, rule: "role" };
    default: {
      const unreachable: never = actor.role;
      return unreachable;
    }
  }
}

/** Which parts of a record a role may see (minimum necessary, 45 CFR 164.502(b)). */
export interface PatientView {
  demographics: boolean;
  clinicalBodies: boolean;
  appointmentReasons: boolean;
}

/** The response whitelist per role. Staff and admins run the front desk: no clinical bodies. */
export function patientViewFor(role: Actor["role"]): PatientView {
  switch (role) {
    case "patient":
    case "clinician":
      return { demographics: true, clinicalBodies: true, appointmentReasons: true };
    case "staff":
    case "admin":
      return { demographics: true, clinicalBodies: false, appointmentReasons: true };
    case "service":
      return { demographics: false, clinicalBodies: false, appointmentReasons: false };
    default: {
      const unreachable: never = role;
      return unreachable;
    }
  }
}
