/** Account roles (ARCHITECTURE §2). */
export const ROLES = ["patient", "clinician", "staff", "admin", "service"] as const;
export type Role = (typeof ROLES)[number];

/** Roles that must pass MFA before touching PHI (issue 3) and have an idle timeout. */
export const PRIVILEGED_ROLES = ["clinician", "staff", "admin"] as const satisfies readonly Role[];

/**
 * The caller of a procedure, resolved once per request from the session.
 * `patientId` is set for portal patients, `practitionerId` for clinicians linked to a Practitioner.
 */
export interface Actor {
  userId: string;
  role: Role;
  organizationId: string;
  sessionId: string;
  patientId: string | null;
  practitionerId: string | null;
}
