import type { Actor } from "../kernel/roles.ts";

/**
 * Who may see and manage a practitioner's working hours (workforce data, not PHI).
 * - view hours and free slots: patients, clinicians, staff and admins of the practitioner's
 *   organization (patients need free slots to book);
 * - manage hours and exceptions: staff and admins of that organization, and the clinician whose
 *   Practitioner it is.
 */
export type SchedulingRule = "other_organization" | "not_own_calendar" | "role";
export type SchedulingDecision = { allowed: true } | { allowed: false; rule: SchedulingRule };

export interface PractitionerFacts {
  id: string;
  /** Null for practitioners not attached to a clinic (e.g. imported referrals): never bookable. */
  organizationId: string | null;
}

/** May `actor` see the practitioner's hours and free slots? */
export function canViewSchedule(actor: Actor, p: PractitionerFacts): SchedulingDecision {
  switch (actor.role) {
    case "patient":
    case "clinician":
    case "staff":
    case "admin":
      return p.organizationId !== null && p.organizationId === actor.organizationId
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

/** May `actor` change the practitioner's weekly hours and exceptions? */
export function canManageAvailability(actor: Actor, p: PractitionerFacts): SchedulingDecision {
  switch (actor.role) {
    case "staff":
    case "admin":
      return p.organizationId !== null && p.organizationId === actor.organizationId
        ? { allowed: true }
        : { allowed: false, rule: "other_organization" };
    case "clinician":
      return actor.practitionerId !== null && actor.practitionerId === p.id
        ? { allowed: true }
        : { allowed: false, rule: "not_own_calendar" };
    case "patient":
    case "service":
      return { allowed: false, rule: "role" };
    default: {
      const unreachable: never = actor.role;
      return unreachable;
    }
  }
}
