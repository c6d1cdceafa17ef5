/**
 * Every audited action, as one typed union (HIPAA 45 CFR 164.312(b) audit controls).
 * Naming: `domain.verb`. Add new actions here, never as free strings at call sites.
 */
export const AUDIT_ACTIONS = [
  "auth.login",
  "auth.login_failed",
  "auth.logout",
  "access.denied",
  "patient.search",
  "patient.read",
  "appointment.list",
  "fhir.import",
] as const;

export type AuditAction = (typeof AUDIT_ACTIONS)[number];
export type AuditOutcome = "allowed" | "denied" | "error";
