import { protectedProcedure, router } from "../trpc.ts";
import {
  claimDueInput,
  claimDueOutput,
  completeInput,
  completeManyInput,
  completeManyOutput,
  completeOutput,
  listInput,
  listOutput,
  retryInput,
  retryOutput,
  statsInput,
  statsOutput,
} from "./schemas.ts";
import {
  claimDue,
  completeReminder,
  completeReminders,
  listReminders,
  reminderStats,
  retryReminder,
} from "./service.ts";

export const remindersRouter = router({
  /**
   * `reminders.claimDue` — `{ limit 1–500, leaseSeconds 1–3600, channels? }` →
   * `{ reminders: [{ id, version, attempt, channel, recipient { firstName, address },
   * appointment { startsAt (UTC), localStart }, clinic { name, timezone } }], skipped, leaseSeconds }`.
   * Claims due reminders of the caller's organization (`FOR NO KEY UPDATE … SKIP LOCKED` + lease); moot ones
   * are cancelled, undeliverable ones failed, never returned. Audited per reminder (PHI disclosure,
   * 45 CFR 164.312(b)). For the reminder cron's `service` API key (scope `reminders`).
   * Errors: UNAUTHORIZED, FORBIDDEN (role or scope), BAD_REQUEST.
   */
  claimDue: protectedProcedure
    .meta({ roles: ["service"], scope: "reminders", phi: true })
    .input(claimDueInput)
    .output(claimDueOutput)
    .mutation(({ ctx, input }) =>
      claimDue(ctx.deps, ctx.reminders, ctx.actor, ctx.auditActor, input),
    ),

  /**
   * `reminders.complete` — `{ id, version, outcome: sent|retry|failed|released, providerMessageId?,
   * error? }` → `{ id, status, attempts, nextAttemptAt }`. Reports a claim's outcome; `retry` backs
   * off exponentially and dead-letters after the attempt budget (`HAVEN_REMINDER_MAX_ATTEMPTS`).
   * Errors: NOT_FOUND, CONFLICT (`stale_claim`: lease lost, visit moved or cancelled), FORBIDDEN,
   * BAD_REQUEST (an error code that is not a short code, missing error for retry/failed).
   */
  complete: protectedProcedure
    .meta({ roles: ["service"], scope: "reminders", phi: false })
    .input(completeInput)
    .output(completeOutput)
    .mutation(({ ctx, input }) =>
      completeReminder(ctx.deps, ctx.reminders, ctx.actor, ctx.auditActor, input),
    ),

  /**
   * `reminders.completeMany` — `{ items: [1–500 × complete's input, ids unique] }` →
   * `{ results: [{ ok: true, id, status, attempts, nextAttemptAt } | { ok: false, id,
   * code: CONFLICT|NOT_FOUND, reason: stale_claim|not_found }] }` in input order. Many reports in
   * one call and one transaction, each with `complete`'s semantics and audit; a stale or unknown
   * report is refused on its own without failing the others. Same callers as `complete`.
   * Errors (whole call): FORBIDDEN, UNAUTHORIZED, BAD_REQUEST (bounds, duplicate ids, any bad item).
   */
  completeMany: protectedProcedure
    .meta({ roles: ["service"], scope: "reminders", phi: false })
    .input(completeManyInput)
    .output(completeManyOutput)
    .mutation(({ ctx, input }) =>
      completeReminders(ctx.deps, ctx.reminders, ctx.actor, ctx.auditActor, input),
    ),

  /**
   * `reminders.stats` — no input → `{ byStatus, due, expiredLeases, oldestDueAt }` for the caller's
   * organization (staff, admin). Errors: UNAUTHORIZED, FORBIDDEN.
   */
  stats: protectedProcedure
    .meta({ roles: ["staff", "admin"], phi: false })
    .input(statsInput)
    .output(statsOutput)
    .query(({ ctx }) => reminderStats(ctx.deps, ctx.actor, ctx.auditActor)),

  /**
   * `reminders.list` — `{ status?, limit 1–100, cursor? }` → `{ items, nextCursor }`, latest due
   * first; ids, times, attempts and error codes (no names, addresses or content). Staff, admin of
   * the organization. Errors: UNAUTHORIZED, FORBIDDEN, BAD_REQUEST (input or cursor).
   */
  list: protectedProcedure
    .meta({ roles: ["staff", "admin"], phi: true })
    .input(listInput)
    .output(listOutput)
    .query(({ ctx, input }) => listReminders(ctx.deps, ctx.actor, ctx.auditActor, input)),

  /**
   * `reminders.retry` — `{ id }` → the reminder, back to `pending` and due now with its attempts
   * reset. Only for a `failed` reminder whose visit is still booked and upcoming.
   * Errors: NOT_FOUND, CONFLICT (`not_failed`, `appointment_not_upcoming`), FORBIDDEN.
   */
  retry: protectedProcedure
    .meta({ roles: ["staff", "admin"], phi: true })
    .input(retryInput)
    .output(retryOutput)
    .mutation(({ ctx, input }) => retryReminder(ctx.deps, ctx.actor, ctx.auditActor, input)),
});
