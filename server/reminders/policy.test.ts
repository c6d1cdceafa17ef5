import { describe, expect, it } from "vitest";
import { type Actor, ROLES, type Role } from "../kernel/roles.ts";
import {
  afterOutcome,
  backoffSeconds,
  canManageReminders,
  canWorkQueue,
  type DeliveryFacts,
  deliveryVerdict,
  retryRefusal,
} from "./policy.ts";
import type { ReminderSettings } from "./settings.ts";

const ORG = "01900000-0000-7000-8000-0000000000a1";
const OTHER = "01900000-0000-7000-8000-0000000000b2";
const settings: ReminderSettings = {
  maxAttempts: 5,
  backoffBaseSeconds: 60,
  backoffMaxSeconds: 3600,
};
const now = new Date("2030-06-01T12:00:00Z");

function actor(role: Role, extra: Partial<Actor> = {}): Actor {
  return {
    userId: "01900000-0000-7000-8000-000000000001",
    role,
    organizationId: ORG,
    sessionId: "s",
    patientId: null,
    practitionerId: null,
    ...extra,
  };
}

describe("who may work and watch the queue", () => {
  it.each(ROLES)("canWorkQueue(%s)", (role) => {
    expect(canWorkQueue(actor(role)).allowed).toBe(role === "service");
  });

  it("an API key needs the reminders scope; a session-backed service account needs none", () => {
    expect(canWorkQueue(actor("service", { apiKeyId: "k", scopes: ["reminders"] }))).toEqual({
      allowed: true,
    });
    expect(canWorkQueue(actor("service", { apiKeyId: "k", scopes: [] }))).toEqual({
      allowed: false,
      rule: "scope",
    });
    expect(canWorkQueue(actor("service"))).toEqual({ allowed: true });
  });

  it.each(ROLES)("canManageReminders(%s): own organization only, staff and admin only", (role) => {
    const own = canManageReminders(actor(role), ORG);
    const other = canManageReminders(actor(role), OTHER);
    const privileged = role === "staff" || role === "admin";
    expect(own.allowed).toBe(privileged);
    expect(other).toEqual({ allowed: false, rule: privileged ? "other_organization" : "role" });
  });
});

describe("backoff", () => {
  it("doubles from the base and stops at the cap", () => {
    expect([1, 2, 3, 4, 5, 6, 7, 8].map((n) => backoffSeconds(n, settings))).toEqual([
      60, 120, 240, 480, 960, 1920, 3600, 3600,
    ]);
    expect(backoffSeconds(0, settings)).toBe(60);
    expect(backoffSeconds(10_000, settings)).toBe(3600);
  });
});

describe("afterOutcome", () => {
  it("sent is terminal", () => {
    expect(afterOutcome({ attempts: 3 }, "sent", null, settings, now)).toEqual({ status: "sent" });
  });
  it("retry backs off by the attempt number until the budget is spent, then dead-letters", () => {
    expect(afterOutcome({ attempts: 1 }, "retry", "smtp_451", settings, now)).toEqual({
      status: "pending",
      attempts: 1,
      nextAttemptAt: new Date(now.getTime() + 60_000),
      lastError: "smtp_451",
    });
    expect(afterOutcome({ attempts: 4 }, "retry", "smtp_451", settings, now)).toMatchObject({
      status: "pending",
      nextAttemptAt: new Date(now.getTime() + 480_000),
    });
    expect(afterOutcome({ attempts: 5 }, "retry", "smtp_451", settings, now)).toEqual({
      status: "failed",
      lastError: "smtp_451",
    });
  });
  it("failed dead-letters at once; released returns the claim uncounted and due now", () => {
    expect(afterOutcome({ attempts: 1 }, "failed", "invalid_address", settings, now)).toEqual({
      status: "failed",
      lastError: "invalid_address",
    });
    expect(afterOutcome({ attempts: 2 }, "released", null, settings, now)).toEqual({
      status: "pending",
      attempts: 1,
      nextAttemptAt: now,
      lastError: null,
    });
    expect(afterOutcome({ attempts: 0 }, "released", null, settings, now)).toMatchObject({
      attempts: 0,
    });
  });
});

describe("deliveryVerdict", () => {
  const startsAt = new Date(now.getTime() + 3 * 3_600_000);
  const ok: DeliveryFacts = {
    appointmentStatus: "booked",
    startsAt,
    dueAt: new Date(startsAt.getTime() - 1440 * 60_000),
    offsetMinutes: 1440,
    attempts: 0,
    leaseExpired: false,
    address: "a@example.test",
    deceased: false,
  };
  const cases: [string, Partial<DeliveryFacts>, ReturnType<typeof deliveryVerdict>][] = [
    ["deliverable", {}, { deliver: true }],
    [
      "cancelled visit",
      { appointmentStatus: "cancelled" },
      { deliver: false, status: "cancelled", reason: "appointment_cancelled" },
    ],
    [
      "checked in",
      { appointmentStatus: "checked_in" },
      { deliver: false, status: "cancelled", reason: "visit_under_way" },
    ],
    [
      "completed",
      { appointmentStatus: "completed" },
      { deliver: false, status: "cancelled", reason: "visit_over" },
    ],
    [
      "no-show",
      { appointmentStatus: "no_show" },
      { deliver: false, status: "cancelled", reason: "visit_over" },
    ],
    [
      "moved visit",
      { startsAt: new Date(startsAt.getTime() + 60_000) },
      { deliver: false, status: "cancelled", reason: "appointment_moved" },
    ],
    [
      "already started",
      { startsAt: now, dueAt: new Date(now.getTime() - 1440 * 60_000) },
      { deliver: false, status: "cancelled", reason: "too_late" },
    ],
    [
      "deceased",
      { deceased: true },
      { deliver: false, status: "cancelled", reason: "patient_deceased" },
    ],
    [
      "no address",
      { address: null },
      { deliver: false, status: "failed", reason: "no_contact_address" },
    ],
    [
      "worker died on the last attempt",
      { leaseExpired: true, attempts: 5 },
      { deliver: false, status: "failed", reason: "lease_expired" },
    ],
    ["worker died with attempts left", { leaseExpired: true, attempts: 4 }, { deliver: true }],
  ];
  it.each(cases)("%s", (_name, change, expected) => {
    expect(deliveryVerdict({ ...ok, ...change }, now, settings)).toEqual(expected);
  });
  it("a cancelled visit is cancelled, never failed, even without an address", () => {
    expect(
      deliveryVerdict({ ...ok, appointmentStatus: "cancelled", address: null }, now, settings),
    ).toMatchObject({ status: "cancelled" });
  });
});

describe("retryRefusal", () => {
  const upcoming = { status: "booked" as const, startsAt: new Date(now.getTime() + 60_000) };
  it("only failed reminders of upcoming booked visits", () => {
    expect(retryRefusal({ status: "failed" }, upcoming, now)).toBeNull();
    for (const status of ["pending", "claimed", "sent", "cancelled"] as const) {
      expect(retryRefusal({ status }, upcoming, now)).toBe("not_failed");
    }
    expect(retryRefusal({ status: "failed" }, { ...upcoming, status: "cancelled" }, now)).toBe(
      "appointment_not_upcoming",
    );
    expect(retryRefusal({ status: "failed" }, { ...upcoming, startsAt: now }, now)).toBe(
      "appointment_not_upcoming",
    );
  });
});
