/**
 * Every audited action, as one typed union (HIPAA 45 CFR 164.312(b) audit controls).
 * Naming: `domain.verb`. Add new actions here, never as free strings at call sites.
 */
export const AUDIT_ACTIONS = [
  "auth.login",
  "auth.login_failed",
  "auth.logout",
  // auth: sessions, throttling, MFA, passwords, accounts, API keys
  "auth.login_throttled",
  "auth.lockout",
  "auth.logout_everywhere",
  "auth.session_revoked",
  "auth.session_expired",
  "auth.mfa_enrol_started",
  "auth.mfa_enrolled",
  "auth.mfa_verified",
  "auth.mfa_failed",
  "auth.mfa_reset",
  "auth.mfa_recovery_codes_regenerated",
  "auth.password_changed",
  "auth.password_reset_requested",
  "auth.password_reset",
  "auth.invitation_created",
  "auth.invitation_accepted",
  "auth.invitation_failed",
  "auth.invitation_revoked",
  // a portal invitation sent to an address that is not the patient's contact on file
  "auth.invitation_off_file",
  "auth.role_changed",
  "auth.account_disabled",
  "auth.account_enabled",
  "auth.users_listed",
  "auth.invitations_listed",
  "auth.api_key_created",
  "auth.api_key_revoked",
  "access.denied",
  "patient.search",
  "patient.read",
  "appointment.list",
  // appointments: booking, state changes, live feed, availability
  "appointment.book",
  "appointment.reschedule",
  "appointment.cancel",
  "appointment.check_in",
  "appointment.complete",
  "appointment.no_show",
  "appointment.read",
  "appointment.subscribe",
  "availability.read",
  "availability.update",
  "fhir.import",
  // reminders: queue claims (PHI disclosure to the cron), reports, staff views
  "reminder.claim",
  "reminder.complete",
  "reminder.list",
  "reminder.stats",
  "reminder.retry",
  // PHI protection: accounting of disclosures, chain verification, break-the-glass,
  // record export, key operations
  "audit.for_patient",
  "audit.search",
  "audit.verify",
  "audit.break_glass_review",
  "audit.break_glass_acknowledge",
  "access.break_glass",
  "access.break_glass_used",
  "access.break_glass_revoke",
  "patient.export",
  "keys.rotate",
  "keys.reindex",
  // operations: backups and restores taken by an operator
  "ops.backup",
  "ops.restore",
] as const;

export type AuditAction = (typeof AUDIT_ACTIONS)[number];
export type AuditOutcome = "allowed" | "denied" | "error";
