import { tracked } from "@trpc/server";
import {
  availabilityRouter,
  practitionersProcedure,
  slotsProcedure,
} from "../scheduling/router.ts";
import { protectedProcedure, router, toTRPCError } from "../trpc.ts";
import { zTrackedAsyncIterable } from "./async-iterable.ts";
import { book, changeStatus, reschedule } from "./booking.ts";
import { watchChanges } from "./feed.ts";
import { listDay, listForPractitioner } from "./lists.ts";
import {
  appointmentDetail,
  bookInput,
  cancelInput,
  changeEvent,
  dayInput,
  forPractitionerInput,
  listForPatientInput,
  listForPatientOutput,
  onChangeInput,
  rescheduleInput,
  scheduleOutput,
  transitionInput,
} from "./schemas.ts";
import { listForPatient } from "./service.ts";

const FRONT_DESK = ["staff", "admin"] as const;
const CALENDAR = ["clinician", "staff", "admin"] as const;

/** A lifecycle step (`cancel`, `checkIn`, `complete`, `markNoShow`) as a procedure. */
const step = (
  action: "checkIn" | "complete" | "markNoShow",
  roles: readonly ("patient" | "clinician" | "staff" | "admin")[],
) =>
  protectedProcedure
    .meta({ roles, phi: true })
    .input(transitionInput)
    .output(appointmentDetail)
    .mutation(({ ctx, input }) =>
      changeStatus(
        { ...ctx.deps, scheduling: ctx.scheduling },
        ctx.actor,
        ctx.auditActor,
        action,
        input,
      ),
    );

export const appointmentsRouter = router({
  /**
   * `appointments.listForPatient` — `{ patientId, limit?, cursor? }` → `{ items, nextCursor }`,
   * newest first; times are UTC. Same row rule as `patients.get`; audited.
   * Errors: NOT_FOUND, FORBIDDEN, BAD_REQUEST (input or cursor), UNAUTHORIZED.
   */
  listForPatient: protectedProcedure
    .meta({ roles: ["patient", "clinician", "staff", "admin"], phi: true })
    .input(listForPatientInput)
    .output(listForPatientOutput)
    .query(({ ctx, input }) => listForPatient(ctx.deps, ctx.actor, ctx.auditActor, input)),

  slots: slotsProcedure,
  practitioners: practitionersProcedure,
  availability: availabilityRouter,

  /**
   * `appointments.book` — `{ practitionerId, patientId?, startsAt, endsAt?, reason?, override? }` →
   * the appointment. Patients book a free slot for themselves; staff/admins for any patient of
   * their organization, outside the hours only with `override: { reason }`. Creates reminders.
   * Audited. Errors: CONFLICT (`slot_taken` — also for a concurrent booking —,
   * `patient_double_booked`), BAD_REQUEST (`outside_availability`, `in_the_past`, fields),
   * NOT_FOUND, FORBIDDEN, UNAUTHORIZED.
   */
  book: protectedProcedure
    .meta({ roles: ["patient", "staff", "admin"], phi: true })
    .input(bookInput)
    .output(appointmentDetail)
    .mutation(({ ctx, input }) =>
      book({ ...ctx.deps, scheduling: ctx.scheduling }, ctx.actor, ctx.auditActor, input),
    ),

  /**
   * `appointments.reschedule` — `{ appointmentId, version, startsAt, endsAt?, override? }` → the
   * appointment at `version + 1`. Same practitioner; replaces reminders. Patients only before the
   * cutoff (`HAVEN_PATIENT_CANCEL_CUTOFF_HOURS`). Errors: CONFLICT (`stale_version`,
   * `illegal_transition`, `slot_taken`), FORBIDDEN (`cutoff_passed`, row rule), BAD_REQUEST,
   * NOT_FOUND, UNAUTHORIZED.
   */
  reschedule: protectedProcedure
    .meta({ roles: ["patient", "staff", "admin"], phi: true })
    .input(rescheduleInput)
    .output(appointmentDetail)
    .mutation(({ ctx, input }) =>
      reschedule({ ...ctx.deps, scheduling: ctx.scheduling }, ctx.actor, ctx.auditActor, input),
    ),

  /**
   * `appointments.cancel` — `{ appointmentId, version, reason }` → the cancelled appointment;
   * cancels its open reminders. Patients: own booked visits before the cutoff; clinicians: own
   * calendar; staff/admins: their organization. Errors: CONFLICT (`stale_version`,
   * `illegal_transition`), FORBIDDEN (`cutoff_passed`, row rule), NOT_FOUND, BAD_REQUEST.
   */
  cancel: protectedProcedure
    .meta({ roles: ["patient", "clinician", "staff", "admin"], phi: true })
    .input(cancelInput)
    .output(appointmentDetail)
    .mutation(({ ctx, input }) =>
      changeStatus(
        { ...ctx.deps, scheduling: ctx.scheduling },
        ctx.actor,
        ctx.auditActor,
        "cancel",
        input,
      ),
    ),

  /** `appointments.checkIn` — `{ appointmentId, version }`: booked → checked_in (front desk). */
  checkIn: step("checkIn", FRONT_DESK),
  /** `appointments.complete` — `{ appointmentId, version }`: checked_in → completed. */
  complete: step("complete", CALENDAR),
  /** `appointments.markNoShow` — `{ appointmentId, version }`: booked → no_show, once started. */
  markNoShow: step("markNoShow", CALENDAR),

  /**
   * `appointments.day` — `{ organizationId, date: "YYYY-MM-DD", practitionerId?, limit?, cursor? }`
   * → `{ timeZone, items, nextCursor }`: the clinic's local day, ascending, every status, with
   * patient names and reasons for the front desk. Audited per patient. Errors: FORBIDDEN (other
   * organization), NOT_FOUND, BAD_REQUEST, UNAUTHORIZED.
   */
  day: protectedProcedure
    .meta({ roles: FRONT_DESK, phi: true })
    .input(dayInput)
    .output(scheduleOutput)
    .query(({ ctx, input }) => listDay(ctx.deps, ctx.actor, ctx.auditActor, input)),

  /**
   * `appointments.forPractitioner` — `{ practitionerId?, from, to, limit?, cursor? }` →
   * `{ timeZone, items, nextCursor }`: a calendar (clinicians: their own). Audited per patient.
   * Errors: FORBIDDEN, NOT_FOUND, BAD_REQUEST (range ≤ 31 days, cursor), UNAUTHORIZED.
   */
  forPractitioner: protectedProcedure
    .meta({ roles: CALENDAR, phi: true })
    .input(forPractitionerInput)
    .output(scheduleOutput)
    .query(({ ctx, input }) => listForPractitioner(ctx.deps, ctx.actor, ctx.auditActor, input)),

  /**
   * `appointments.onChange` — SSE subscription (`httpSubscriptionLink`), input
   * `{ organizationId?, practitionerId?, lastEventId? }`: every change in scope as
   * `tracked(seq, { kind, occurredAt, appointment })`, resumable after `lastEventId`. Staff/admin
   * watch their organization (optionally one practitioner), clinicians their own calendar. Fan-out
   * across instances through Postgres LISTEN/NOTIFY (ids only); each event is re-read through the
   * subscriber's policy and audited. Authenticate by cookie or `Authorization` header, never URL.
   * Errors (as SSE error events): UNAUTHORIZED (no or ended session), FORBIDDEN, NOT_FOUND.
   */
  onChange: protectedProcedure
    .meta({ roles: CALENDAR, phi: true })
    .input(onChangeInput)
    .output(zTrackedAsyncIterable(changeEvent))
    .subscription(async function* ({ ctx, input, signal }) {
      const feed = watchChanges(
        {
          deps: ctx.deps,
          pubsub: ctx.pubsub,
          idleTimeoutMinutes: ctx.sessions.idleTimeoutMinutes,
          pollMs: ctx.scheduling.feedPollMs,
        },
        ctx.actor,
        ctx.auditActor,
        input,
        signal ?? new AbortController().signal,
      );
      try {
        for await (const event of feed) yield tracked(event.id, event.data);
      } catch (err) {
        throw toTRPCError(err);
      }
    }),
});
