import { createHavenClient, type HavenFieldIssue, isHavenError } from "@haven/client";

/**
 * The panel's one Haven client. It runs on Haven's own origin and sends no token: the HttpOnly
 * `haven_session` cookie authenticates, and the browser's `Origin` header passes the server's
 * CSRF check. Nothing is kept in localStorage.
 */
export const haven = createHavenClient({ url: window.location.origin });

/** A short sentence for any failed call: the server's message, or a network-level fallback. */
export function messageOf(err: unknown): string {
  if (isHavenError(err)) {
    const reason = err.data.reason;
    if (reason && REASONS[reason]) return REASONS[reason];
    if (err.data.code === "TOO_MANY_REQUESTS")
      return `Too many attempts. Try again in ${err.data.retryAfterSeconds ?? 60} seconds.`;
    return err.message;
  }
  return "Haven could not be reached. Check the connection and try again.";
}

/** Plain-language explanations of the server's `data.reason` codes. */
const REASONS: Record<string, string> = {
  slot_taken:
    "That time was just taken by another booking. The schedule has been refreshed: pick another free slot.",
  stale_version:
    "Someone else changed this appointment a moment ago. The schedule has been refreshed: check it and try again.",
  illegal_transition: "This appointment is no longer in a state that allows that step.",
  patient_double_booked: "This patient already has an appointment at that time.",
  outside_availability: "That time is outside the practitioner's hours.",
  in_the_past: "That time has already passed.",
  cutoff_passed: "It is too close to the appointment to change it.",
  mfa_required: "This needs a verified sign-in with your authenticator code.",
  mfa_code_invalid: "That code is not right. Check the authenticator app and try again.",
  mfa_code_reused: "That code was already used. Wait for the next one.",
};

/** Field-level problems of a BAD_REQUEST, keyed by dotted path (`""` for the whole form). */
export function fieldIssues(err: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  if (isHavenError(err, "BAD_REQUEST")) {
    for (const i of (err.data.issues ?? []) as HavenFieldIssue[]) out[i.path] ??= i.message;
  }
  return out;
}

/** True when the server says the session is gone (expired, idle, signed out elsewhere). */
export function isSignedOut(err: unknown): boolean {
  return isHavenError(err, "UNAUTHORIZED");
}

/** True when the answer is a CONFLICT (slot taken, stale version): the caller refreshes its view. */
export function isConflict(err: unknown): boolean {
  return isHavenError(err, "CONFLICT");
}

/** True for FORBIDDEN answers. */
export function isForbidden(err: unknown): boolean {
  return isHavenError(err, "FORBIDDEN");
}
