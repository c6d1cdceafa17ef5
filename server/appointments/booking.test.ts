import { TRPCError } from "@trpc/server";
import { and, asc, eq } from "drizzle-orm";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { appointmentChanges, appointments, auditEvents, reminders } from "../../db/schema/index.ts";
import type { Actor } from "../kernel/roles.ts";
import { makeOrganization, makeUser } from "../test/factory.ts";
import { actorFor, createHarness, type Harness } from "../test/harness.ts";
import { type Clinic, makeClinic, makePortalPatient } from "./fixtures.ts";
import {
  APPOINTMENT_ACTIONS,
  APPOINTMENT_STATES,
  type AppointmentAction,
  transition,
} from "./state.ts";

/**
 * Booking and the appointment lifecycle through the real router and Postgres: availability,
 * encryption of reasons, reminders in the same transaction, optimistic concurrency, the patient
 * cutoff, the state machine, lists and audit. The clock is injected (2027-06-01 12:00 UTC, a
 * Tuesday); the clinic is in America/New_York (EDT, UTC−4), open weekdays 09:00–12:00, 30-minute slots.
 */
let h: Harness;
let c: Clinic;
let otherOrgStaff: Actor;
const NOW = new Date("2027-06-01T12:00:00Z");
/** Monday 2027-06-07 at hh:mm EDT, as a UTC instant. */
const mon = (hhmm: string, day = 7) => {
  const [hh, mm] = hhmm.split(":").map(Number) as [number, number];
  return new Date(Date.UTC(2027, 5, day, hh + 4, mm));
};

beforeAll(async () => {
  h = await createHarness();
  h.clock.now = NOW;
  c = await makeClinic(h);
  const otherOrg = await makeOrganization(h.deps);
  otherOrgStaff = await actorFor(h, (await makeUser(h.deps, "staff", otherOrg)).userId);
});
afterAll(async () => {
  await h?.close();
});
beforeEach(() => {
  h.clock.now = NOW;
});

async function failure(
  p: Promise<unknown>,
): Promise<{ code: string; reason: string | null; message: string }> {
  try {
    await p;
  } catch (err) {
    if (err instanceof TRPCError) {
      const reason = (err.cause as { reason?: string } | undefined)?.reason ?? null;
      return { code: err.code, reason, message: err.message };
    }
    throw err;
  }
  throw new Error("expected a failure");
}

const staff = () => h.caller(c.staff.actor);
const patient = () => h.caller(c.patient.actor);

describe("booking", () => {
  it("a patient books a free slot: encrypted reason, two reminders, audit and change log in one go", async () => {
    const appt = await patient().appointments.book({
      practitionerId: c.practitionerId,
      startsAt: mon("09:00"),
      reason: "persistent cough since March",
    });
    expect(appt).toMatchObject({
      patientId: c.patient.id,
      status: "booked",
      version: 1,
      reason: "persistent cough since March",
      outsideAvailability: false,
    });
    expect(appt.endsAt.toISOString()).toBe("2027-06-07T13:30:00.000Z");

    const [row] = await h.deps.db.select().from(appointments).where(eq(appointments.id, appt.id));
    expect(row?.reason).toMatch(/^hv1:/);
    expect(JSON.stringify(row)).not.toContain("cough");

    const rems = await h.deps.db
      .select()
      .from(reminders)
      .where(eq(reminders.appointmentId, appt.id))
      .orderBy(asc(reminders.dueAt));
    expect(rems.map((r) => [r.offsetMinutes, r.channel, r.status, r.dueAt.toISOString()])).toEqual([
      [1440, "email", "pending", "2027-06-06T13:00:00.000Z"],
      [120, "email", "pending", "2027-06-07T11:00:00.000Z"],
    ]);
    expect(rems.every((r) => r.nextAttemptAt.getTime() === r.dueAt.getTime())).toBe(true);
    expect(rems.every((r) => r.organizationId === c.organizationId)).toBe(true);

    const audit = await h.deps.db
      .select()
      .from(auditEvents)
      .where(and(eq(auditEvents.action, "appointment.book"), eq(auditEvents.resourceId, appt.id)));
    expect(audit.map((a) => [a.outcome, a.patientId, a.actorUserId])).toEqual([
      ["allowed", c.patient.id, c.patient.user.userId],
    ]);
    expect(JSON.stringify(audit)).not.toContain("cough");
    const changes = await h.deps.db
      .select()
      .from(appointmentChanges)
      .where(eq(appointmentChanges.appointmentId, appt.id));
    expect(changes.map((x) => x.kind)).toEqual(["booked"]);
  });

  it("the booked slot is no longer offered", async () => {
    const { slots, timeZone } = await patient().appointments.slots({
      practitionerId: c.practitionerId,
      from: mon("00:00"),
      to: mon("23:00"),
    });
    expect(timeZone).toBe("America/New_York");
    expect(slots.map((s) => s.local)).toEqual([
      "2027-06-07T09:30-04:00",
      "2027-06-07T10:00-04:00",
      "2027-06-07T10:30-04:00",
      "2027-06-07T11:00-04:00",
      "2027-06-07T11:30-04:00",
    ]);
  });

  it("refuses times outside the hours, off the slot grid, with a wrong end, or in the past", async () => {
    for (const startsAt of [mon("13:00"), mon("09:10"), new Date("2027-06-05T13:00:00Z")]) {
      expect(
        await failure(patient().appointments.book({ practitionerId: c.practitionerId, startsAt })),
      ).toMatchObject({ code: "BAD_REQUEST", reason: "outside_availability" });
    }
    expect(
      await failure(
        patient().appointments.book({
          practitionerId: c.practitionerId,
          startsAt: mon("10:00"),
          endsAt: mon("11:00"),
        }),
      ),
    ).toMatchObject({ code: "BAD_REQUEST", reason: "outside_availability" });
    expect(
      await failure(
        patient().appointments.book({
          practitionerId: c.practitionerId,
          startsAt: new Date("2027-05-31T13:00:00Z"),
        }),
      ),
    ).toMatchObject({ code: "BAD_REQUEST", reason: "in_the_past" });
  });

  it("an overlapping booking gets CONFLICT with a clear message, and no second row", async () => {
    const other = await makePortalPatient(h, c.organizationId);
    const err = await failure(
      h.caller(other.actor).appointments.book({
        practitionerId: c.practitionerId,
        startsAt: mon("09:00"),
      }),
    );
    expect(err).toMatchObject({ code: "CONFLICT", reason: "slot_taken" });
    expect(err.message).toMatch(/no longer available/);
    // Staff overriding into an overlapping time hits the exclusion constraint itself.
    const viaConstraint = await failure(
      staff().appointments.book({
        practitionerId: c.practitionerId,
        patientId: other.id,
        startsAt: mon("09:15"),
        endsAt: mon("09:45"),
        override: { reason: "squeeze in" },
      }),
    );
    expect(viaConstraint).toMatchObject({ code: "CONFLICT", reason: "slot_taken" });
    const rows = await h.deps.db
      .select()
      .from(appointments)
      .where(eq(appointments.practitionerId, c.practitionerId));
    expect(rows).toHaveLength(1);
    const conflictAudit = await h.deps.db
      .select()
      .from(auditEvents)
      .where(and(eq(auditEvents.action, "appointment.book"), eq(auditEvents.outcome, "error")));
    expect(conflictAudit.length).toBe(2);
  });

  it("patients book only for themselves, never with an override; staff only in their organization", async () => {
    const other = await makePortalPatient(h, c.organizationId);
    expect(
      await failure(
        patient().appointments.book({
          practitionerId: c.practitionerId,
          patientId: other.id,
          startsAt: mon("10:00"),
        }),
      ),
    ).toMatchObject({ code: "FORBIDDEN", reason: "not_self" });
    expect(
      await failure(
        patient().appointments.book({
          practitionerId: c.practitionerId,
          startsAt: mon("18:00"),
          endsAt: mon("18:30"),
          override: { reason: "after hours please" },
        }),
      ),
    ).toMatchObject({ code: "FORBIDDEN", reason: "role" });
    expect(
      await failure(
        h.caller(otherOrgStaff).appointments.book({
          practitionerId: c.practitionerId,
          patientId: other.id,
          startsAt: mon("10:00"),
        }),
      ),
    ).toMatchObject({ code: "FORBIDDEN", reason: "other_organization" });
    expect(
      await failure(
        staff().appointments.book({ practitionerId: c.practitionerId, startsAt: mon("10:00") }),
      ),
    ).toMatchObject({ code: "BAD_REQUEST", reason: "patient_required" });
    const denied = await h.deps.db
      .select()
      .from(auditEvents)
      .where(and(eq(auditEvents.action, "appointment.book"), eq(auditEvents.outcome, "denied")));
    expect(denied.map((d) => d.details?.rule).sort()).toEqual([
      "not_self",
      "other_organization",
      "role",
    ]);
  });

  it("staff book outside the hours only with an override reason, stored encrypted", async () => {
    const p = await makePortalPatient(h, c.organizationId);
    expect(
      await failure(
        staff().appointments.book({
          practitionerId: c.practitionerId,
          patientId: p.id,
          startsAt: mon("18:00"),
          endsAt: mon("18:20"),
        }),
      ),
    ).toMatchObject({ code: "BAD_REQUEST", reason: "outside_availability" });
    const appt = await staff().appointments.book({
      practitionerId: c.practitionerId,
      patientId: p.id,
      startsAt: mon("18:00"),
      endsAt: mon("18:20"),
      override: { reason: "urgent wound check after work" },
    });
    expect(appt.outsideAvailability).toBe(true);
    const [row] = await h.deps.db.select().from(appointments).where(eq(appointments.id, appt.id));
    expect(row?.overrideReason).toMatch(/^hv1:/);
    expect(
      h.deps.crypto.open("appointments", "override_reason", appt.id, row?.overrideReason ?? ""),
    ).toBe("urgent wound check after work");
  });

  it("a booking less than 24 h ahead gets only the reminders that are still in the future", async () => {
    const p = await makePortalPatient(h, c.organizationId);
    h.clock.now = new Date("2027-06-08T09:00:00Z"); // Tuesday 05:00 EDT
    const appt = await h.caller(p.actor).appointments.book({
      practitionerId: c.practitionerId,
      startsAt: new Date("2027-06-08T14:00:00Z"), // 10:00 EDT, 5 h ahead
    });
    const rems = await h.deps.db
      .select()
      .from(reminders)
      .where(eq(reminders.appointmentId, appt.id));
    expect(rems.map((r) => [r.offsetMinutes, r.status])).toEqual([[120, "pending"]]);
  });

  it("a patient may not be in two places at once", async () => {
    const p = await makePortalPatient(h, c.organizationId);
    const clinic2Practitioner = await makeClinicPractitioner();
    await h
      .caller(p.actor)
      .appointments.book({ practitionerId: c.practitionerId, startsAt: mon("11:00") });
    expect(
      await failure(
        h
          .caller(p.actor)
          .appointments.book({ practitionerId: clinic2Practitioner, startsAt: mon("11:00") }),
      ),
    ).toMatchObject({ code: "CONFLICT", reason: "patient_double_booked" });
  });
});

/** A second practitioner in the same clinic with the same hours. */
async function makeClinicPractitioner(): Promise<string> {
  const { makePractitioner } = await import("../test/factory.ts");
  const { setHours, WEEKDAYS } = await import("./fixtures.ts");
  const id = await makePractitioner(h.deps, c.organizationId);
  await setHours(
    h,
    c.organizationId,
    id,
    WEEKDAYS.map((weekday) => ({ weekday, start: "09:00", end: "12:00", slotMinutes: 30 })),
  );
  return id;
}

describe("reschedule, optimistic concurrency and reminders", () => {
  it("moves a visit, bumps its version, replaces its reminders and frees the old slot", async () => {
    const p = await makePortalPatient(h, c.organizationId);
    const appt = await h.caller(p.actor).appointments.book({
      practitionerId: c.practitionerId,
      startsAt: mon("10:30", 14),
    });
    const before = await h.deps.db
      .select()
      .from(reminders)
      .where(eq(reminders.appointmentId, appt.id));
    const moved = await h.caller(p.actor).appointments.reschedule({
      appointmentId: appt.id,
      version: 1,
      startsAt: mon("11:30", 14),
    });
    expect(moved.version).toBe(2);
    expect(moved.startsAt.toISOString()).toBe(mon("11:30", 14).toISOString());
    const after = await h.deps.db
      .select()
      .from(reminders)
      .where(eq(reminders.appointmentId, appt.id))
      .orderBy(asc(reminders.dueAt));
    expect(after.map((r) => r.id).sort()).toEqual(before.map((r) => r.id).sort());
    expect(after.map((r) => [r.dueAt.toISOString(), r.status, r.version])).toEqual([
      ["2027-06-13T15:30:00.000Z", "pending", 2],
      ["2027-06-14T13:30:00.000Z", "pending", 2],
    ]);
    const free = await h.caller(p.actor).appointments.slots({
      practitionerId: c.practitionerId,
      from: mon("10:30", 14),
      to: mon("11:00", 14),
    });
    expect(free.slots).toHaveLength(1);

    const stale = await failure(
      h.caller(p.actor).appointments.reschedule({
        appointmentId: appt.id,
        version: 1,
        startsAt: mon("09:00", 14),
      }),
    );
    expect(stale).toMatchObject({ code: "CONFLICT", reason: "stale_version" });
    expect(stale.message).toMatch(/version 2/);
  });

  it("a patient's change inside the cutoff is refused and audited; staff may still change it", async () => {
    const p = await makePortalPatient(h, c.organizationId);
    const appt = await h.caller(p.actor).appointments.book({
      practitionerId: c.practitionerId,
      startsAt: mon("09:00", 15),
    });
    h.clock.now = new Date(mon("09:00", 15).getTime() - 23 * 3_600_000);
    expect(
      await failure(
        h
          .caller(p.actor)
          .appointments.cancel({ appointmentId: appt.id, version: 1, reason: "feeling better" }),
      ),
    ).toMatchObject({ code: "FORBIDDEN", reason: "cutoff_passed" });
    expect(
      await failure(
        h.caller(p.actor).appointments.reschedule({
          appointmentId: appt.id,
          version: 1,
          startsAt: mon("10:00", 15),
        }),
      ),
    ).toMatchObject({ code: "FORBIDDEN", reason: "cutoff_passed" });
    const denied = await h.deps.db
      .select()
      .from(auditEvents)
      .where(and(eq(auditEvents.resourceId, appt.id), eq(auditEvents.outcome, "denied")));
    expect(denied.map((d) => d.action).sort()).toEqual([
      "appointment.cancel",
      "appointment.reschedule",
    ]);
    const cancelled = await staff().appointments.cancel({
      appointmentId: appt.id,
      version: 1,
      reason: "patient called: feeling better",
    });
    expect(cancelled).toMatchObject({
      status: "cancelled",
      version: 2,
      cancellationReason: "patient called: feeling better",
    });
    const rems = await h.deps.db
      .select()
      .from(reminders)
      .where(eq(reminders.appointmentId, appt.id));
    expect(rems.map((r) => [r.status, r.lastError])).toEqual([
      ["cancelled", "appointment_cancelled"],
      ["cancelled", "appointment_cancelled"],
    ]);
    const [row] = await h.deps.db.select().from(appointments).where(eq(appointments.id, appt.id));
    expect(row?.cancellationReason).toMatch(/^hv1:/);
  });

  it("a patient cancels in time; the slot is free again", async () => {
    const p = await makePortalPatient(h, c.organizationId);
    const appt = await h.caller(p.actor).appointments.book({
      practitionerId: c.practitionerId,
      startsAt: mon("09:30", 15),
    });
    const done = await h.caller(p.actor).appointments.cancel({
      appointmentId: appt.id,
      version: 1,
      reason: "travelling",
    });
    expect(done.status).toBe("cancelled");
    const other = await makePortalPatient(h, c.organizationId);
    const rebooked = await h.caller(other.actor).appointments.book({
      practitionerId: c.practitionerId,
      startsAt: mon("09:30", 15),
    });
    expect(rebooked.status).toBe("booked");
  });

  it("no-show only once the visit has started; clinicians act on their own calendar only", async () => {
    const p = await makePortalPatient(h, c.organizationId);
    const appt = await h.caller(p.actor).appointments.book({
      practitionerId: c.practitionerId,
      startsAt: mon("11:30", 15),
    });
    const clinician = h.caller(c.clinician.actor);
    expect(
      await failure(clinician.appointments.markNoShow({ appointmentId: appt.id, version: 1 })),
    ).toMatchObject({ code: "CONFLICT", reason: "not_started" });
    h.clock.now = new Date(mon("11:30", 15).getTime() + 20 * 60_000);
    const strangerUser = await makeUser(h.deps, "clinician", c.organizationId);
    const { makePractitioner } = await import("../test/factory.ts");
    await makePractitioner(h.deps, c.organizationId, strangerUser.userId);
    const stranger = await actorFor(h, strangerUser.userId);
    expect(
      await failure(
        h.caller(stranger).appointments.markNoShow({ appointmentId: appt.id, version: 1 }),
      ),
    ).toMatchObject({ code: "FORBIDDEN", reason: "not_own_calendar" });
    const noShow = await clinician.appointments.markNoShow({ appointmentId: appt.id, version: 1 });
    expect(noShow.status).toBe("no_show");
  });
});

describe("state machine through the router: every (state, action) pair", () => {
  const expected = APPOINTMENT_STATES.flatMap((state) =>
    APPOINTMENT_ACTIONS.map((action) => [state, action, transition(state, action)] as const),
  );
  let day = 0;
  it.each(expected)("%s × %s", async (state, action, outcome) => {
    // A fresh booked visit per case (each on its own day), forced into `state`.
    const p = await makePortalPatient(h, c.organizationId);
    day++;
    const startsAt = new Date(Date.UTC(2027, 6, 1 + day, 14, 0));
    const appt = await staff().appointments.book({
      practitionerId: c.practitionerId,
      patientId: p.id,
      startsAt,
      endsAt: new Date(startsAt.getTime() + 30 * 60_000),
      override: { reason: "state machine table" },
    });
    await h.deps.db.update(appointments).set({ status: state }).where(eq(appointments.id, appt.id));
    h.clock.now = new Date(startsAt.getTime() + 5 * 60_000); // visit under way: no-show allowed
    const ref = { appointmentId: appt.id, version: 1 };
    const run: Record<AppointmentAction, () => Promise<{ status: string; version: number }>> = {
      reschedule: () =>
        staff().appointments.reschedule({
          ...ref,
          startsAt: new Date(startsAt.getTime() + 60 * 60_000),
          endsAt: new Date(startsAt.getTime() + 90 * 60_000),
          override: { reason: "state machine table" },
        }),
      cancel: () => staff().appointments.cancel({ ...ref, reason: "state machine table" }),
      checkIn: () => staff().appointments.checkIn(ref),
      complete: () => staff().appointments.complete(ref),
      markNoShow: () => staff().appointments.markNoShow(ref),
    };
    if (outcome.ok) {
      const result = await run[action]();
      expect(result).toMatchObject({ status: outcome.to, version: 2 });
      const audit = await h.deps.db
        .select()
        .from(auditEvents)
        .where(and(eq(auditEvents.resourceId, appt.id), eq(auditEvents.outcome, "allowed")));
      expect(audit.length).toBe(2); // book + this action
    } else {
      const err = await failure(run[action]());
      expect(err).toMatchObject({ code: "CONFLICT", reason: "illegal_transition" });
      expect(err.message).toBe(outcome.message);
      const [row] = await h.deps.db.select().from(appointments).where(eq(appointments.id, appt.id));
      expect(row).toMatchObject({ status: state, version: 1 });
    }
  });

  it("covers all 25 pairs", () => {
    expect(expected).toHaveLength(APPOINTMENT_STATES.length * APPOINTMENT_ACTIONS.length);
    expect(expected.filter(([, , o]) => o.ok).map(([s, a]) => `${s}:${a}`)).toEqual([
      "booked:reschedule",
      "booked:cancel",
      "booked:checkIn",
      "booked:markNoShow",
      "checked_in:cancel",
      "checked_in:complete",
    ]);
  });
});

describe("lists: the front desk's day, a clinician's calendar", () => {
  let dayPatients: { id: string; actor: Actor }[];
  beforeAll(async () => {
    h.clock.now = NOW;
    dayPatients = [];
    for (const t of ["09:00", "09:30", "10:00"]) {
      const p = await makePortalPatient(h, c.organizationId);
      dayPatients.push(p);
      await h.caller(p.actor).appointments.book({
        practitionerId: c.practitionerId,
        startsAt: mon(t, 21),
        reason: `reason at ${t}`,
      });
    }
  });

  it("day: the clinic's local day, ascending, paged by cursor, with names and reasons", async () => {
    const first = await staff().appointments.day({
      organizationId: c.organizationId,
      date: "2027-06-21",
      limit: 2,
    });
    expect(first.timeZone).toBe("America/New_York");
    expect(first.items.map((i) => i.reason)).toEqual(["reason at 09:00", "reason at 09:30"]);
    expect(first.items[0]?.patientName?.family).toMatch(/^Family/);
    expect(first.nextCursor).not.toBeNull();
    const second = await staff().appointments.day({
      organizationId: c.organizationId,
      date: "2027-06-21",
      limit: 2,
      cursor: first.nextCursor ?? undefined,
    });
    expect(second.items.map((i) => i.reason)).toEqual(["reason at 10:00"]);
    expect(second.nextCursor).toBeNull();
    const audited = await h.deps.db
      .select()
      .from(auditEvents)
      .where(
        and(
          eq(auditEvents.action, "appointment.list"),
          eq(auditEvents.actorUserId, c.staff.userId),
        ),
      );
    expect(new Set(audited.map((a) => a.patientId))).toEqual(new Set(dayPatients.map((p) => p.id)));
  });

  it("day: other organizations are refused (audited); bad cursors are BAD_REQUEST", async () => {
    expect(
      await failure(
        h
          .caller(otherOrgStaff)
          .appointments.day({ organizationId: c.organizationId, date: "2027-06-21" }),
      ),
    ).toMatchObject({ code: "FORBIDDEN", reason: "other_organization" });
    expect(
      await failure(
        staff().appointments.day({
          organizationId: c.organizationId,
          date: "2027-06-21",
          cursor: "nope",
        }),
      ),
    ).toMatchObject({ code: "BAD_REQUEST" });
    expect(
      await failure(
        staff().appointments.day({ organizationId: c.organizationId, date: "2027-02-30" }),
      ),
    ).toMatchObject({ code: "BAD_REQUEST" });
  });

  it("forPractitioner: a clinician's own calendar by default; someone else's is refused", async () => {
    const own = await h.caller(c.clinician.actor).appointments.forPractitioner({
      from: mon("00:00", 21),
      to: mon("23:00", 21),
    });
    expect(own.items.map((i) => i.reason)).toEqual([
      "reason at 09:00",
      "reason at 09:30",
      "reason at 10:00",
    ]);
    const strangerUser = await makeUser(h.deps, "clinician", c.organizationId);
    const { makePractitioner } = await import("../test/factory.ts");
    await makePractitioner(h.deps, c.organizationId, strangerUser.userId);
    const stranger = await actorFor(h, strangerUser.userId);
    expect(
      await failure(
        h.caller(stranger).appointments.forPractitioner({
          practitionerId: c.practitionerId,
          from: mon("00:00", 21),
          to: mon("23:00", 21),
        }),
      ),
    ).toMatchObject({ code: "FORBIDDEN", reason: "not_own_calendar" });
    expect(
      await failure(
        staff().appointments.forPractitioner({
          practitionerId: c.practitionerId,
          from: mon("00:00", 21),
          to: new Date(mon("00:00", 21).getTime() + 40 * 86_400_000),
        }),
      ),
    ).toMatchObject({ code: "BAD_REQUEST" });
  });

  it("a patient sees their visit in listForPatient with its reason; other patients' stay hidden", async () => {
    const [first] = dayPatients;
    if (!first) throw new Error("no patient");
    const mine = await h.caller(first.actor).appointments.listForPatient({ patientId: first.id });
    expect(mine.items.map((i) => i.reason)).toEqual(["reason at 09:00"]);
    expect(
      await failure(
        h
          .caller(first.actor)
          .appointments.day({ organizationId: c.organizationId, date: "2027-06-21" }),
      ),
    ).toMatchObject({ code: "FORBIDDEN" });
  });
});

describe("availability procedures", () => {
  it("a clinician sets their own weekly hours; a colleague may not; overlaps are BAD_REQUEST with a path", async () => {
    const clinician = h.caller(c.clinician.actor);
    const set = await clinician.appointments.availability.setWeekly({
      practitionerId: c.practitionerId,
      hours: [
        ...[1, 2, 3, 4, 5].map((weekday) => ({
          weekday,
          start: "09:00",
          end: "12:00",
          slotMinutes: 30,
        })),
        { weekday: 6, start: "10:00", end: "11:00", slotMinutes: 20 },
      ],
    });
    expect(set.weekly.at(-1)).toEqual({
      weekday: 6,
      start: "10:00",
      end: "11:00",
      slotMinutes: 20,
    });
    const saturday = await patient().appointments.slots({
      practitionerId: c.practitionerId,
      from: new Date("2027-06-26T04:00:00Z"),
      to: new Date("2027-06-27T04:00:00Z"),
    });
    expect(saturday.slots.map((s) => s.local.slice(11, 16))).toEqual(["10:00", "10:20", "10:40"]);

    const strangerUser = await makeUser(h.deps, "clinician", c.organizationId);
    const { makePractitioner } = await import("../test/factory.ts");
    await makePractitioner(h.deps, c.organizationId, strangerUser.userId);
    const stranger = await actorFor(h, strangerUser.userId);
    expect(
      await failure(
        h
          .caller(stranger)
          .appointments.availability.setWeekly({ practitionerId: c.practitionerId, hours: [] }),
      ),
    ).toMatchObject({ code: "FORBIDDEN", reason: "not_own_calendar" });

    try {
      await clinician.appointments.availability.setWeekly({
        practitionerId: c.practitionerId,
        hours: [
          { weekday: 1, start: "09:00", end: "12:00", slotMinutes: 30 },
          { weekday: 1, start: "11:00", end: "13:00", slotMinutes: 30 },
        ],
      });
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(TRPCError);
      expect((err as TRPCError).code).toBe("BAD_REQUEST");
      const issues = ((err as TRPCError).cause as { issues?: { path: unknown[] }[] }).issues;
      expect(issues?.map((i) => i.path)).toEqual([["hours", 1]]);
    }
  });

  it("a day off removes the day's slots; removing it brings them back", async () => {
    const { id } = await staff().appointments.availability.addException({
      practitionerId: c.practitionerId,
      date: "2027-06-28",
      kind: "closed",
    });
    const range = {
      practitionerId: c.practitionerId,
      from: mon("00:00", 28),
      to: mon("23:00", 28),
    };
    expect((await patient().appointments.slots(range)).slots).toEqual([]);
    const extra = await staff().appointments.availability.addException({
      practitionerId: c.practitionerId,
      date: "2027-06-29",
      kind: "extra",
      start: "14:00",
      end: "15:00",
      slotMinutes: 60,
    });
    const tuesday = await patient().appointments.slots({
      practitionerId: c.practitionerId,
      from: mon("00:00", 29),
      to: mon("23:00", 29),
    });
    expect(tuesday.slots.map((s) => s.local.slice(11, 16))).toContain("14:00");
    const listed = await patient().appointments.availability.get({
      practitionerId: c.practitionerId,
      fromDate: "2027-06-28",
    });
    expect(listed.exceptions.map((e) => [e.date, e.kind])).toEqual([
      ["2027-06-28", "closed"],
      ["2027-06-29", "extra"],
    ]);
    await staff().appointments.availability.removeException({ exceptionId: id });
    await staff().appointments.availability.removeException({ exceptionId: extra.id });
    expect((await patient().appointments.slots(range)).slots).toHaveLength(6);
    expect(
      await failure(
        staff().appointments.availability.addException({
          ...range,
          date: "2027-06-30",
          kind: "closed",
        } as never),
      ),
    ).toMatchObject({ code: "BAD_REQUEST" });
    expect(
      await failure(
        patient().appointments.availability.addException({
          practitionerId: c.practitionerId,
          date: "2027-06-30",
          kind: "closed",
        }),
      ),
    ).toMatchObject({ code: "FORBIDDEN" });
  });

  it("slots of another organization's practitioner are refused", async () => {
    expect(
      await failure(
        h.caller(otherOrgStaff).appointments.slots({
          practitionerId: c.practitionerId,
          from: mon("00:00"),
          to: mon("23:00"),
        }),
      ),
    ).toMatchObject({ code: "FORBIDDEN", reason: "other_organization" });
  });

  it("privileged roles need MFA for booking and for changing hours", async () => {
    const noMfa = h.caller(c.staff.actor, { mfaVerified: false });
    expect(
      await failure(
        noMfa.appointments.availability.setWeekly({ practitionerId: c.practitionerId, hours: [] }),
      ),
    ).toMatchObject({ code: "FORBIDDEN", reason: "mfa_required" });
    expect(
      await failure(
        noMfa.appointments.day({ organizationId: c.organizationId, date: "2027-06-21" }),
      ),
    ).toMatchObject({ code: "FORBIDDEN", reason: "mfa_required" });
  });
});
