import { and, desc, eq, inArray, lte, sql } from "drizzle-orm";
import { Temporal } from "temporal-polyfill";
import type { z } from "zod";
import type { Executor } from "../../db/client.ts";
import { recordsetJson } from "../../db/rows.ts";
import { appointments, organizations, patients, reminders } from "../../db/schema/index.ts";
import { DecryptionError } from "../crypto/envelope.ts";
import type { ServiceDeps } from "../deps.ts";
import { type AuditActor, type AuditEvent, auditDenial, recordAudit } from "../kernel/audit.ts";
import { decodeOptionalCursor, encodeCursor, keysetAfter } from "../kernel/cursor.ts";
import type { Demographics } from "../kernel/demographics.ts";
import { ConflictError, ForbiddenError, NotFoundError } from "../kernel/errors.ts";
import type { Actor } from "../kernel/roles.ts";
import {
  afterOutcome,
  type CompletionOutcome,
  canManageReminders,
  canWorkQueue,
  type Decision,
  deliveryVerdict,
  retryRefusal,
  type SkipReason,
} from "./policy.ts";
import type {
  claimDueOutput,
  completeManyOutput,
  completeOutput,
  listOutput,
  reminderListItem,
  statsOutput,
} from "./schemas.ts";
import type { ReminderSettings } from "./settings.ts";

/**
 * The reminder queue (ARCHITECTURE §4): due rows are claimed with `FOR NO KEY UPDATE … SKIP LOCKED`
 * (the FOR UPDATE family, minus blocking other writers' foreign-key checks) and a
 * lease, so any number of cron processes on any number of machines can work it at once without two
 * of them holding the same reminder; a claim that is never reported (worker killed) becomes
 * claimable again when its lease runs out. Every claim bumps the row's `version`, which is the
 * claim token `complete` must present, so a report from a superseded claim (lease lost, visit
 * rescheduled or cancelled) is refused. All times come from `deps.now()` (UTC), never from the
 * database clock, so tests drive leases and backoff with an injected clock.
 */

export type ClaimResult = z.infer<typeof claimDueOutput>;
export type CompleteResult = z.infer<typeof completeOutput>;
export type CompleteManyResult = z.infer<typeof completeManyOutput>;
export type ReminderStats = z.infer<typeof statsOutput>;
export type ReminderPage = z.infer<typeof listOutput>;
type ReminderListItem = z.infer<typeof reminderListItem>;
type Channel = "email" | "sms";

async function refuse(
  deps: ServiceDeps,
  audit: AuditActor,
  decision: Exclude<Decision, { allowed: true }>,
  procedure: string,
): Promise<never> {
  throw await auditDenial(
    deps.db,
    audit,
    {
      action: "access.denied",
      resourceType: "Procedure",
      resourceId: procedure,
      details: { rule: decision.rule },
    },
    new ForbiddenError(
      decision.rule === "scope"
        ? "This API key lacks the reminders scope"
        : "You may not work the reminder queue",
      decision.rule,
    ),
    deps.now(),
  );
}

async function assertCanWork(
  deps: ServiceDeps,
  actor: Actor,
  audit: AuditActor,
  procedure: string,
): Promise<void> {
  const d = canWorkQueue(actor);
  if (!d.allowed) await refuse(deps, audit, d, procedure);
}

async function assertCanManage(
  deps: ServiceDeps,
  actor: Actor,
  audit: AuditActor,
  procedure: string,
): Promise<void> {
  const d = canManageReminders(actor, actor.organizationId);
  if (!d.allowed) await refuse(deps, audit, d, procedure);
}

/** Local wall time with its offset in `timeZone` (`2027-03-15T09:00-04:00`); null for a bad zone. */
export function localWallTime(instant: Date, timeZone: string): string | null {
  try {
    return Temporal.Instant.fromEpochMilliseconds(instant.getTime())
      .toZonedDateTimeISO(timeZone)
      .toString({ smallestUnit: "minute", timeZoneName: "never" });
  } catch {
    return null;
  }
}

const CANDIDATE = {
  id: reminders.id,
  status: reminders.status,
  version: reminders.version,
  attempts: reminders.attempts,
  channel: reminders.channel,
  offsetMinutes: reminders.offsetMinutes,
  dueAt: reminders.dueAt,
  appointmentStatus: appointments.status,
  startsAt: appointments.startsAt,
  patientId: appointments.patientId,
  demographics: patients.demographics,
  clinicName: organizations.name,
  timezone: organizations.timezone,
};

function selectCandidates(
  tx: Executor,
  organizationId: string,
  channels: readonly Channel[],
  which: "expired" | "pending",
  now: Date,
  limit: number,
) {
  const due =
    which === "expired"
      ? and(eq(reminders.status, "claimed"), lte(reminders.leaseUntil, now))
      : and(eq(reminders.status, "pending"), lte(reminders.nextAttemptAt, now));
  return (
    tx
      .select(CANDIDATE)
      .from(reminders)
      .innerJoin(appointments, eq(appointments.id, reminders.appointmentId))
      .innerJoin(patients, eq(patients.id, appointments.patientId))
      .innerJoin(organizations, eq(organizations.id, reminders.organizationId))
      .where(
        and(
          eq(reminders.organizationId, organizationId),
          inArray(reminders.channel, [...channels]),
          due,
        ),
      )
      .orderBy(which === "expired" ? reminders.leaseUntil : reminders.nextAttemptAt)
      .limit(limit)
      // Lock the reminder AND its appointment, skipping either when held: a visit being cancelled
      // or moved right now is not handed out (its change then settles the reminder). NO KEY UPDATE
      // leaves foreign-key checks of other writers (KEY SHARE) unblocked.
      .for("no key update", { of: [reminders, appointments], skipLocked: true })
  );
}

/**
 * `reminders.claimDue`: claim up to `limit` due reminders of the caller's organization for
 * `leaseSeconds` and return the minimum needed to write them: first name, address for the channel,
 * the appointment's UTC start and local wall time, the clinic's name and IANA zone (45 CFR
 * 164.502(b) minimum necessary; no reason, practitioner, birth date or other demographics).
 *
 * Claimable: `pending` with `next_attempt_at <= now`, and `claimed` whose lease ran out (the worker
 * died). Rows other workers hold are skipped (`SKIP LOCKED`), so concurrent callers never
 * receive the same reminder while its lease holds. Each claim counts an attempt and bumps `version`
 * (the claim token). Due rows that must not be sent are settled instead, in the same transaction:
 * cancelled when the visit was cancelled, is under way or over, was moved, has started, or the
 * patient died; failed (dead letter) when the patient has no address for the channel, a worker
 * died holding it on its last attempt, or the record or the clinic's time zone cannot be read. Every handed-out reminder is audited as a PHI disclosure
 * (`reminder.claim`, ids only; 45 CFR 164.312(b)).
 *
 * @param input.limit 1–500; @param input.leaseSeconds 1–3600 s
 * @throws ForbiddenError when the caller is not a `service` account with the `reminders` scope
 */
export async function claimDue(
  deps: ServiceDeps,
  settings: ReminderSettings,
  actor: Actor,
  audit: AuditActor,
  input: { limit: number; leaseSeconds: number; channels: readonly Channel[] },
): Promise<ClaimResult> {
  await assertCanWork(deps, actor, audit, "reminders.claimDue");
  const now = deps.now();
  const leaseUntil = new Date(now.getTime() + input.leaseSeconds * 1000);
  return deps.db.transaction(async (tx) => {
    const expired = await selectCandidates(
      tx,
      actor.organizationId,
      input.channels,
      "expired",
      now,
      input.limit,
    );
    const pending =
      expired.length < input.limit
        ? await selectCandidates(
            tx,
            actor.organizationId,
            input.channels,
            "pending",
            now,
            input.limit - expired.length,
          )
        : [];
    const candidates = [...expired, ...pending];

    const deliver: {
      row: (typeof candidates)[number];
      firstName: string | null;
      address: string;
      localStart: string;
    }[] = [];
    type Reason = SkipReason | "clinic_timezone_invalid" | "record_unreadable";
    const settle = new Map<
      string,
      { status: "cancelled" | "failed"; reason: Reason; ids: string[] }
    >();
    const events: AuditEvent[] = [];
    const settleAs = (
      row: (typeof candidates)[number],
      status: "cancelled" | "failed",
      reason: Reason,
    ) => {
      const key = `${status}:${reason}`;
      const group = settle.get(key) ?? { status, reason, ids: [] };
      group.ids.push(row.id);
      settle.set(key, group);
      events.push({
        action: "reminder.claim",
        outcome: "allowed",
        resourceType: "Reminder",
        resourceId: row.id,
        patientId: row.patientId,
        details: { result: status, reason, channel: row.channel },
      });
    };

    for (const row of candidates) {
      let demo: Demographics;
      try {
        demo = deps.crypto.open<Demographics>(
          "patients",
          "demographics",
          row.patientId,
          row.demographics,
        );
      } catch (err) {
        // One unreadable record (e.g. a retired key) must not block the whole queue.
        if (!(err instanceof DecryptionError)) throw err;
        settleAs(row, "failed", "record_unreadable");
        continue;
      }
      const address = (row.channel === "email" ? demo.email : demo.phone)?.trim() || null;
      const verdict = deliveryVerdict(
        {
          appointmentStatus: row.appointmentStatus,
          startsAt: row.startsAt,
          dueAt: row.dueAt,
          offsetMinutes: row.offsetMinutes,
          attempts: row.attempts,
          leaseExpired: row.status === "claimed",
          address,
          deceased: demo.deceased !== null && demo.deceased !== false,
        },
        now,
        settings,
      );
      if (!verdict.deliver) {
        settleAs(row, verdict.status, verdict.reason);
        continue;
      }
      const localStart = localWallTime(row.startsAt, row.timezone);
      if (!localStart) {
        settleAs(row, "failed", "clinic_timezone_invalid");
        continue;
      }
      if (!address) {
        settleAs(row, "failed", "no_contact_address");
        continue;
      }
      deliver.push({ row, firstName: demo.name.given[0] ?? null, address, localStart });
    }

    for (const { status, reason, ids } of settle.values()) {
      await tx
        .update(reminders)
        .set({
          status,
          leaseUntil: null,
          lastError: reason,
          version: sql`${reminders.version} + 1`,
          updatedAt: now,
        })
        .where(inArray(reminders.id, ids));
    }

    const claimed =
      deliver.length === 0
        ? []
        : await tx
            .update(reminders)
            .set({
              status: "claimed",
              leaseUntil,
              attempts: sql`${reminders.attempts} + 1`,
              version: sql`${reminders.version} + 1`,
              updatedAt: now,
            })
            .where(
              inArray(
                reminders.id,
                deliver.map((d) => d.row.id),
              ),
            )
            .returning({
              id: reminders.id,
              version: reminders.version,
              attempts: reminders.attempts,
            });
    const token = new Map(claimed.map((c) => [c.id, c]));
    for (const d of deliver) {
      events.push({
        action: "reminder.claim",
        outcome: "allowed",
        resourceType: "Reminder",
        resourceId: d.row.id,
        patientId: d.row.patientId,
        details: {
          result: "claimed",
          channel: d.row.channel,
          attempt: token.get(d.row.id)?.attempts ?? null,
          leaseSeconds: input.leaseSeconds,
        },
      });
    }
    await recordAudit(tx, audit, events, now);

    return {
      reminders: deliver.map((d) => {
        const t = token.get(d.row.id);
        if (!t) throw new Error("claimed row missing from UPDATE … RETURNING");
        return {
          id: d.row.id,
          version: t.version,
          attempt: t.attempts,
          channel: d.row.channel,
          recipient: { firstName: d.firstName, address: d.address },
          appointment: { startsAt: d.row.startsAt, localStart: d.localStart },
          clinic: { name: d.row.clinicName, timezone: d.row.timezone },
        };
      }),
      skipped: candidates.length - deliver.length,
      leaseSeconds: input.leaseSeconds,
    };
  });
}

/**
 * `reminders.complete`: report the outcome of a claim (see `afterOutcome` in `policy.ts`):
 * `sent` (terminal; records the provider's message id), `retry` (transient failure: back to
 * `pending` after exponential backoff, or `failed` once the attempt budget is spent), `failed`
 * (permanent: dead letter now), `released` (claim given back unused; the attempt is not counted).
 * Audited `reminder.complete` (ids and codes only).
 *
 * @throws NotFoundError (unknown id or another organization's reminder)
 * @throws ConflictError `stale_claim` when the row is no longer claimed under `version` (the lease
 *   ran out and another worker reclaimed it, or the visit was rescheduled or cancelled meanwhile);
 *   the refusal is audited with outcome `error`
 */
export async function completeReminder(
  deps: ServiceDeps,
  settings: ReminderSettings,
  actor: Actor,
  audit: AuditActor,
  input: {
    id: string;
    version: number;
    outcome: CompletionOutcome;
    providerMessageId?: string | undefined;
    error?: string | undefined;
  },
): Promise<CompleteResult> {
  await assertCanWork(deps, actor, audit, "reminders.complete");
  const now = deps.now();
  let stale: { patientId: string; status: string } | null = null;
  try {
    return await deps.db.transaction(async (tx) => {
      const [row] = await tx
        .select({
          status: reminders.status,
          version: reminders.version,
          attempts: reminders.attempts,
          patientId: appointments.patientId,
        })
        .from(reminders)
        .innerJoin(appointments, eq(appointments.id, reminders.appointmentId))
        .where(and(eq(reminders.id, input.id), eq(reminders.organizationId, actor.organizationId)))
        .for("no key update", { of: reminders });
      if (!row) throw new NotFoundError("No such reminder");
      if (row.status !== "claimed" || row.version !== input.version) {
        stale = { patientId: row.patientId, status: row.status };
        throw new ConflictError(
          "This claim is no longer current: the reminder was reclaimed, rescheduled or cancelled",
          "stale_claim",
        );
      }
      const next = afterOutcome(row, input.outcome, input.error ?? null, settings, now);
      const common = { leaseUntil: null, updatedAt: now };
      const [updated] = await tx
        .update(reminders)
        .set(
          next.status === "sent"
            ? {
                ...common,
                status: "sent",
                sentAt: now,
                providerMessageId: input.providerMessageId ?? null,
                lastError: null,
              }
            : next.status === "pending"
              ? {
                  ...common,
                  status: "pending",
                  attempts: next.attempts,
                  nextAttemptAt: next.nextAttemptAt,
                  lastError: next.lastError,
                }
              : { ...common, status: "failed", lastError: next.lastError },
        )
        .where(eq(reminders.id, input.id))
        .returning({
          id: reminders.id,
          status: reminders.status,
          attempts: reminders.attempts,
          nextAttemptAt: reminders.nextAttemptAt,
        });
      if (!updated) throw new Error("reminder vanished under its row lock");
      await recordAudit(
        tx,
        audit,
        {
          action: "reminder.complete",
          outcome: "allowed",
          resourceType: "Reminder",
          resourceId: input.id,
          patientId: row.patientId,
          details: {
            outcome: input.outcome,
            attempt: row.attempts,
            status: updated.status,
            error: input.error ?? null,
          },
        },
        now,
      );
      return {
        id: updated.id,
        status: updated.status,
        attempts: updated.attempts,
        nextAttemptAt: updated.status === "pending" ? updated.nextAttemptAt : null,
      };
    });
  } catch (err) {
    const s = stale as { patientId: string; status: string } | null;
    if (err instanceof ConflictError && s) {
      // A late report (e.g. `sent` after the lease ran out) is worth keeping: it explains a duplicate.
      await recordAudit(
        deps.db,
        audit,
        {
          action: "reminder.complete",
          outcome: "error",
          resourceType: "Reminder",
          resourceId: input.id,
          patientId: s.patientId,
          details: { outcome: input.outcome, reason: "stale_claim", currentStatus: s.status },
        },
        now,
      );
    }
    throw err;
  }
}

/** One report, exactly as `reminders.complete` takes it. */
export interface CompletionReport {
  id: string;
  version: number;
  outcome: CompletionOutcome;
  providerMessageId?: string | undefined;
  error?: string | undefined;
}

/** The columns a report leaves on a claimed row besides `lease_until` (null) and `updated_at`. */
interface CompletedColumns {
  status: "sent" | "pending" | "failed";
  attempts: number;
  nextAttemptAt: Date;
  lastError: string | null;
  sentAt: Date | null;
  providerMessageId: string | null;
}

/**
 * The full row state `completeReminder` leaves behind for `report` on a row currently holding
 * `current` (columns `complete` does not set keep their value): the set-based `completeMany`
 * writes exactly these values, so both paths agree column by column.
 */
function completedColumns(
  current: Omit<CompletedColumns, "status">,
  report: CompletionReport,
  settings: ReminderSettings,
  now: Date,
): CompletedColumns {
  const next = afterOutcome(current, report.outcome, report.error ?? null, settings, now);
  switch (next.status) {
    case "sent":
      return {
        ...current,
        status: "sent",
        sentAt: now,
        providerMessageId: report.providerMessageId ?? null,
        lastError: null,
      };
    case "pending":
      return {
        ...current,
        status: "pending",
        attempts: next.attempts,
        nextAttemptAt: next.nextAttemptAt,
        lastError: next.lastError,
      };
    case "failed":
      return { ...current, status: "failed", lastError: next.lastError };
    default: {
      const unreachable: never = next;
      return unreachable;
    }
  }
}

/**
 * `reminders.completeMany`: report up to 500 claims' outcomes in one call and one transaction, each
 * with exactly `reminders.complete`'s semantics (version = claim token check, backoff, attempt
 * budget → `failed`, `released` uncounted) and audit (`reminder.complete`, outcome `allowed` per
 * applied report, outcome `error` with `reason: stale_claim` per refused one — here in the same
 * transaction). One report's refusal does not fail the others: results come back per report, in
 * input order, `{ ok: true, id, status, attempts, nextAttemptAt }` or `{ ok: false, id, code:
 * CONFLICT, reason: stale_claim }` (superseded claim) or `{ ok: false, id, code: NOT_FOUND,
 * reason: not_found }` (unknown id or another organization's reminder; not audited, as in
 * `complete`). Set-based: one locking SELECT (rows locked in id order, so concurrent calls cannot
 * deadlock each other), one `UPDATE … FROM jsonb_to_recordset(…)`, one audit INSERT.
 *
 * @param input.items 1–500 reports, ids unique (checked by `completeManyInput`)
 * @throws ForbiddenError when the caller is not a `service` account with the `reminders` scope
 */
export async function completeReminders(
  deps: ServiceDeps,
  settings: ReminderSettings,
  actor: Actor,
  audit: AuditActor,
  input: { items: readonly CompletionReport[] },
): Promise<CompleteManyResult> {
  await assertCanWork(deps, actor, audit, "reminders.completeMany");
  const now = deps.now();
  return deps.db.transaction(async (tx) => {
    const rows = await tx
      .select({
        id: reminders.id,
        status: reminders.status,
        version: reminders.version,
        attempts: reminders.attempts,
        nextAttemptAt: reminders.nextAttemptAt,
        lastError: reminders.lastError,
        sentAt: reminders.sentAt,
        providerMessageId: reminders.providerMessageId,
        patientId: appointments.patientId,
      })
      .from(reminders)
      .innerJoin(appointments, eq(appointments.id, reminders.appointmentId))
      .where(
        and(
          inArray(
            reminders.id,
            input.items.map((i) => i.id),
          ),
          eq(reminders.organizationId, actor.organizationId),
        ),
      )
      .orderBy(reminders.id)
      .for("no key update", { of: reminders });
    const byId = new Map(rows.map((r) => [r.id, r]));

    const events: AuditEvent[] = [];
    const changes: (CompletedColumns & { id: string })[] = [];
    for (const item of input.items) {
      const row = byId.get(item.id);
      if (!row) continue;
      if (row.status !== "claimed" || row.version !== item.version) {
        events.push({
          action: "reminder.complete",
          outcome: "error",
          resourceType: "Reminder",
          resourceId: item.id,
          patientId: row.patientId,
          details: { outcome: item.outcome, reason: "stale_claim", currentStatus: row.status },
        });
        continue;
      }
      changes.push({ id: item.id, ...completedColumns(row, item, settings, now) });
    }

    const updated =
      changes.length === 0
        ? []
        : await tx
            .update(reminders)
            .set({
              status: sql`v.status::reminder_status`,
              attempts: sql`v.attempts`,
              nextAttemptAt: sql`v.next_attempt_at`,
              lastError: sql`v.last_error`,
              sentAt: sql`v.sent_at`,
              providerMessageId: sql`v.provider_message_id`,
              leaseUntil: null,
              updatedAt: now,
            })
            .from(
              sql`jsonb_to_recordset(${recordsetJson(
                changes.map((c) => ({
                  id: c.id,
                  status: c.status,
                  attempts: c.attempts,
                  next_attempt_at: c.nextAttemptAt.toISOString(),
                  last_error: c.lastError,
                  sent_at: c.sentAt?.toISOString() ?? null,
                  provider_message_id: c.providerMessageId,
                })),
              )}::jsonb) as v(id uuid, status text, attempts int, next_attempt_at timestamptz, last_error text, sent_at timestamptz, provider_message_id text)`,
            )
            .where(sql`${reminders.id} = v.id`)
            .returning({
              id: reminders.id,
              status: reminders.status,
              attempts: reminders.attempts,
              nextAttemptAt: reminders.nextAttemptAt,
            });
    if (updated.length !== changes.length) throw new Error("reminder vanished under its row lock");
    const done = new Map(updated.map((u) => [u.id, u]));

    for (const item of input.items) {
      const row = byId.get(item.id);
      const u = done.get(item.id);
      if (!row || !u) continue;
      events.push({
        action: "reminder.complete",
        outcome: "allowed",
        resourceType: "Reminder",
        resourceId: item.id,
        patientId: row.patientId,
        details: {
          outcome: item.outcome,
          attempt: row.attempts,
          status: u.status,
          error: item.error ?? null,
        },
      });
    }
    await recordAudit(tx, audit, events, now);

    return {
      results: input.items.map((item) => {
        const u = done.get(item.id);
        if (u) {
          return {
            ok: true as const,
            id: u.id,
            status: u.status,
            attempts: u.attempts,
            nextAttemptAt: u.status === "pending" ? u.nextAttemptAt : null,
          };
        }
        return byId.has(item.id)
          ? {
              ok: false as const,
              id: item.id,
              code: "CONFLICT" as const,
              reason: "stale_claim" as const,
            }
          : {
              ok: false as const,
              id: item.id,
              code: "NOT_FOUND" as const,
              reason: "not_found" as const,
            };
      }),
    };
  });
}

/**
 * `reminders.stats`: the caller's organization's queue: counts per status, how many are due now
 * (queue depth), how many claims have an expired lease, and the oldest due time (lag). Counts only,
 * no PHI; audited `reminder.stats`.
 * @throws ForbiddenError for roles other than staff and admin
 */
export async function reminderStats(
  deps: ServiceDeps,
  actor: Actor,
  audit: AuditActor,
): Promise<ReminderStats> {
  await assertCanManage(deps, actor, audit, "reminders.stats");
  const now = deps.now();
  const org = eq(reminders.organizationId, actor.organizationId);
  const counts = await deps.db
    .select({ status: reminders.status, n: sql<number>`count(*)::int` })
    .from(reminders)
    .where(org)
    .groupBy(reminders.status);
  const iso = now.toISOString();
  const [lag] = await deps.db
    .select({
      due: sql<number>`count(*) filter (where ${reminders.status} = 'pending' and ${reminders.nextAttemptAt} <= ${iso}::timestamptz)::int`,
      expired: sql<number>`count(*) filter (where ${reminders.status} = 'claimed' and ${reminders.leaseUntil} <= ${iso}::timestamptz)::int`,
      oldest:
        sql<Date | null>`min(${reminders.nextAttemptAt}) filter (where ${reminders.status} = 'pending' and ${reminders.nextAttemptAt} <= ${iso}::timestamptz)`.mapWith(
          reminders.nextAttemptAt,
        ),
    })
    .from(reminders)
    .where(and(org, inArray(reminders.status, ["pending", "claimed"])));
  const byStatus = { pending: 0, claimed: 0, sent: 0, failed: 0, cancelled: 0 };
  for (const c of counts) byStatus[c.status] = Number(c.n);
  await recordAudit(
    deps.db,
    audit,
    {
      action: "reminder.stats",
      outcome: "allowed",
      resourceType: "Organization",
      resourceId: actor.organizationId,
    },
    now,
  );
  return {
    byStatus,
    due: Number(lag?.due ?? 0),
    expiredLeases: Number(lag?.expired ?? 0),
    oldestDueAt: lag?.oldest ?? null,
  };
}

const LIST_ITEM = {
  id: reminders.id,
  appointmentId: reminders.appointmentId,
  patientId: appointments.patientId,
  channel: reminders.channel,
  offsetMinutes: reminders.offsetMinutes,
  dueAt: reminders.dueAt,
  status: reminders.status,
  attempts: reminders.attempts,
  nextAttemptAt: reminders.nextAttemptAt,
  lastError: reminders.lastError,
  sentAt: reminders.sentAt,
  updatedAt: reminders.updatedAt,
};

/**
 * `reminders.list`: the caller's organization's reminders, optionally of one status (`failed` = the
 * dead letters), latest due first, keyset-paginated. Ids, times, counters and error codes only;
 * audited `reminder.list` with the page size.
 * @throws ForbiddenError for roles other than staff and admin; ValidationError for a bad cursor
 */
export async function listReminders(
  deps: ServiceDeps,
  actor: Actor,
  audit: AuditActor,
  input: {
    status?: "pending" | "claimed" | "sent" | "failed" | "cancelled" | undefined;
    limit: number;
    cursor?: string | undefined;
  },
): Promise<ReminderPage> {
  const after = decodeOptionalCursor(input.cursor);
  await assertCanManage(deps, actor, audit, "reminders.list");
  const rows = await deps.db
    .select(LIST_ITEM)
    .from(reminders)
    .innerJoin(appointments, eq(appointments.id, reminders.appointmentId))
    .where(
      and(
        eq(reminders.organizationId, actor.organizationId),
        input.status ? eq(reminders.status, input.status) : undefined,
        keysetAfter(after, reminders.dueAt, reminders.id, "desc"),
      ),
    )
    .orderBy(desc(reminders.dueAt), desc(reminders.id))
    .limit(input.limit + 1);
  const page: ReminderListItem[] = rows.slice(0, input.limit);
  const last = page.at(-1);
  await recordAudit(
    deps.db,
    audit,
    {
      action: "reminder.list",
      outcome: "allowed",
      resourceType: "Organization",
      resourceId: actor.organizationId,
      details: { status: input.status ?? null, count: page.length },
    },
    deps.now(),
  );
  return {
    items: page,
    nextCursor: rows.length > input.limit && last ? encodeCursor(last.dueAt, last.id) : null,
  };
}

/**
 * `reminders.retry`: put a dead letter (`failed`) back in the queue: `pending`, due now, attempts
 * reset, new claim token. Only while its appointment is still booked and has not started.
 * Audited `reminder.retry`.
 * @throws NotFoundError (unknown id, or another organization's — that refusal is audited as denied)
 * @throws ConflictError `not_failed` | `appointment_not_upcoming`
 */
export async function retryReminder(
  deps: ServiceDeps,
  actor: Actor,
  audit: AuditActor,
  input: { id: string },
): Promise<ReminderListItem> {
  await assertCanManage(deps, actor, audit, "reminders.retry");
  const now = deps.now();
  let otherOrganization = false;
  try {
    return await deps.db.transaction(async (tx) => {
      const [row] = await tx
        .select({
          organizationId: reminders.organizationId,
          status: reminders.status,
          patientId: appointments.patientId,
          appointmentStatus: appointments.status,
          startsAt: appointments.startsAt,
        })
        .from(reminders)
        .innerJoin(appointments, eq(appointments.id, reminders.appointmentId))
        .where(eq(reminders.id, input.id))
        .for("no key update", { of: reminders });
      if (!row) throw new NotFoundError("No such reminder");
      if (!canManageReminders(actor, row.organizationId).allowed) {
        otherOrganization = true;
        throw new NotFoundError("No such reminder");
      }
      const refusal = retryRefusal(
        { status: row.status },
        { status: row.appointmentStatus, startsAt: row.startsAt },
        now,
      );
      if (refusal === "not_failed") {
        throw new ConflictError("Only a failed reminder can be retried", refusal);
      }
      if (refusal === "appointment_not_upcoming") {
        throw new ConflictError("The appointment is no longer upcoming", refusal);
      }
      await tx
        .update(reminders)
        .set({
          status: "pending",
          attempts: 0,
          nextAttemptAt: now,
          leaseUntil: null,
          lastError: null,
          providerMessageId: null,
          version: sql`${reminders.version} + 1`,
          updatedAt: now,
        })
        .where(eq(reminders.id, input.id));
      await recordAudit(
        tx,
        audit,
        {
          action: "reminder.retry",
          outcome: "allowed",
          resourceType: "Reminder",
          resourceId: input.id,
          patientId: row.patientId,
        },
        now,
      );
      const [item] = await tx
        .select(LIST_ITEM)
        .from(reminders)
        .innerJoin(appointments, eq(appointments.id, reminders.appointmentId))
        .where(eq(reminders.id, input.id));
      if (!item) throw new Error("reminder vanished under its row lock");
      return item;
    });
  } catch (err) {
    if (otherOrganization) {
      throw await auditDenial(
        deps.db,
        audit,
        {
          action: "reminder.retry",
          resourceType: "Reminder",
          resourceId: input.id,
          details: { rule: "other_organization" },
        },
        err as Error,
        now,
      );
    }
    throw err;
  }
}

/**
 * Reminder rows per status across all organizations, for the `/metrics` queue-depth gauge
 * (statuses and counts only; no ids, no PHI).
 */
export async function reminderQueueDepth(db: Executor): Promise<Record<string, number>> {
  const rows = await db
    .select({ status: reminders.status, n: sql<number>`count(*)::int` })
    .from(reminders)
    .groupBy(reminders.status);
  const depth: Record<string, number> = {
    pending: 0,
    claimed: 0,
    sent: 0,
    failed: 0,
    cancelled: 0,
  };
  for (const r of rows) depth[r.status] = Number(r.n);
  return depth;
}
