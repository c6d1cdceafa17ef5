import { and, eq, gt, inArray, lt, ne } from "drizzle-orm";
import type { Executor } from "../../db/client.ts";
import { appointments, patients } from "../../db/schema/index.ts";
import { uuidv7 } from "../../lib/uuid.ts";
import type { ServiceDeps } from "../deps.ts";
import { type AuditActor, recordAudit } from "../kernel/audit.ts";
import type { AuditAction } from "../kernel/audit-actions.ts";
import {
  ConflictError,
  constraintName,
  type DomainError,
  ForbiddenError,
  NotFoundError,
  sqlState,
  ValidationError,
} from "../kernel/errors.ts";
import { isTransientFailure, retryTransient } from "../kernel/retry.ts";
import type { Actor } from "../kernel/roles.ts";
import {
  loadPractitioner,
  lockCalendar,
  type SchedulePractitioner,
  slotStartingAt,
} from "../scheduling/service.ts";
import { type ChangeKind, recordChange } from "./changes.ts";
import {
  type AppointmentRule,
  type ChangeAction,
  canChangeAppointment,
  type Decision,
  patientCutoffAllows,
} from "./policy.ts";
import { cancelReminders, scheduleReminders } from "./reminders.ts";
import type { SchedulingSettings } from "./settings.ts";
import { type AppointmentState, transition } from "./state.ts";
import { type AppointmentDetail, selectAppointmentRows, toDetail } from "./view.ts";

/**
 * Booking and the appointment lifecycle. Every change runs in ONE transaction that
 * writes the appointment, its reminder rows, its audit record and its change-log entry (+ NOTIFY),
 * so nothing is ever half-written. The exclusion constraint `appointments_no_overlap` is the final
 * guard against double booking: a concurrent conflicting write fails with SQLSTATE 23P01 and is
 * answered with a CONFLICT naming the problem, never a 500 and never a second row.
 */

/** Services' view of the deps plus the configured scheduling rules. */
export type BookingDeps = ServiceDeps & { scheduling: SchedulingSettings };

const AUDIT_ACTION: Record<ChangeAction, AuditAction> = {
  book: "appointment.book",
  reschedule: "appointment.reschedule",
  cancel: "appointment.cancel",
  checkIn: "appointment.check_in",
  complete: "appointment.complete",
  markNoShow: "appointment.no_show",
};

const CHANGE_KIND: Record<ChangeAction, ChangeKind> = {
  book: "booked",
  reschedule: "rescheduled",
  cancel: "cancelled",
  checkIn: "checked_in",
  complete: "completed",
  markNoShow: "no_show",
};

const DENIAL_MESSAGE: Record<AppointmentRule, string> = {
  not_self: "Patients may only manage their own appointments",
  not_own_calendar: "Clinicians may only change appointments in their own calendar",
  no_care_relationship: "You may not access this appointment",
  other_organization: "This appointment belongs to another organization",
  role: "Your role may not do this to an appointment",
  cutoff_passed: "It is too close to the appointment to change it online; please call the clinic",
};

/** A slot conflict, with the message every caller sees. */
function slotTaken(): ConflictError {
  return new ConflictError(
    "That time is no longer available: the practitioner already has an appointment that overlaps it. Pick another slot.",
    "slot_taken",
  );
}

/** The patient already has an overlapping active appointment (with any practitioner). */
function patientDoubleBooked(): ConflictError {
  return new ConflictError(
    "The patient already has an appointment at that time",
    "patient_double_booked",
  );
}

/** Thrown inside a transaction to roll it back; audited as denied once the rollback is done. */
class Denied extends ForbiddenError {
  constructor(readonly rule: AppointmentRule) {
    super(DENIAL_MESSAGE[rule], rule);
  }
}

function assertAllowed(decision: Decision): void {
  if (!decision.allowed) throw new Denied(decision.rule);
}

/**
 * Run `work` in a transaction and translate failures. A deadlock or serialization failure (two
 * writers racing on the exclusion constraint) reruns the whole transaction with jittered backoff
 * (`retryTransient`), so the loser sees the winner's row and gets `slot_taken`; if the retries are
 * spent it is answered as CONFLICT `concurrent_change`, never a 500. The exclusion violation
 * becomes `slot_taken` (practitioner) or `patient_double_booked` (patient). Denials and conflicts are audited (outside the rolled-back transaction) as
 * `denied` / `error` with the rule, ids only.
 */
async function runChange<T>(
  deps: ServiceDeps,
  auditActor: AuditActor,
  action: ChangeAction,
  target: { appointmentId: string | null; patientId: string | null },
  work: (tx: Executor) => Promise<T>,
): Promise<T> {
  try {
    return await retryTransient(() => deps.db.transaction(work));
  } catch (err) {
    // Two exclusion constraints: the practitioner's (slot_taken) and the patient's (0008).
    const mapped =
      sqlState(err) === "23P01"
        ? constraintName(err) === "appointments_patient_no_overlap"
          ? patientDoubleBooked()
          : slotTaken()
        : isTransientFailure(err)
          ? new ConflictError(
              "The calendar changed while this was being saved. Reload and try again.",
              "concurrent_change",
            )
          : err;
    if (mapped instanceof ForbiddenError || mapped instanceof ConflictError) {
      await recordAudit(
        deps.db,
        auditActor,
        {
          action: AUDIT_ACTION[action],
          outcome: mapped instanceof ForbiddenError ? "denied" : "error",
          resourceType: "Appointment",
          ...(target.appointmentId ? { resourceId: target.appointmentId } : {}),
          patientId: target.patientId,
          details: { rule: (mapped as DomainError).reason ?? null },
        },
        deps.now(),
      );
    }
    throw mapped;
  }
}

/** Is `slot` a real slot of the practitioner's hours for this exact interval? */
async function assertWithinAvailability(
  db: Executor,
  practitioner: SchedulePractitioner,
  startsAt: Date,
  endsAt: Date | undefined,
): Promise<Date> {
  const slot = await slotStartingAt(db, practitioner, startsAt);
  if (!slot) {
    throw new ValidationError(
      "That time is not one of the practitioner's slots (outside working hours, a day off, or not on the slot grid)",
      "outside_availability",
    );
  }
  if (endsAt && endsAt.getTime() !== slot.endsAt.getTime()) {
    throw new ValidationError(
      "endsAt must be the end of the slot (or book with an override)",
      "outside_availability",
    );
  }
  return slot.endsAt;
}

/** Time rules shared by book and reschedule; returns the visit's end. */
async function resolveInterval(
  deps: ServiceDeps,
  tx: Executor,
  actor: Actor,
  practitioner: SchedulePractitioner,
  input: { startsAt: Date; endsAt?: Date | undefined; override?: { reason: string } | undefined },
): Promise<Date> {
  if (input.override) {
    if (actor.role !== "staff" && actor.role !== "admin") throw new Denied("role");
    if (!input.endsAt) {
      throw new ValidationError(
        "endsAt is required when booking with an override",
        "ends_at_required",
      );
    }
    return input.endsAt;
  }
  if (input.startsAt.getTime() < deps.now().getTime()) {
    throw new ValidationError("That time is in the past", "in_the_past");
  }
  return assertWithinAvailability(tx, practitioner, input.startsAt, input.endsAt);
}

/** The patient may not be in two places at once (a soft rule; staff may override it). */
async function assertPatientFree(
  tx: Executor,
  patientId: string,
  startsAt: Date,
  endsAt: Date,
  exceptId: string | null,
): Promise<void> {
  const [clash] = await tx
    .select({ id: appointments.id })
    .from(appointments)
    .where(
      and(
        eq(appointments.patientId, patientId),
        inArray(appointments.status, ["booked", "checked_in"]),
        lt(appointments.startsAt, endsAt),
        gt(appointments.endsAt, startsAt),
        exceptId ? ne(appointments.id, exceptId) : undefined,
      ),
    )
    .limit(1);
  if (clash) {
    throw patientDoubleBooked();
  }
}

async function readDetail(
  deps: ServiceDeps,
  actor: Actor,
  db: Executor,
  appointmentId: string,
): Promise<AppointmentDetail> {
  const [row] = await selectAppointmentRows(db, eq(appointments.id, appointmentId)).limit(1);
  if (!row) throw new NotFoundError("Appointment not found");
  return toDetail(deps, actor, row);
}

export interface BookInput {
  practitionerId: string;
  patientId?: string | undefined;
  startsAt: Date;
  endsAt?: Date | undefined;
  reason?: string | undefined;
  override?: { reason: string } | undefined;
}

/**
 * `appointments.book`: a patient books one of a practitioner's free slots for themself; staff and
 * admins book for any patient of their organization, within the practitioner's hours or, with
 * `override.reason`, at any time, including one already begun (recording a walk-in); the override
 * reason is stored encrypted and audited as a flag. The soft "patient already booked then" check is
 * skipped with an override; the practitioner overlap rule never is.
 * Creates the reminder rows and a change-log entry in the same transaction.
 * Standards: 45 CFR 164.312(b) (audit), 164.312(a)(2)(iv) (reason encrypted at rest).
 * @returns the new appointment as the caller may see it (`version` 1)
 * @throws ValidationError (patientId missing for staff, not a slot, in the past, practitioner
 *   of another clinic), NotFoundError (patient/practitioner), ForbiddenError (row rule; audited),
 *   ConflictError `slot_taken` (overlap, including a concurrent booking) or
 *   `patient_double_booked`
 */
export async function book(
  deps: BookingDeps,
  actor: Actor,
  auditActor: AuditActor,
  input: BookInput,
): Promise<AppointmentDetail> {
  const patientId = input.patientId ?? (actor.role === "patient" ? actor.patientId : null);
  if (!patientId) {
    throw new ValidationError("patientId: required when booking for a patient", "patient_required");
  }
  const [patient] = await deps.db
    .select({ id: patients.id, organizationId: patients.organizationId })
    .from(patients)
    .where(eq(patients.id, patientId))
    .limit(1);
  if (!patient) throw new NotFoundError("Patient not found");
  const practitioner = await loadPractitioner(deps.db, input.practitionerId);
  const id = uuidv7();
  const now = deps.now();
  await runChange(deps, auditActor, "book", { appointmentId: null, patientId }, async (tx) => {
    assertAllowed(
      canChangeAppointment(actor, "book", {
        organizationId: patient.organizationId,
        patientId,
        practitionerId: practitioner.id,
      }),
    );
    await lockCalendar(tx, practitioner.id);
    if (practitioner.organizationId !== patient.organizationId) {
      throw new ValidationError(
        "practitionerId: the practitioner does not work at the patient's clinic",
        "other_clinic",
      );
    }
    const endsAt = await resolveInterval(deps, tx, actor, practitioner, input);
    if (!input.override) await assertPatientFree(tx, patientId, input.startsAt, endsAt, null);
    await tx.insert(appointments).values({
      id,
      organizationId: patient.organizationId,
      patientId,
      practitionerId: practitioner.id,
      startsAt: input.startsAt,
      endsAt,
      status: "booked",
      reason: input.reason ? deps.crypto.seal("appointments", "reason", id, input.reason) : null,
      overrideReason: input.override
        ? deps.crypto.seal("appointments", "override_reason", id, input.override.reason)
        : null,
      bookedByUserId: actor.userId,
      version: 1,
      createdAt: now,
      updatedAt: now,
    });
    const reminders = await scheduleReminders(
      tx,
      { id, organizationId: patient.organizationId, startsAt: input.startsAt },
      deps.scheduling,
      now,
    );
    await recordAudit(
      tx,
      auditActor,
      {
        action: "appointment.book",
        outcome: "allowed",
        resourceType: "Appointment",
        resourceId: id,
        patientId,
        details: { practitionerId: practitioner.id, override: Boolean(input.override), reminders },
      },
      now,
    );
    await recordChange(tx, {
      organizationId: patient.organizationId,
      appointmentId: id,
      practitionerId: practitioner.id,
      patientId,
      kind: "booked",
      occurredAt: now,
    });
  });
  return readDetail(deps, actor, deps.db, id);
}

/** Lock and check the appointment a lifecycle action applies to. */
async function lockForChange(
  tx: Executor,
  appointmentId: string,
  version: number,
): Promise<typeof appointments.$inferSelect> {
  const [row] = await tx
    .select()
    .from(appointments)
    .where(eq(appointments.id, appointmentId))
    .for("update");
  if (!row) throw new NotFoundError("Appointment not found");
  if (row.version !== version) {
    throw new ConflictError(
      `This appointment was changed by someone else (it is at version ${row.version}, you sent ${version}); reload it and try again`,
      "stale_version",
    );
  }
  return row;
}

function assertTransition(from: AppointmentState, action: Exclude<ChangeAction, "book">) {
  const t = transition(from, action);
  if (!t.ok) throw new ConflictError(t.message, "illegal_transition");
  return t.to;
}

/** Facts for the change rule, read before the transaction (unknown id → NOT_FOUND). */
async function loadTarget(deps: ServiceDeps, appointmentId: string) {
  const [row] = await deps.db
    .select({
      organizationId: appointments.organizationId,
      patientId: appointments.patientId,
      practitionerId: appointments.practitionerId,
    })
    .from(appointments)
    .where(eq(appointments.id, appointmentId))
    .limit(1);
  if (!row) throw new NotFoundError("Appointment not found");
  return row;
}

/**
 * `appointments.reschedule`: move a booked appointment to another time with the same practitioner
 * (moving to another practitioner is cancel + book). Optimistic concurrency: `version` must be the
 * current one. Patients: own visits, before the cutoff, into a free slot. Staff/admins: any visit
 * of their organization, with `override` outside the hours. Reminder rows are replaced.
 * @throws NotFoundError, ForbiddenError (audited), ConflictError `stale_version` |
 *   `illegal_transition` | `slot_taken` | `patient_double_booked`, ValidationError
 */
export async function reschedule(
  deps: BookingDeps,
  actor: Actor,
  auditActor: AuditActor,
  input: {
    appointmentId: string;
    version: number;
    startsAt: Date;
    endsAt?: Date | undefined;
    override?: { reason: string } | undefined;
  },
): Promise<AppointmentDetail> {
  const target = await loadTarget(deps, input.appointmentId);
  const practitioner = await loadPractitioner(deps.db, target.practitionerId);
  const now = deps.now();
  await runChange(
    deps,
    auditActor,
    "reschedule",
    { appointmentId: input.appointmentId, patientId: target.patientId },
    async (tx) => {
      assertAllowed(canChangeAppointment(actor, "reschedule", target));
      await lockCalendar(tx, practitioner.id);
      const row = await lockForChange(tx, input.appointmentId, input.version);
      assertTransition(row.status, "reschedule");
      if (actor.role === "patient") {
        assertAllowed(
          patientCutoffAllows(
            row.status,
            row.startsAt,
            now,
            deps.scheduling.patientCancelCutoffMinutes,
          ),
        );
      }
      const endsAt = await resolveInterval(deps, tx, actor, practitioner, input);
      if (!input.override)
        await assertPatientFree(tx, row.patientId, input.startsAt, endsAt, row.id);
      await tx
        .update(appointments)
        .set({
          startsAt: input.startsAt,
          endsAt,
          overrideReason: input.override
            ? deps.crypto.seal("appointments", "override_reason", row.id, input.override.reason)
            : null,
          version: row.version + 1,
          updatedAt: now,
        })
        .where(eq(appointments.id, row.id));
      const reminders = await scheduleReminders(
        tx,
        { id: row.id, organizationId: row.organizationId, startsAt: input.startsAt },
        deps.scheduling,
        now,
      );
      await recordAudit(
        tx,
        auditActor,
        {
          action: "appointment.reschedule",
          outcome: "allowed",
          resourceType: "Appointment",
          resourceId: row.id,
          patientId: row.patientId,
          details: { fromVersion: row.version, override: Boolean(input.override), reminders },
        },
        now,
      );
      await recordChange(tx, {
        organizationId: row.organizationId,
        appointmentId: row.id,
        practitionerId: row.practitionerId,
        patientId: row.patientId,
        kind: "rescheduled",
        occurredAt: now,
      });
    },
  );
  return readDetail(deps, actor, deps.db, input.appointmentId);
}

/**
 * `appointments.cancel | checkIn | complete | markNoShow`: one step of the state machine
 * (`state.ts`), with optimistic concurrency on `version`. `cancel` needs a reason (stored
 * encrypted); patients cancel only their own booked visits and only until the configured cutoff;
 * `markNoShow` only once the visit has started. Open reminders are cancelled in the same
 * transaction. Audited as `appointment.cancel | check_in | complete | no_show`.
 * @throws NotFoundError, ForbiddenError (row rule or cutoff; audited), ConflictError
 *   `stale_version` | `illegal_transition` | `not_started`
 */
export async function changeStatus(
  deps: BookingDeps,
  actor: Actor,
  auditActor: AuditActor,
  action: "cancel" | "checkIn" | "complete" | "markNoShow",
  input: { appointmentId: string; version: number; reason?: string | undefined },
): Promise<AppointmentDetail> {
  const target = await loadTarget(deps, input.appointmentId);
  const now = deps.now();
  await runChange(
    deps,
    auditActor,
    action,
    { appointmentId: input.appointmentId, patientId: target.patientId },
    async (tx) => {
      assertAllowed(canChangeAppointment(actor, action, target));
      const row = await lockForChange(tx, input.appointmentId, input.version);
      const to = assertTransition(row.status, action);
      if (action === "cancel" && actor.role === "patient") {
        assertAllowed(
          patientCutoffAllows(
            row.status,
            row.startsAt,
            now,
            deps.scheduling.patientCancelCutoffMinutes,
          ),
        );
      }
      if (action === "markNoShow" && now.getTime() < row.startsAt.getTime()) {
        throw new ConflictError(
          "Cannot mark as no-show before the appointment has started",
          "not_started",
        );
      }
      await tx
        .update(appointments)
        .set({
          status: to,
          ...(action === "cancel" && input.reason
            ? {
                cancellationReason: deps.crypto.seal(
                  "appointments",
                  "cancellation_reason",
                  row.id,
                  input.reason,
                ),
              }
            : {}),
          version: row.version + 1,
          updatedAt: now,
        })
        .where(eq(appointments.id, row.id));
      const cancelled = await cancelReminders(
        tx,
        row.id,
        now,
        action === "cancel"
          ? "appointment_cancelled"
          : action === "checkIn"
            ? "visit_under_way"
            : "visit_over",
      );
      await recordAudit(
        tx,
        auditActor,
        {
          action: AUDIT_ACTION[action],
          outcome: "allowed",
          resourceType: "Appointment",
          resourceId: row.id,
          patientId: row.patientId,
          details: { from: row.status, to, remindersCancelled: cancelled },
        },
        now,
      );
      await recordChange(tx, {
        organizationId: row.organizationId,
        appointmentId: row.id,
        practitionerId: row.practitionerId,
        patientId: row.patientId,
        kind: CHANGE_KIND[action],
        occurredAt: now,
      });
    },
  );
  return readDetail(deps, actor, deps.db, input.appointmentId);
}
