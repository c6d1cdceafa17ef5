import type { Actor } from "../kernel/roles.ts";
import type { AppointmentAction, AppointmentState } from "./state.ts";

/**
 * Row-level rules for appointments (ARCHITECTURE §3; 45 CFR 164.502(b) minimum necessary).
 * Pure functions over facts the service loads; exhaustively tested in `policy.test.ts`.
 *
 * Read: a patient sees their own; a clinician sees their own calendar (the appointment names their
 * Practitioner) and appointments of patients in their active care; staff and admins see their
 * organization's; `service` never reads appointments here.
 *
 * Change (book and every lifecycle action):
 * | action       | patient               | clinician          | staff / admin |
 * | ------------ | --------------------- | ------------------ | ------------- |
 * | book         | self, free slot       | –                  | own org       |
 * | reschedule   | self, before cutoff   | –                  | own org       |
 * | cancel       | self, booked, cutoff  | own calendar       | own org       |
 * | checkIn      | –                     | –                  | own org       |
 * | complete     | –                     | own calendar       | own org       |
 * | markNoShow   | –                     | own calendar       | own org       |
 */
export type AppointmentRule =
  | "not_self"
  | "not_own_calendar"
  | "no_care_relationship"
  | "other_organization"
  | "role"
  | "cutoff_passed";

export type Decision = { allowed: true } | { allowed: false; rule: AppointmentRule };

export interface AppointmentFacts {
  organizationId: string;
  patientId: string;
  practitionerId: string;
  /** The clinician's practitioner has a care relationship with the patient valid now. */
  activeCareRelationship: boolean;
}

const allow: Decision = { allowed: true };
const deny = (rule: AppointmentRule): Decision => ({ allowed: false, rule });

/** May `actor` read this appointment? */
export function canReadAppointment(actor: Actor, f: AppointmentFacts): Decision {
  switch (actor.role) {
    case "patient":
      return actor.patientId !== null && actor.patientId === f.patientId ? allow : deny("not_self");
    case "clinician":
      if (actor.practitionerId !== null && actor.practitionerId === f.practitionerId) return allow;
      return actor.practitionerId !== null && f.activeCareRelationship
        ? allow
        : deny("no_care_relationship");
    case "staff":
    case "admin":
      return actor.organizationId === f.organizationId ? allow : deny("other_organization");
    case "service":
      return deny("role");
    default: {
      const unreachable: never = actor.role;
      return unreachable;
    }
  }
}

/** The actions a change rule covers: `book` plus every lifecycle action. */
export type ChangeAction = "book" | AppointmentAction;

/**
 * May `actor` perform `action` on an appointment described by `f` (for `book`: the appointment
 * about to be created)? Time rules (patient cutoff) are separate: {@link patientCutoffAllows}.
 */
export function canChangeAppointment(
  actor: Actor,
  action: ChangeAction,
  f: Omit<AppointmentFacts, "activeCareRelationship">,
): Decision {
  switch (actor.role) {
    case "patient":
      if (action !== "book" && action !== "reschedule" && action !== "cancel") return deny("role");
      return actor.patientId !== null && actor.patientId === f.patientId ? allow : deny("not_self");
    case "clinician":
      if (action !== "cancel" && action !== "complete" && action !== "markNoShow") {
        return deny("role");
      }
      return actor.practitionerId !== null && actor.practitionerId === f.practitionerId
        ? allow
        : deny("not_own_calendar");
    case "staff":
    case "admin":
      return actor.organizationId === f.organizationId ? allow : deny("other_organization");
    case "service":
      return deny("role");
    default: {
      const unreachable: never = actor.role;
      return unreachable;
    }
  }
}

/**
 * Patients change their own visits only while `now` is at least `cutoffMinutes` before the start,
 * and only while the visit is still `booked`.
 */
export function patientCutoffAllows(
  state: AppointmentState,
  startsAt: Date,
  now: Date,
  cutoffMinutes: number,
): Decision {
  if (state !== "booked") return deny("role");
  return startsAt.getTime() - now.getTime() >= cutoffMinutes * 60_000
    ? allow
    : deny("cutoff_passed");
}

/** What a live-update subscriber watches: one organization, optionally one practitioner. */
export interface FeedScope {
  organizationId: string;
  practitionerId: string | null;
}

/**
 * Resolve and check the scope of an `appointments.onChange` subscription.
 * Staff/admins watch their organization (optionally one of its practitioners); clinicians watch
 * their own calendar only. `practitionerOrganizationId` is the requested practitioner's
 * organization (null when none was requested or it has none).
 */
export function resolveFeedScope(
  actor: Actor,
  input: { organizationId?: string | undefined; practitionerId?: string | undefined },
  practitionerOrganizationId: string | null,
): { allowed: true; scope: FeedScope } | { allowed: false; rule: AppointmentRule } {
  switch (actor.role) {
    case "staff":
    case "admin": {
      const organizationId = input.organizationId ?? actor.organizationId;
      if (organizationId !== actor.organizationId)
        return { allowed: false, rule: "other_organization" };
      if (input.practitionerId && practitionerOrganizationId !== organizationId) {
        return { allowed: false, rule: "other_organization" };
      }
      return {
        allowed: true,
        scope: { organizationId, practitionerId: input.practitionerId ?? null },
      };
    }
    case "clinician": {
      const practitionerId = input.practitionerId ?? actor.practitionerId;
      if (!practitionerId || practitionerId !== actor.practitionerId) {
        return { allowed: false, rule: "not_own_calendar" };
      }
      const organizationId = practitionerOrganizationId ?? actor.organizationId;
      if (input.organizationId && input.organizationId !== organizationId) {
        return { allowed: false, rule: "other_organization" };
      }
      return { allowed: true, scope: { organizationId, practitionerId } };
    }
    case "patient":
    case "service":
      return { allowed: false, rule: "role" };
    default: {
      const unreachable: never = actor.role;
      return unreachable;
    }
  }
}
