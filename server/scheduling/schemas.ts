import { z } from "zod";
import { parseLocalTime } from "./slots.ts";

/** Local wall-clock time `HH:MM` (24 h; `24:00` allowed as an end = end of day). */
export const localTime = z
  .string()
  .regex(/^([01]\d|2[0-3]):[0-5]\d$|^24:00$/, "expected HH:MM (00:00–24:00)");

export const isoDate = z
  .string()
  .regex(/^\d{4}-\d{2}-\d{2}$/, "expected YYYY-MM-DD")
  .refine((s) => {
    const d = new Date(`${s}T00:00:00Z`);
    return !Number.isNaN(d.getTime()) && d.toISOString().startsWith(s);
  }, "not a calendar date");

const slotMinutes = z.number().int().min(5).max(480);

/** Longest range `appointments.slots` and the practitioner lists accept, days. */
export const MAX_RANGE_DAYS = 31;

/** Refine an object with `from`/`to` dates: `to` after `from`, at most {@link MAX_RANGE_DAYS} later. */
export function refineRange<T extends z.ZodType<{ from: Date; to: Date }>>(schema: T) {
  return schema
    .refine((r) => r.to.getTime() > r.from.getTime(), {
      message: "must be after from",
      path: ["to"],
    })
    .refine((r) => r.to.getTime() - r.from.getTime() <= MAX_RANGE_DAYS * 86_400_000, {
      message: `at most ${MAX_RANGE_DAYS} days after from`,
      path: ["to"],
    });
}

const weeklyEntry = z
  .strictObject({
    /** ISO weekday: 1 = Monday … 7 = Sunday. */
    weekday: z.number().int().min(1).max(7),
    start: localTime,
    end: localTime,
    slotMinutes,
  })
  .refine((w) => parseLocalTime(w.end) - parseLocalTime(w.start) >= w.slotMinutes, {
    message: "must be at least one slot after start",
    path: ["end"],
  });

export const setWeeklyInput = z
  .strictObject({
    practitionerId: z.uuid(),
    /** The whole week; replaces every existing window. Empty = no regular hours. */
    hours: z.array(weeklyEntry).max(70),
  })
  .superRefine((v, ctx) => {
    v.hours.forEach((a, i) => {
      v.hours.forEach((b, j) => {
        if (
          j > i &&
          a.weekday === b.weekday &&
          parseLocalTime(a.start) < parseLocalTime(b.end) &&
          parseLocalTime(b.start) < parseLocalTime(a.end)
        ) {
          ctx.addIssue({
            code: "custom",
            message: `overlaps hours[${i}] on the same weekday`,
            path: ["hours", j],
          });
        }
      });
    });
  });

export const addExceptionInput = z.discriminatedUnion("kind", [
  z
    .strictObject({
      practitionerId: z.uuid(),
      date: isoDate,
      kind: z.literal("closed"),
      /** Omit both for the whole day. */
      start: localTime.optional(),
      end: localTime.optional(),
    })
    .refine((e) => (e.start === undefined) === (e.end === undefined), {
      message: "give both start and end, or neither for the whole day",
      path: ["end"],
    })
    .refine((e) => e.start === undefined || parseLocalTime(e.end ?? "") > parseLocalTime(e.start), {
      message: "must be after start",
      path: ["end"],
    }),
  z
    .strictObject({
      practitionerId: z.uuid(),
      date: isoDate,
      kind: z.literal("extra"),
      start: localTime,
      end: localTime,
      slotMinutes,
    })
    .refine((e) => parseLocalTime(e.end) - parseLocalTime(e.start) >= e.slotMinutes, {
      message: "must be at least one slot after start",
      path: ["end"],
    }),
]);

export const availabilityOutput = z.object({
  practitionerId: z.uuid(),
  organizationId: z.uuid(),
  /** IANA zone the local times are in. */
  timeZone: z.string(),
  weekly: z.array(
    z.object({
      weekday: z.number().int(),
      start: z.string(),
      end: z.string(),
      slotMinutes: z.number().int(),
    }),
  ),
  exceptions: z.array(
    z.object({
      id: z.uuid(),
      date: z.string(),
      kind: z.enum(["closed", "extra"]),
      start: z.string().nullable(),
      end: z.string().nullable(),
      slotMinutes: z.number().int().nullable(),
    }),
  ),
});

export const getAvailabilityInput = z.strictObject({
  practitionerId: z.uuid(),
  /** Exceptions on or after this local date (default: today in the clinic's zone). */
  fromDate: isoDate.optional(),
});

export const removeExceptionInput = z.strictObject({ exceptionId: z.uuid() });

export const slotsInput = refineRange(
  z.strictObject({ practitionerId: z.uuid(), from: z.date(), to: z.date() }),
);

export const slotsOutput = z.object({
  practitionerId: z.uuid(),
  timeZone: z.string(),
  slots: z.array(
    z.object({
      /** UTC instants. */
      startsAt: z.date(),
      endsAt: z.date(),
      /** Local wall time with its UTC offset, e.g. `2027-03-15T09:00-04:00`. */
      local: z.string(),
    }),
  ),
});

/** `appointments.practitioners` output: the caller's clinic, its zone and its practitioners. */
export const practitionersOutput = z.object({
  organizationId: z.uuid(),
  timeZone: z.string(),
  items: z.array(z.object({ id: z.uuid(), name: z.string() })),
});
