import { and, asc, eq, gte, inArray, lt, lte } from "drizzle-orm";
import type { z } from "zod";
import type { Executor } from "../../db/client.ts";
import {
  appointments,
  availabilityExceptions,
  availabilityRules,
  organizations,
  practitioners,
} from "../../db/schema/index.ts";
import { uuidv7 } from "../../lib/uuid.ts";
import type { ServiceDeps } from "../deps.ts";
import { type AuditActor, auditDenial, recordAudit } from "../kernel/audit.ts";
import type { AuditAction } from "../kernel/audit-actions.ts";
import { ForbiddenError, NotFoundError } from "../kernel/errors.ts";
import type { Actor } from "../kernel/roles.ts";
import { canManageAvailability, canViewSchedule, type SchedulingDecision } from "./policy.ts";
import type {
  addExceptionInput,
  availabilityOutput,
  setWeeklyInput,
  slotsOutput,
} from "./schemas.ts";
import {
  computeSlots,
  type DayException,
  formatLocalTime,
  type Interval,
  localDateOf,
  parseLocalTime,
  type Slot,
  type WeeklyWindow,
} from "./slots.ts";

export type Availability = z.infer<typeof availabilityOutput>;
export type SlotsResult = z.infer<typeof slotsOutput>;

/** A practitioner with the time zone of its organization. */
export interface SchedulePractitioner {
  id: string;
  organizationId: string | null;
  timeZone: string;
}

/** Load a practitioner and its clinic's zone. @throws NotFoundError */
export async function loadPractitioner(
  db: Executor,
  practitionerId: string,
): Promise<SchedulePractitioner> {
  const [row] = await db
    .select({
      id: practitioners.id,
      organizationId: practitioners.organizationId,
      timeZone: organizations.timezone,
    })
    .from(practitioners)
    .leftJoin(organizations, eq(organizations.id, practitioners.organizationId))
    .where(eq(practitioners.id, practitionerId))
    .limit(1);
  if (!row) throw new NotFoundError("Practitioner not found");
  return { id: row.id, organizationId: row.organizationId, timeZone: row.timeZone ?? "UTC" };
}

async function enforce(
  deps: ServiceDeps,
  auditActor: AuditActor,
  decision: SchedulingDecision,
  action: AuditAction,
  practitionerId: string,
): Promise<void> {
  if (decision.allowed) return;
  throw await auditDenial(
    deps.db,
    auditActor,
    {
      action,
      resourceType: "Practitioner",
      resourceId: practitionerId,
      details: { rule: decision.rule },
    },
    new ForbiddenError(
      decision.rule === "not_own_calendar"
        ? "You may only manage your own calendar"
        : decision.rule === "role"
          ? "Your role may not do this"
          : "This practitioner belongs to another organization",
      decision.rule,
    ),
    deps.now(),
  );
}

/** Everything the slot engine needs for one practitioner over `[from, to)`. */
export async function loadSlotInputs(
  db: Executor,
  practitioner: SchedulePractitioner,
  from: Date,
  to: Date,
  options: { busy: boolean } = { busy: true },
): Promise<{ weekly: WeeklyWindow[]; exceptions: DayException[]; busy: Interval[] }> {
  const rules = await db
    .select()
    .from(availabilityRules)
    .where(eq(availabilityRules.practitionerId, practitioner.id));
  // Local dates can differ from UTC dates by up to a day either side.
  const fromDate = localDateOf(new Date(from.getTime() - 86_400_000), practitioner.timeZone);
  const toDate = localDateOf(new Date(to.getTime() + 86_400_000), practitioner.timeZone);
  const exceptionRows = await db
    .select()
    .from(availabilityExceptions)
    .where(
      and(
        eq(availabilityExceptions.practitionerId, practitioner.id),
        gte(availabilityExceptions.date, fromDate),
        lte(availabilityExceptions.date, toDate),
      ),
    );
  const busy = !options.busy
    ? []
    : await db
        .select({ startsAt: appointments.startsAt, endsAt: appointments.endsAt })
        .from(appointments)
        .where(
          and(
            eq(appointments.practitionerId, practitioner.id),
            inArray(appointments.status, ["booked", "checked_in"]),
            lt(appointments.startsAt, new Date(to.getTime() + 86_400_000)),
            gte(appointments.endsAt, new Date(from.getTime() - 86_400_000)),
          ),
        );
  return {
    weekly: rules.map((r) => ({
      weekday: r.weekday,
      start: parseLocalTime(r.startTime),
      end: parseLocalTime(r.endTime),
      slotMinutes: r.slotMinutes,
    })),
    exceptions: exceptionRows.map((e): DayException => {
      if (e.kind === "extra") {
        return {
          date: e.date,
          kind: "extra",
          start: parseLocalTime(e.startTime ?? ""),
          end: parseLocalTime(e.endTime ?? ""),
          slotMinutes: e.slotMinutes ?? 0,
        };
      }
      return {
        date: e.date,
        kind: "closed",
        start: e.startTime === null ? null : parseLocalTime(e.startTime),
        end: e.endTime === null ? null : parseLocalTime(e.endTime),
      };
    }),
    busy,
  };
}

/**
 * The slot of the practitioner's working hours that starts exactly at `startsAt`, whether free or
 * not (null when no working window has a slot there). Used by booking to check "within
 * availability"; overlap with other visits is the exclusion constraint's job.
 */
export async function slotStartingAt(
  db: Executor,
  practitioner: SchedulePractitioner,
  startsAt: Date,
): Promise<Slot | null> {
  const to = new Date(startsAt.getTime() + 1);
  const inputs = await loadSlotInputs(db, practitioner, startsAt, to, { busy: false });
  const [slot] = computeSlots({
    timeZone: practitioner.timeZone,
    weekly: inputs.weekly,
    exceptions: inputs.exceptions,
    busy: [],
    from: startsAt,
    to,
  });
  return slot && slot.startsAt.getTime() === startsAt.getTime() ? slot : null;
}

/**
 * `appointments.slots`: free slots of a practitioner whose start lies in `[from, to)` (UTC, at
 * most 31 days), computed in the clinic's zone and returned as UTC instants, excluding the past
 * and time taken by booked or checked-in visits.
 * @throws NotFoundError (practitioner), ForbiddenError (other organization; audited)
 */
export async function findSlots(
  deps: ServiceDeps,
  actor: Actor,
  auditActor: AuditActor,
  input: { practitionerId: string; from: Date; to: Date },
): Promise<SlotsResult> {
  const practitioner = await loadPractitioner(deps.db, input.practitionerId);
  await enforce(
    deps,
    auditActor,
    canViewSchedule(actor, practitioner),
    "availability.read",
    practitioner.id,
  );
  const inputs = await loadSlotInputs(deps.db, practitioner, input.from, input.to);
  const slots = computeSlots({
    timeZone: practitioner.timeZone,
    ...inputs,
    from: input.from,
    to: input.to,
    notBefore: deps.now(),
  });
  return { practitionerId: practitioner.id, timeZone: practitioner.timeZone, slots };
}

/**
 * `appointments.availability.get`: weekly hours and exceptions from `fromDate` (default today,
 * local) of a practitioner. Same visibility as slots.
 * @throws NotFoundError, ForbiddenError (audited)
 */
export async function getAvailability(
  deps: ServiceDeps,
  actor: Actor,
  auditActor: AuditActor,
  input: { practitionerId: string; fromDate?: string | undefined },
): Promise<Availability> {
  const practitioner = await loadPractitioner(deps.db, input.practitionerId);
  await enforce(
    deps,
    auditActor,
    canViewSchedule(actor, practitioner),
    "availability.read",
    practitioner.id,
  );
  return readAvailability(
    deps.db,
    practitioner,
    input.fromDate ?? localDateOf(deps.now(), practitioner.timeZone),
  );
}

async function readAvailability(
  db: Executor,
  practitioner: SchedulePractitioner,
  fromDate: string,
): Promise<Availability> {
  const rules = await db
    .select()
    .from(availabilityRules)
    .where(eq(availabilityRules.practitionerId, practitioner.id))
    .orderBy(asc(availabilityRules.weekday), asc(availabilityRules.startTime));
  const exceptions = await db
    .select()
    .from(availabilityExceptions)
    .where(
      and(
        eq(availabilityExceptions.practitionerId, practitioner.id),
        gte(availabilityExceptions.date, fromDate),
      ),
    )
    .orderBy(asc(availabilityExceptions.date), asc(availabilityExceptions.startTime))
    .limit(500);
  const hhmm = (t: string | null) => (t === null ? null : formatLocalTime(parseLocalTime(t)));
  return {
    practitionerId: practitioner.id,
    organizationId: practitioner.organizationId ?? "",
    timeZone: practitioner.timeZone,
    weekly: rules.map((r) => ({
      weekday: r.weekday,
      start: formatLocalTime(parseLocalTime(r.startTime)),
      end: formatLocalTime(parseLocalTime(r.endTime)),
      slotMinutes: r.slotMinutes,
    })),
    exceptions: exceptions.map((e) => ({
      id: e.id,
      date: e.date,
      kind: e.kind,
      start: hhmm(e.startTime),
      end: hhmm(e.endTime),
      slotMinutes: e.slotMinutes,
    })),
  };
}

/**
 * Lock one practitioner's calendar for the rest of the transaction (`SELECT … FOR NO KEY UPDATE`
 * on the practitioner row), so concurrent changes to one calendar (hours, bookings, reschedules)
 * run one after another. Without it, two inserts that both hit the `appointments_no_overlap`
 * exclusion constraint can wait on each other's index entry and deadlock (40P01). NO KEY UPDATE
 * does not block foreign-key checks from other tables. Every writer takes this lock before any
 * appointment row lock, so the lock order is always practitioner → appointment.
 */
export async function lockCalendar(tx: Executor, practitionerId: string): Promise<void> {
  await tx
    .select({ id: practitioners.id })
    .from(practitioners)
    .where(eq(practitioners.id, practitionerId))
    .for("no key update");
}

/**
 * `appointments.availability.setWeekly`: replace a practitioner's weekly hours (one transaction;
 * concurrent edits of one calendar serialize on the practitioner row). Existing appointments are
 * kept even if they now fall outside the hours. Audited as `availability.update`.
 * @throws NotFoundError, ForbiddenError (audited)
 */
export async function setWeeklyHours(
  deps: ServiceDeps,
  actor: Actor,
  auditActor: AuditActor,
  input: z.infer<typeof setWeeklyInput>,
): Promise<Availability> {
  const practitioner = await loadPractitioner(deps.db, input.practitionerId);
  await enforce(
    deps,
    auditActor,
    canManageAvailability(actor, practitioner),
    "availability.update",
    practitioner.id,
  );
  const organizationId = practitioner.organizationId as string; // checked by the policy
  const now = deps.now();
  await deps.db.transaction(async (tx) => {
    await lockCalendar(tx, practitioner.id);
    await tx.delete(availabilityRules).where(eq(availabilityRules.practitionerId, practitioner.id));
    if (input.hours.length > 0) {
      await tx.insert(availabilityRules).values(
        input.hours.map((h) => ({
          id: uuidv7(),
          organizationId,
          practitionerId: practitioner.id,
          weekday: h.weekday,
          startTime: `${h.start}:00`,
          endTime: `${h.end}:00`,
          slotMinutes: h.slotMinutes,
          createdAt: now,
          updatedAt: now,
        })),
      );
    }
    await recordAudit(
      tx,
      auditActor,
      {
        action: "availability.update",
        outcome: "allowed",
        resourceType: "Practitioner",
        resourceId: practitioner.id,
        details: { change: "weekly", windows: input.hours.length },
      },
      now,
    );
  });
  return readAvailability(deps.db, practitioner, localDateOf(now, practitioner.timeZone));
}

/**
 * `appointments.availability.addException`: a day off, a blocked part of a day, or extra hours on
 * a local date. Audited as `availability.update`.
 * @returns the new exception's id
 * @throws NotFoundError, ForbiddenError (audited)
 */
export async function addException(
  deps: ServiceDeps,
  actor: Actor,
  auditActor: AuditActor,
  input: z.infer<typeof addExceptionInput>,
): Promise<{ id: string }> {
  const practitioner = await loadPractitioner(deps.db, input.practitionerId);
  await enforce(
    deps,
    auditActor,
    canManageAvailability(actor, practitioner),
    "availability.update",
    practitioner.id,
  );
  const id = uuidv7();
  const now = deps.now();
  await deps.db.transaction(async (tx) => {
    await lockCalendar(tx, practitioner.id);
    await tx.insert(availabilityExceptions).values({
      id,
      organizationId: practitioner.organizationId as string,
      practitionerId: practitioner.id,
      date: input.date,
      kind: input.kind,
      startTime: input.start ? `${input.start}:00` : null,
      endTime: input.end ? `${input.end}:00` : null,
      slotMinutes: input.kind === "extra" ? input.slotMinutes : null,
      createdAt: now,
    });
    await recordAudit(
      tx,
      auditActor,
      {
        action: "availability.update",
        outcome: "allowed",
        resourceType: "Practitioner",
        resourceId: practitioner.id,
        details: { change: "exception_added", kind: input.kind, exceptionId: id },
      },
      now,
    );
  });
  return { id };
}

/**
 * `appointments.availability.removeException`. Audited as `availability.update`.
 * @throws NotFoundError (unknown id), ForbiddenError (audited)
 */
export async function removeException(
  deps: ServiceDeps,
  actor: Actor,
  auditActor: AuditActor,
  input: { exceptionId: string },
): Promise<{ ok: true }> {
  const [row] = await deps.db
    .select({ practitionerId: availabilityExceptions.practitionerId })
    .from(availabilityExceptions)
    .where(eq(availabilityExceptions.id, input.exceptionId))
    .limit(1);
  if (!row) throw new NotFoundError("Exception not found");
  const practitioner = await loadPractitioner(deps.db, row.practitionerId);
  await enforce(
    deps,
    auditActor,
    canManageAvailability(actor, practitioner),
    "availability.update",
    practitioner.id,
  );
  const now = deps.now();
  await deps.db.transaction(async (tx) => {
    await lockCalendar(tx, practitioner.id);
    await tx.delete(availabilityExceptions).where(eq(availabilityExceptions.id, input.exceptionId));
    await recordAudit(
      tx,
      auditActor,
      {
        action: "availability.update",
        outcome: "allowed",
        resourceType: "Practitioner",
        resourceId: practitioner.id,
        details: { change: "exception_removed", exceptionId: input.exceptionId },
      },
      now,
    );
  });
  return { ok: true };
}

/**
 * Demo data only: give a practitioner weekday hours (Monday–Friday 09:00–17:00 local, 30-minute
 * slots) unless it already has some, so the embedded demo has bookable slots. No-op for a
 * practitioner without an organization.
 */
export async function seedDemoHours(db: Executor, practitionerId: string): Promise<void> {
  const [p] = await db
    .select({ organizationId: practitioners.organizationId })
    .from(practitioners)
    .where(eq(practitioners.id, practitionerId))
    .limit(1);
  if (!p?.organizationId) return;
  const [existing] = await db
    .select({ id: availabilityRules.id })
    .from(availabilityRules)
    .where(eq(availabilityRules.practitionerId, practitionerId))
    .limit(1);
  if (existing) return;
  const organizationId = p.organizationId;
  await db.insert(availabilityRules).values(
    [1, 2, 3, 4, 5].map((weekday) => ({
      id: uuidv7(),
      organizationId,
      practitionerId,
      weekday,
      startTime: "09:00:00",
      endTime: "17:00:00",
      slotMinutes: 30,
    })),
  );
}

/**
 * `appointments.practitioners`: the practitioners of the caller's own organization, by name, with
 * the clinic's IANA time zone — what a front desk picks a calendar from. Workforce names are not
 * PHI; nothing is audited. Shape: `{ organizationId, timeZone, items: [{ id, name }] }`.
 * Errors: none beyond the router's role check (the organization comes from the session).
 */
export async function listPractitioners(
  deps: ServiceDeps,
  actor: Actor,
): Promise<{ organizationId: string; timeZone: string; items: { id: string; name: string }[] }> {
  const [org] = await deps.db
    .select({ timeZone: organizations.timezone })
    .from(organizations)
    .where(eq(organizations.id, actor.organizationId))
    .limit(1);
  const items = await deps.db
    .select({ id: practitioners.id, name: practitioners.name })
    .from(practitioners)
    .where(eq(practitioners.organizationId, actor.organizationId))
    .orderBy(asc(practitioners.name), asc(practitioners.id));
  return { organizationId: actor.organizationId, timeZone: org?.timeZone ?? "UTC", items };
}
