import { z } from "zod";
import { isDateInRange } from "../kernel/input-guard.ts";

export const appointmentStatus = z.enum([
  "booked",
  "checked_in",
  "completed",
  "cancelled",
  "no_show",
]);

export const listForPatientInput = z.strictObject({
  patientId: z.uuid(),
  /** Page size, 1–100 (default 50). */
  limit: z.number().int().min(1).max(100).default(50),
  /** Opaque cursor from a previous page's `nextCursor`. */
  cursor: z.string().max(200).optional(),
});

export const appointmentOutput = z.object({
  id: z.uuid(),
  organizationId: z.uuid(),
  patientId: z.uuid(),
  practitioner: z.object({ id: z.uuid(), name: z.string() }),
  /** UTC instants. */
  startsAt: z.date(),
  endsAt: z.date(),
  status: appointmentStatus,
  /** Decrypted visit reason; null when none or when the caller's role may not see it. */
  reason: z.string().nullable(),
  version: z.number().int(),
});

export const listForPatientOutput = z.object({
  items: z.array(appointmentOutput),
  nextCursor: z.string().nullable(),
});

const visitText = (what: string) =>
  z
    .string()
    .trim()
    .min(3, `${what} must be at least 3 characters`)
    .max(500, `${what} must be at most 500 characters`);

/** Longest bookable visit, minutes. */
export const MAX_VISIT_MINUTES = 8 * 60;

/** Staff booking outside the practitioner's hours must say why (stored encrypted, audited). */
const override = z.strictObject({ reason: visitText("override reason") });

const withEnd = <T extends z.ZodType<{ startsAt: Date; endsAt?: Date | undefined }>>(schema: T) =>
  schema.refine(
    (v) =>
      v.endsAt === undefined ||
      (v.endsAt.getTime() > v.startsAt.getTime() &&
        v.endsAt.getTime() - v.startsAt.getTime() <= MAX_VISIT_MINUTES * 60_000),
    {
      message: `must be after startsAt and at most ${MAX_VISIT_MINUTES} minutes later`,
      path: ["endsAt"],
    },
  );

export const bookInput = withEnd(
  z.strictObject({
    practitionerId: z.uuid(),
    /** Required for staff/admin; a patient books for self (omit, or pass their own id). */
    patientId: z.uuid().optional(),
    /** UTC instant; must be the start of one of the practitioner's slots unless `override`. */
    startsAt: z.date(),
    /** Defaults to the slot's end; required with `override`. */
    endsAt: z.date().optional(),
    /** Visit reason (PHI: stored encrypted). */
    reason: z.string().trim().min(1).max(500).optional(),
    override: override.optional(),
  }),
);

const appointmentRef = {
  appointmentId: z.uuid(),
  /** The `version` the caller last saw (optimistic concurrency): a stale one gets CONFLICT. */
  version: z.number().int().min(1),
};

export const rescheduleInput = withEnd(
  z.strictObject({
    ...appointmentRef,
    startsAt: z.date(),
    endsAt: z.date().optional(),
    override: override.optional(),
  }),
);

export const cancelInput = z.strictObject({
  ...appointmentRef,
  /** Why (PHI: stored encrypted). */
  reason: visitText("cancellation reason"),
});

export const transitionInput = z.strictObject(appointmentRef);

/** One appointment as a caller may see it (reasons only for roles whose view includes them). */
export const appointmentDetail = appointmentOutput.extend({
  /** Decrypted cancellation reason; null when none or not visible to the caller's role. */
  cancellationReason: z.string().nullable(),
  /** True when staff booked it outside the practitioner's hours. */
  outsideAvailability: z.boolean(),
});

const pageOpts = {
  /** Page size, 1–200 (default 100). */
  limit: z.number().int().min(1).max(200).default(100),
  /** Opaque cursor from a previous page's `nextCursor`. */
  cursor: z.string().max(200).optional(),
};

export const dayInput = z.strictObject({
  organizationId: z.uuid(),
  /** Local calendar date in the clinic's time zone. */
  date: z
    .string()
    .regex(/^\d{4}-\d{2}-\d{2}$/, "expected YYYY-MM-DD")
    .refine((s) => {
      const d = new Date(`${s}T00:00:00Z`);
      return !Number.isNaN(d.getTime()) && d.toISOString().startsWith(s);
    }, "not a calendar date")
    .refine(isDateInRange, "year out of range (1800–2999)"),
  practitionerId: z.uuid().optional(),
  ...pageOpts,
});

export const forPractitionerInput = z
  .strictObject({
    /** Default: the calling clinician's own Practitioner. */
    practitionerId: z.uuid().optional(),
    /** Appointments starting in `[from, to)` (UTC), at most 31 days. */
    from: z.date(),
    to: z.date(),
    ...pageOpts,
  })
  .refine((r) => r.to.getTime() > r.from.getTime(), { message: "must be after from", path: ["to"] })
  .refine((r) => r.to.getTime() - r.from.getTime() <= 31 * 86_400_000, {
    message: "at most 31 days after from",
    path: ["to"],
  });

export const scheduleItem = appointmentDetail.extend({
  /** Patient's name for roles that see demographics; null otherwise. */
  patientName: z.object({ family: z.string(), given: z.array(z.string()) }).nullable(),
});

export const scheduleOutput = z.object({
  /** IANA zone of the organization (for displaying local times). */
  timeZone: z.string(),
  items: z.array(scheduleItem),
  nextCursor: z.string().nullable(),
});

export const onChangeInput = z.strictObject({
  /** Staff/admin: their organization (default). */
  organizationId: z.uuid().optional(),
  /** Clinicians: their own Practitioner (default); staff/admin: narrow to one practitioner. */
  practitionerId: z.uuid().optional(),
  /** Resume after this event id (set by the SSE client on reconnect). */
  lastEventId: z
    .string()
    .regex(/^\d{1,18}$/, "expected an event id")
    .nullish(),
});

export const changeKind = z.enum([
  "booked",
  "rescheduled",
  "cancelled",
  "checked_in",
  "completed",
  "no_show",
]);

/** One live change, re-read through the subscriber's own policy. */
export const changeEvent = z.object({
  kind: changeKind,
  occurredAt: z.date(),
  appointment: scheduleItem,
});
