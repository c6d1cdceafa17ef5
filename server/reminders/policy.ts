import type { Actor } from "../kernel/roles.ts";
import type { ReminderSettings } from "./settings.ts";

/**
 * Rules of the reminder queue as pure functions over facts the service loads; exhaustively tested in
 * `policy.test.ts`.
 *
 * Who (ARCHITECTURE §3, 45 CFR 164.502(b) minimum necessary):
 * - the queue (`claimDue`, `complete`) is worked by `service` callers only; an API key must carry
 *   the `reminders` scope; a caller sees only its own organization's reminders;
 * - staff and admins of the organization watch it (`stats`, `list`) and re-queue dead letters
 *   (`retry`); nobody else touches it.
 *
 * What may be sent: only a reminder whose appointment is still `booked`, still starts at the time
 * the reminder was computed for, has not started yet, whose patient is alive and has an address for
 * the channel. Everything else is cancelled (moot) or failed (needs a human), never sent.
 */
export type ReminderRule = "role" | "scope" | "other_organization";
export type Decision = { allowed: true } | { allowed: false; rule: ReminderRule };

const allow: Decision = { allowed: true };
const deny = (rule: ReminderRule): Decision => ({ allowed: false, rule });

/** May `actor` claim and complete reminders (of `actor.organizationId`)? */
export function canWorkQueue(actor: Actor): Decision {
  switch (actor.role) {
    case "service":
      // A session-backed service account has no scopes; an API key must name `reminders`.
      if (actor.apiKeyId && !(actor.scopes ?? []).includes("reminders")) return deny("scope");
      return allow;
    case "patient":
    case "clinician":
    case "staff":
    case "admin":
      return deny("role");
    default: {
      const unreachable: never = actor.role;
      return unreachable;
    }
  }
}

/** May `actor` see the queue of `organizationId` and retry its dead letters? */
export function canManageReminders(actor: Actor, organizationId: string): Decision {
  switch (actor.role) {
    case "staff":
    case "admin":
      return actor.organizationId === organizationId ? allow : deny("other_organization");
    case "patient":
    case "clinician":
    case "service":
      return deny("role");
    default: {
      const unreachable: never = actor.role;
      return unreachable;
    }
  }
}

/**
 * Delay before the next attempt after `attempts` failed ones: `base * 2^(attempts-1)` seconds,
 * capped at `backoffMaxSeconds` (exponential backoff; attempt 1 → base, 2 → 2·base, 3 → 4·base).
 */
export function backoffSeconds(attempts: number, settings: ReminderSettings): number {
  const n = Math.max(1, Math.floor(attempts));
  const raw = settings.backoffBaseSeconds * 2 ** Math.min(n - 1, 30);
  return Math.min(settings.backoffMaxSeconds, raw);
}

/** What a worker reports about a reminder it claimed. */
export type CompletionOutcome = "sent" | "retry" | "failed" | "released";

/** The row state a report leads to. */
export type Transition =
  | { status: "sent" }
  | { status: "pending"; attempts: number; nextAttemptAt: Date; lastError: string | null }
  | { status: "failed"; lastError: string };

/**
 * The state after a report on a claimed reminder whose claim counted attempt `attempts`.
 * - `sent`: delivered (terminal).
 * - `retry`: a transient failure. Back to `pending` after {@link backoffSeconds}, unless this was
 *   attempt `maxAttempts`: then `failed` (dead letter, visible to staff).
 * - `failed`: the worker knows no retry can help (e.g. a malformed address): `failed` now.
 * - `released`: the worker gave the claim back unused (shutdown, lease about to run out): `pending`,
 *   due again at once, and the attempt is not counted.
 */
export function afterOutcome(
  claim: { attempts: number },
  outcome: CompletionOutcome,
  error: string | null,
  settings: ReminderSettings,
  now: Date,
): Transition {
  switch (outcome) {
    case "sent":
      return { status: "sent" };
    case "retry":
      if (claim.attempts >= settings.maxAttempts) {
        return { status: "failed", lastError: error ?? "retry_exhausted" };
      }
      return {
        status: "pending",
        attempts: claim.attempts,
        nextAttemptAt: new Date(now.getTime() + backoffSeconds(claim.attempts, settings) * 1000),
        lastError: error ?? "unknown",
      };
    case "failed":
      return { status: "failed", lastError: error ?? "unknown" };
    case "released":
      return {
        status: "pending",
        attempts: Math.max(0, claim.attempts - 1),
        nextAttemptAt: now,
        lastError: null,
      };
    default: {
      const unreachable: never = outcome;
      return unreachable;
    }
  }
}

/** Why a due reminder was not handed to a worker (stored in `last_error`). */
export type SkipReason =
  | "appointment_cancelled"
  | "visit_under_way"
  | "visit_over"
  | "appointment_moved"
  | "too_late"
  | "patient_deceased"
  | "lease_expired"
  | "no_contact_address";

/** Facts about one due (or lease-expired) reminder, loaded under its row lock. */
export interface DeliveryFacts {
  appointmentStatus: "booked" | "checked_in" | "completed" | "cancelled" | "no_show";
  /** The appointment's current start (UTC). */
  startsAt: Date;
  /** The reminder's due time and offset, as computed when it was (re)scheduled. */
  dueAt: Date;
  offsetMinutes: number;
  /** Claims so far, and whether this row is a lease that ran out (a worker died holding it). */
  attempts: number;
  leaseExpired: boolean;
  /** The patient's address for the reminder's channel (e-mail or phone); null when none. */
  address: string | null;
  deceased: boolean;
}

export type Verdict =
  | { deliver: true }
  | { deliver: false; status: "cancelled" | "failed"; reason: SkipReason };

/**
 * Decide whether a due reminder may be handed to a worker now. Cancelled (moot): the visit was
 * cancelled, is under way or over, was moved (the reminder no longer matches the start), has
 * already started, or the patient died. Failed (needs a human): a worker died holding it on its
 * last attempt, or the patient has no address for the channel.
 */
export function deliveryVerdict(f: DeliveryFacts, now: Date, settings: ReminderSettings): Verdict {
  const cancel = (reason: SkipReason): Verdict => ({ deliver: false, status: "cancelled", reason });
  const fail = (reason: SkipReason): Verdict => ({ deliver: false, status: "failed", reason });
  switch (f.appointmentStatus) {
    case "booked":
      break;
    case "cancelled":
      return cancel("appointment_cancelled");
    case "checked_in":
      return cancel("visit_under_way");
    case "completed":
    case "no_show":
      return cancel("visit_over");
    default: {
      const unreachable: never = f.appointmentStatus;
      return unreachable;
    }
  }
  if (f.startsAt.getTime() - f.offsetMinutes * 60_000 !== f.dueAt.getTime()) {
    return cancel("appointment_moved");
  }
  if (f.startsAt.getTime() <= now.getTime()) return cancel("too_late");
  if (f.deceased) return cancel("patient_deceased");
  if (f.leaseExpired && f.attempts >= settings.maxAttempts) return fail("lease_expired");
  if (!f.address) return fail("no_contact_address");
  return { deliver: true };
}

/** Why a dead letter cannot be re-queued. */
export type RetryRefusal = "not_failed" | "appointment_not_upcoming";

/**
 * A `failed` reminder may be re-queued by staff while its appointment is still `booked` and has not
 * started. @returns null when allowed, else the refusal
 */
export function retryRefusal(
  reminder: { status: "pending" | "claimed" | "sent" | "failed" | "cancelled" },
  appointment: { status: DeliveryFacts["appointmentStatus"]; startsAt: Date },
  now: Date,
): RetryRefusal | null {
  if (reminder.status !== "failed") return "not_failed";
  if (appointment.status !== "booked" || appointment.startsAt.getTime() <= now.getTime()) {
    return "appointment_not_upcoming";
  }
  return null;
}
