import { z } from "zod";
import { protectedProcedure, router } from "../trpc.ts";
import {
  addExceptionInput,
  availabilityOutput,
  getAvailabilityInput,
  practitionersOutput,
  removeExceptionInput,
  setWeeklyInput,
  slotsInput,
  slotsOutput,
} from "./schemas.ts";
import {
  addException,
  findSlots,
  getAvailability,
  listPractitioners,
  removeException,
  setWeeklyHours,
} from "./service.ts";

const VIEWERS = ["patient", "clinician", "staff", "admin"] as const;
const MANAGERS = ["clinician", "staff", "admin"] as const;

/**
 * `appointments.slots` — `{ practitionerId, from, to }` (UTC, ≤ 31 days) →
 * `{ practitionerId, timeZone, slots: [{ startsAt, endsAt, local }] }`: free slots cut from the
 * practitioner's hours in the clinic's IANA zone, returned as UTC instants, DST-correct
 * (`server/scheduling/slots.ts`). Caller's organization only. Not PHI.
 * Errors: BAD_REQUEST (range), NOT_FOUND, FORBIDDEN (other organization), UNAUTHORIZED.
 */
export const slotsProcedure = protectedProcedure
  .meta({ roles: VIEWERS, phi: false })
  .input(slotsInput)
  .output(slotsOutput)
  .query(({ ctx, input }) => findSlots(ctx.deps, ctx.actor, ctx.auditActor, input));

/** `appointments.availability.*`: a practitioner's weekly hours and one-off exceptions. */
export const availabilityRouter = router({
  /**
   * `appointments.availability.get` — `{ practitionerId, fromDate? }` → weekly windows (local
   * `HH:MM`, ISO weekday) and exceptions from `fromDate` (default today, local). Same visibility as
   * slots. Errors: NOT_FOUND, FORBIDDEN, BAD_REQUEST, UNAUTHORIZED.
   */
  get: protectedProcedure
    .meta({ roles: VIEWERS, phi: false })
    .input(getAvailabilityInput)
    .output(availabilityOutput)
    .query(({ ctx, input }) => getAvailability(ctx.deps, ctx.actor, ctx.auditActor, input)),

  /**
   * `appointments.availability.setWeekly` — `{ practitionerId, hours: [{ weekday, start, end,
   * slotMinutes }] }` replaces the weekly hours (local times, clinic zone; windows of one weekday
   * may not overlap). Staff/admin of the organization, or the clinician for their own calendar.
   * Audited. Errors: BAD_REQUEST (field paths), NOT_FOUND, FORBIDDEN, UNAUTHORIZED.
   */
  setWeekly: protectedProcedure
    .meta({ roles: MANAGERS, phi: false, mfa: true })
    .input(setWeeklyInput)
    .output(availabilityOutput)
    .mutation(({ ctx, input }) => setWeeklyHours(ctx.deps, ctx.actor, ctx.auditActor, input)),

  /**
   * `appointments.availability.addException` — `{ practitionerId, date, kind: "closed", start?,
   * end? }` (whole day when no times) or `{ …, kind: "extra", start, end, slotMinutes }` → `{ id }`.
   * Same rule as setWeekly. Errors: BAD_REQUEST, NOT_FOUND, FORBIDDEN, UNAUTHORIZED.
   */
  addException: protectedProcedure
    .meta({ roles: MANAGERS, phi: false, mfa: true })
    .input(addExceptionInput)
    .output(z.object({ id: z.uuid() }))
    .mutation(({ ctx, input }) => addException(ctx.deps, ctx.actor, ctx.auditActor, input)),

  /**
   * `appointments.availability.removeException` — `{ exceptionId }` → `{ ok: true }`.
   * Errors: NOT_FOUND, FORBIDDEN, UNAUTHORIZED.
   */
  removeException: protectedProcedure
    .meta({ roles: MANAGERS, phi: false, mfa: true })
    .input(removeExceptionInput)
    .output(z.object({ ok: z.literal(true) }))
    .mutation(({ ctx, input }) => removeException(ctx.deps, ctx.actor, ctx.auditActor, input)),
});

/**
 * `appointments.practitioners` — `{}` → `{ organizationId, timeZone, items: [{ id, name }] }`: the
 * practitioners of the caller's organization, sorted by name, and the clinic's IANA zone (the admin
 * panel's calendar picker). Workforce data, not PHI. Errors: UNAUTHORIZED, FORBIDDEN (role).
 */
export const practitionersProcedure = protectedProcedure
  .meta({ roles: MANAGERS, phi: false })
  .input(z.strictObject({}))
  .output(practitionersOutput)
  .query(({ ctx }) => listPractitioners(ctx.deps, ctx.actor));
