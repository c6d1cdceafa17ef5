import type { Actor } from "../kernel/roles.ts";

/**
 * Break-the-glass rules (emergency access; HIPAA 45 CFR 164.312(a)(2)(ii) emergency access
 * procedure, 164.308(a)(1)(ii)(D) activity review). Pure functions, exhaustively tested.
 */

/** What the rules need to know about the patient and the clinician's existing access. */
export interface BreakGlassFacts {
  patientOrganizationId: string;
  /** The clinician already has an active care relationship with the patient. */
  activeCareRelationship: boolean;
}

export type BreakGlassDecision =
  | { allowed: true }
  | { allowed: false; rule: "role" | "other_organization" | "care_relationship_exists" };

/**
 * May `actor` open an emergency grant for this patient? Only clinicians, only for patients of
 * their own organization, and only when they have no care relationship (which already gives
 * access; a grant would only add noise to the review queue).
 */
export function canBreakGlass(actor: Actor, facts: BreakGlassFacts): BreakGlassDecision {
  if (actor.role !== "clinician") return { allowed: false, rule: "role" };
  if (actor.organizationId !== facts.patientOrganizationId) {
    return { allowed: false, rule: "other_organization" };
  }
  if (actor.practitionerId !== null && facts.activeCareRelationship) {
    return { allowed: false, rule: "care_relationship_exists" };
  }
  return { allowed: true };
}

/** A grant as the revocation and review rules see it. */
export interface GrantFacts {
  organizationId: string;
  userId: string;
}

/** The clinician who holds the grant, or an admin of the patient's organization, may revoke it. */
export function canRevokeGrant(actor: Actor, grant: GrantFacts): boolean {
  if (actor.role === "admin") return actor.organizationId === grant.organizationId;
  if (actor.role === "clinician") return actor.userId === grant.userId;
  return false;
}

/** Only admins of the patient's organization review (see the reason of, acknowledge) a grant. */
export function canReviewGrant(actor: Actor, grant: GrantFacts): boolean {
  return actor.role === "admin" && actor.organizationId === grant.organizationId;
}

/** A grant's state at `now` (UTC): revoked wins over expired; a grant ends AT `expiresAt`. */
export function grantState(
  grant: { expiresAt: Date; revokedAt: Date | null },
  now: Date,
): "active" | "expired" | "revoked" {
  if (grant.revokedAt && grant.revokedAt.getTime() <= now.getTime()) return "revoked";
  if (grant.expiresAt.getTime() <= now.getTime()) return "expired";
  return "active";
}
