import { describe, expect, it } from "vitest";
import { type Actor, ROLES, type Role } from "../kernel/roles.ts";
import { canAdministerAccount, canChangeRole, invitableRoles } from "./policy.ts";

/** Account administration rules, every role × fact (pure functions). */
const ORG = "00000000-0000-7000-8000-000000000001";
const OTHER = "00000000-0000-7000-8000-000000000002";
const actor = (role: Role, userId = "u-actor"): Actor => ({
  userId,
  role,
  organizationId: ORG,
  sessionId: "s",
  patientId: null,
  practitionerId: null,
});

describe("canAdministerAccount", () => {
  it.each(ROLES.filter((r) => r !== "admin"))("%s may administer nobody", (role) => {
    expect(
      canAdministerAccount(actor(role), { id: "t", organizationId: ORG, role: "staff" }),
    ).toEqual({
      allowed: false,
      rule: "role",
    });
  });
  it.each(["patient", "clinician", "staff", "admin"] as const)(
    "an admin may administer a %s of their organization",
    (role) => {
      expect(canAdministerAccount(actor("admin"), { id: "t", organizationId: ORG, role })).toEqual({
        allowed: true,
      });
    },
  );
  it("never another organization's account, never oneself, never a service account", () => {
    expect(
      canAdministerAccount(actor("admin"), { id: "t", organizationId: OTHER, role: "staff" }),
    ).toEqual({
      allowed: false,
      rule: "other_organization",
    });
    expect(
      canAdministerAccount(actor("admin", "me"), { id: "me", organizationId: ORG, role: "admin" }),
    ).toEqual({
      allowed: false,
      rule: "self",
    });
    expect(
      canAdministerAccount(actor("admin"), { id: "t", organizationId: ORG, role: "service" }),
    ).toEqual({
      allowed: false,
      rule: "service_account",
    });
  });
});

describe("invitableRoles and canChangeRole", () => {
  it("staff invite patients only; admins invite patients and the workforce; nobody invites service", () => {
    expect(invitableRoles("staff")).toEqual(["patient"]);
    expect(invitableRoles("admin")).toEqual(["patient", "clinician", "staff", "admin"]);
    for (const r of ["patient", "clinician", "service"] as const)
      expect(invitableRoles(r)).toEqual([]);
    for (const r of ROLES) expect(invitableRoles(r)).not.toContain("service");
  });
  it("only workforce roles change, and only to another workforce role", () => {
    for (const from of ROLES) {
      for (const to of ROLES) {
        const workforce = (r: Role) => r === "clinician" || r === "staff" || r === "admin";
        expect(canChangeRole(from, to), `${from}→${to}`).toBe(
          workforce(from) && workforce(to) && from !== to,
        );
      }
    }
  });
});
