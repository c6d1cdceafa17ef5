/** Account roles (ARCHITECTURE §2). */
export const ROLES = ["patient", "clinician", "staff", "admin", "service"] as const;
export type Role = (typeof ROLES)[number];

/**
 * Roles that must pass MFA before touching PHI and whose sessions have an idle timeout
 * (45 CFR 164.312(a)(2)(iii) automatic logoff, 164.312(d) person authentication).
 */
export const PRIVILEGED_ROLES = ["clinician", "staff", "admin"] as const satisfies readonly Role[];
export type PrivilegedRole = (typeof PRIVILEGED_ROLES)[number];

/** True for clinician, staff and admin. */
export function isPrivileged(role: Role): role is PrivilegedRole {
  return (PRIVILEGED_ROLES as readonly Role[]).includes(role);
}

/** What an API key may be used for; procedures callable by `service` declare one in `meta.scope`. */
/** Roles that sign in with a password and hold sessions (API keys are `service`). */
export const SESSION_ROLES = [
  "patient",
  "clinician",
  "staff",
  "admin",
] as const satisfies readonly Role[];

export const API_KEY_SCOPES = ["reminders"] as const;
export type ApiKeyScope = (typeof API_KEY_SCOPES)[number];

/**
 * The caller of a procedure, resolved once per request from the session or API key.
 * `patientId` is set for portal patients, `practitionerId` for clinicians linked to a Practitioner.
 * `sessionId` is the stored session id (SHA-256 of the token), or `apikey:<id>` for an API key.
 */
export interface Actor {
  userId: string;
  role: Role;
  organizationId: string;
  sessionId: string;
  patientId: string | null;
  practitionerId: string | null;
  /** Set when the caller authenticated with an API key (role `service`). */
  apiKeyId?: string | null;
  /** The API key's scopes (only for API-key callers). */
  scopes?: readonly ApiKeyScope[];
}
