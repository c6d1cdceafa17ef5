import type { Actor, Role } from "../kernel/roles.ts";

/**
 * Who may administer which account (pure functions, exhaustively tested in policy.test.ts).
 * Deny by default; least privilege (OWASP ASVS 4.1.3, 45 CFR 164.308(a)(4) access management).
 */

/** Roles an admin can give or take away with `auth.users.setRole`. Patients and service accounts
 * are tied to a patient record or an API key and never change role. */
export const ASSIGNABLE_ROLES = ["clinician", "staff", "admin"] as const satisfies readonly Role[];
export type AssignableRole = (typeof ASSIGNABLE_ROLES)[number];

export function isAssignable(role: Role): role is AssignableRole {
  return (ASSIGNABLE_ROLES as readonly Role[]).includes(role);
}

/** Facts about the account being administered. */
export interface TargetAccount {
  id: string;
  organizationId: string;
  role: Role;
}

export type AccountDecision =
  | { allowed: true }
  | { allowed: false; rule: "role" | "other_organization" | "self" | "service_account" };

/**
 * May `actor` change `target` (role, disable/enable, MFA reset)? Only an admin, only within their
 * organization, never themselves (an admin cannot lock themselves out or lift their own limits),
 * and never a service account (those are managed through their API key).
 */
export function canAdministerAccount(actor: Actor, target: TargetAccount): AccountDecision {
  if (actor.role !== "admin") return { allowed: false, rule: "role" };
  if (target.organizationId !== actor.organizationId)
    return { allowed: false, rule: "other_organization" };
  if (target.id === actor.userId) return { allowed: false, rule: "self" };
  if (target.role === "service") return { allowed: false, rule: "service_account" };
  return { allowed: true };
}

/** Which roles may `inviter` invite? Staff: portal patients. Admin: patients and the workforce. */
export function invitableRoles(inviter: Role): readonly Role[] {
  switch (inviter) {
    case "admin":
      return ["patient", "clinician", "staff", "admin"];
    case "staff":
      return ["patient"];
    case "patient":
    case "clinician":
    case "service":
      return [];
    default: {
      const unreachable: never = inviter;
      return unreachable;
    }
  }
}

/** May `from` become `to` through `auth.users.setRole`? */
export function canChangeRole(from: Role, to: Role): boolean {
  return isAssignable(from) && isAssignable(to) && from !== to;
}
