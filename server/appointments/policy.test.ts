import { describe, expect, it } from "vitest";
import { type Actor, ROLES, type Role } from "../kernel/roles.ts";
import { canManageAvailability, canViewSchedule } from "../scheduling/policy.ts";
import {
  type AppointmentFacts,
  type ChangeAction,
  canChangeAppointment,
  canReadAppointment,
  patientCutoffAllows,
  resolveFeedScope,
} from "./policy.ts";
import { APPOINTMENT_ACTIONS, APPOINTMENT_STATES, transition } from "./state.ts";

const ORG = "00000000-0000-7000-8000-00000000000a";
const OTHER_ORG = "00000000-0000-7000-8000-00000000000b";
const PATIENT = "00000000-0000-7000-8000-000000000001";
const OTHER_PATIENT = "00000000-0000-7000-8000-000000000002";
const PRACT = "00000000-0000-7000-8000-0000000000c1";
const OTHER_PRACT = "00000000-0000-7000-8000-0000000000c2";

function actor(role: Role, extra: Partial<Actor> = {}): Actor {
  return {
    userId: "00000000-0000-7000-8000-0000000000ff",
    role,
    organizationId: ORG,
    sessionId: "s",
    patientId: null,
    practitionerId: null,
    ...extra,
  };
}
const facts = (extra: Partial<AppointmentFacts> = {}): AppointmentFacts => ({
  organizationId: ORG,
  patientId: PATIENT,
  practitionerId: PRACT,
  activeCareRelationship: false,
  ...extra,
});
const verdict = (d: { allowed: boolean; rule?: string }) => (d.allowed ? true : d.rule);

describe("canReadAppointment", () => {
  const table: [string, Actor, AppointmentFacts, true | string][] = [
    ["patient self", actor("patient", { patientId: PATIENT }), facts(), true],
    ["patient other", actor("patient", { patientId: OTHER_PATIENT }), facts(), "not_self"],
    ["patient without record", actor("patient"), facts(), "not_self"],
    ["clinician own calendar", actor("clinician", { practitionerId: PRACT }), facts(), true],
    [
      "clinician with care",
      actor("clinician", { practitionerId: OTHER_PRACT }),
      facts({ activeCareRelationship: true }),
      true,
    ],
    [
      "clinician neither",
      actor("clinician", { practitionerId: OTHER_PRACT }),
      facts(),
      "no_care_relationship",
    ],
    [
      "clinician unlinked",
      actor("clinician"),
      facts({ activeCareRelationship: true }),
      "no_care_relationship",
    ],
    ["staff own org", actor("staff"), facts(), true],
    ["staff other org", actor("staff"), facts({ organizationId: OTHER_ORG }), "other_organization"],
    ["admin own org", actor("admin"), facts(), true],
    ["admin other org", actor("admin"), facts({ organizationId: OTHER_ORG }), "other_organization"],
    ["service", actor("service"), facts(), "role"],
  ];
  it.each(table)("%s", (_n, a, f, expected) => {
    expect(verdict(canReadAppointment(a, f))).toBe(expected);
  });
  it("covers every role", () => {
    expect(new Set(table.map(([, a]) => a.role))).toEqual(new Set(ROLES));
  });
});

describe("canChangeAppointment: every role × action", () => {
  const target = { organizationId: ORG, patientId: PATIENT, practitionerId: PRACT };
  const expected: Record<string, Record<ChangeAction, true | string>> = {
    "patient (self)": {
      book: true,
      reschedule: true,
      cancel: true,
      checkIn: "role",
      complete: "role",
      markNoShow: "role",
    },
    "clinician (own calendar)": {
      book: "role",
      reschedule: "role",
      cancel: true,
      checkIn: "role",
      complete: true,
      markNoShow: true,
    },
    staff: {
      book: true,
      reschedule: true,
      cancel: true,
      checkIn: true,
      complete: true,
      markNoShow: true,
    },
    admin: {
      book: true,
      reschedule: true,
      cancel: true,
      checkIn: true,
      complete: true,
      markNoShow: true,
    },
    service: {
      book: "role",
      reschedule: "role",
      cancel: "role",
      checkIn: "role",
      complete: "role",
      markNoShow: "role",
    },
  };
  const actors: Record<string, Actor> = {
    "patient (self)": actor("patient", { patientId: PATIENT }),
    "clinician (own calendar)": actor("clinician", { practitionerId: PRACT }),
    staff: actor("staff"),
    admin: actor("admin"),
    service: actor("service"),
  };
  const cases = Object.entries(expected).flatMap(([who, row]) =>
    (["book", ...APPOINTMENT_ACTIONS] as ChangeAction[]).map(
      (action) => [who, action, row[action]] as const,
    ),
  );
  it.each(cases)("%s → %s", (who, action, outcome) => {
    expect(verdict(canChangeAppointment(actors[who] as Actor, action, target))).toBe(outcome);
  });
  it("the row facts matter: other patient, other calendar, other organization", () => {
    expect(
      verdict(
        canChangeAppointment(actor("patient", { patientId: OTHER_PATIENT }), "cancel", target),
      ),
    ).toBe("not_self");
    expect(
      verdict(
        canChangeAppointment(
          actor("clinician", { practitionerId: OTHER_PRACT }),
          "complete",
          target,
        ),
      ),
    ).toBe("not_own_calendar");
    expect(
      verdict(
        canChangeAppointment(actor("staff"), "checkIn", { ...target, organizationId: OTHER_ORG }),
      ),
    ).toBe("other_organization");
  });
});

describe("patient cutoff", () => {
  const start = new Date("2027-06-07T13:00:00Z");
  it.each([
    ["booked, 25 h before", "booked", 25, true],
    ["booked, exactly 24 h before", "booked", 24, true],
    ["booked, 23 h before", "booked", 23, "cutoff_passed"],
    ["checked in", "checked_in", 48, "role"],
  ] as const)("%s", (_n, state, hoursBefore, expected) => {
    const now = new Date(start.getTime() - hoursBefore * 3_600_000);
    expect(verdict(patientCutoffAllows(state, start, now, 24 * 60))).toBe(expected);
  });
});

describe("live feed scope", () => {
  it("staff/admin: own organization (default), optionally one of its practitioners", () => {
    expect(resolveFeedScope(actor("staff"), {}, null)).toEqual({
      allowed: true,
      scope: { organizationId: ORG, practitionerId: null },
    });
    expect(resolveFeedScope(actor("admin"), { practitionerId: PRACT }, ORG)).toEqual({
      allowed: true,
      scope: { organizationId: ORG, practitionerId: PRACT },
    });
    expect(resolveFeedScope(actor("staff"), { organizationId: OTHER_ORG }, null)).toEqual({
      allowed: false,
      rule: "other_organization",
    });
    expect(resolveFeedScope(actor("staff"), { practitionerId: OTHER_PRACT }, OTHER_ORG)).toEqual({
      allowed: false,
      rule: "other_organization",
    });
  });
  it("clinicians: their own calendar only", () => {
    const c = actor("clinician", { practitionerId: PRACT });
    expect(resolveFeedScope(c, {}, ORG)).toEqual({
      allowed: true,
      scope: { organizationId: ORG, practitionerId: PRACT },
    });
    expect(resolveFeedScope(c, { practitionerId: OTHER_PRACT }, ORG)).toMatchObject({
      rule: "not_own_calendar",
    });
    expect(resolveFeedScope(actor("clinician"), {}, null)).toMatchObject({
      rule: "not_own_calendar",
    });
    expect(resolveFeedScope(c, { organizationId: OTHER_ORG }, ORG)).toMatchObject({
      rule: "other_organization",
    });
  });
  it("patients and services may not subscribe", () => {
    expect(resolveFeedScope(actor("patient", { patientId: PATIENT }), {}, null)).toMatchObject({
      rule: "role",
    });
    expect(resolveFeedScope(actor("service"), {}, null)).toMatchObject({ rule: "role" });
  });
});

describe("scheduling policy", () => {
  const p = { id: PRACT, organizationId: ORG };
  it.each([
    ["patient", actor("patient", { patientId: PATIENT }), true, "role"],
    ["own clinician", actor("clinician", { practitionerId: PRACT }), true, true],
    ["colleague", actor("clinician", { practitionerId: OTHER_PRACT }), true, "not_own_calendar"],
    ["staff", actor("staff"), true, true],
    [
      "admin of another org",
      actor("admin", { organizationId: OTHER_ORG }),
      "other_organization",
      "other_organization",
    ],
    ["service", actor("service"), "role", "role"],
  ] as const)("%s: view %s, manage %s", (_n, a, view, manage) => {
    expect(verdict(canViewSchedule(a, p))).toBe(view);
    expect(verdict(canManageAvailability(a, p))).toBe(manage);
  });
  it("a practitioner without an organization is nobody's to book", () => {
    expect(verdict(canViewSchedule(actor("staff"), { id: PRACT, organizationId: null }))).toBe(
      "other_organization",
    );
  });
});

describe("state machine (pure)", () => {
  it("every (state, action) pair has a defined outcome with a readable refusal", () => {
    for (const s of APPOINTMENT_STATES) {
      for (const a of APPOINTMENT_ACTIONS) {
        const t = transition(s, a);
        if (!t.ok) expect(t.message).toMatch(/^Cannot /);
      }
    }
    expect(transition("booked", "complete")).toEqual({
      ok: false,
      message: "Cannot complete an appointment that is booked (check the patient in first)",
    });
    expect(transition("checked_in", "markNoShow")).toEqual({
      ok: false,
      message:
        "Cannot mark as no-show an appointment that is checked in (the patient has checked in)",
    });
    for (const terminal of ["completed", "cancelled", "no_show"] as const) {
      for (const a of APPOINTMENT_ACTIONS) expect(transition(terminal, a).ok).toBe(false);
    }
  });
});
