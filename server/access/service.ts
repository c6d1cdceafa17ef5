import { and, asc, count, eq, gt, inArray, isNotNull, isNull, sql } from "drizzle-orm";
import type { z } from "zod";
import { auditEvents, breakGlassGrants, practitioners } from "../../db/schema/index.ts";
import type { Logger } from "../../lib/logger.ts";
import { uuidv7 } from "../../lib/uuid.ts";
import type { ServiceDeps } from "../deps.ts";
import { type AuditActor, auditDenial, recordAudit } from "../kernel/audit.ts";
import { decodeOptionalCursor, encodeCursor, keysetAfter } from "../kernel/cursor.ts";
import { ConflictError, ForbiddenError, NotFoundError } from "../kernel/errors.ts";
import type { Actor } from "../kernel/roles.ts";
import { verifyFreshTotp } from "../mfa/service.ts";
import { loadPatientFacts } from "../patients/access.ts";
import { canBreakGlass, canReviewGrant, canRevokeGrant, grantState } from "./policy.ts";
import type { grantOutput, reviewItem, reviewOutput } from "./schemas.ts";

/**
 * Break-the-glass (emergency access; HIPAA 45 CFR 164.312(a)(2)(ii)): a clinician without a care
 * relationship states a reason and re-authenticates with a fresh TOTP code, and may then read ONE
 * patient of their organization for a limited time. Every read under the grant is audited with
 * the grant (`access.break_glass_used`, see `server/patients/access.ts`), the patient's row rule
 * honours only grants that are granted, unexpired and unrevoked at the time of the read, and the
 * organization's admins review every grant (`audit.breakGlassReview`, 164.308(a)(1)(ii)(D)).
 */

export type Grant = z.infer<typeof grantOutput>;
export type ReviewItem = z.infer<typeof reviewItem>;
export type ReviewPage = z.infer<typeof reviewOutput>;

/** Where a grant's reason and review note are sealed (AAD table/column). */
const TABLE = "break_glass_grants";

function toGrant(
  row: { id: string; patientId: string; grantedAt: Date; expiresAt: Date; revokedAt: Date | null },
  now: Date,
): Grant {
  return {
    grantId: row.id,
    patientId: row.patientId,
    grantedAt: row.grantedAt,
    expiresAt: row.expiresAt,
    revokedAt: row.revokedAt,
    state: grantState(row, now),
  };
}

/**
 * {@link breakGlass}, then one warning line for log-based monitoring ("admins notified", 45 CFR
 * 164.308(a)(1)(ii)(D)): ids only, never the reason or any PHI.
 * @throws as {@link breakGlass}
 */
export async function breakGlassWithAlert(
  deps: ServiceDeps,
  alert: { log: Pick<Logger, "warn">; requestId: string },
  actor: Actor,
  auditActor: AuditActor,
  input: { patientId: string; reason: string; code: string },
  settings: { minutes: number },
): Promise<Grant> {
  const grant = await breakGlass(deps, actor, auditActor, input, settings);
  alert.log.warn(
    {
      grantId: grant.grantId,
      patientId: grant.patientId,
      userId: actor.userId,
      reqId: alert.requestId,
    },
    "break-the-glass access granted",
  );
  return grant;
}

/**
 * Open an emergency grant: `{ patientId, reason, code }` → the grant (expires `minutes` after now).
 * Order of checks: patient exists, the rule (`canBreakGlass`), then the fresh TOTP code (consumed
 * only by a request that would otherwise succeed). Every refusal is audited as `access.break_glass`
 * denied with its rule; the grant as allowed (the reason stays sealed in the grant).
 * @throws NotFoundError (patient); ForbiddenError (`role`, `other_organization`, or the MFA
 *   reasons `mfa_not_enrolled`, `mfa_code_invalid`, `mfa_code_reused`); ConflictError
 *   (`care_relationship_exists`); TooManyRequestsError (too many wrong codes)
 */
export async function breakGlass(
  deps: ServiceDeps,
  actor: Actor,
  auditActor: AuditActor,
  input: { patientId: string; reason: string; code: string },
  settings: { minutes: number },
): Promise<Grant> {
  const deny = <E extends Error>(rule: string, error: E): Promise<E> =>
    auditDenial(
      deps.db,
      auditActor,
      {
        action: "access.break_glass",
        resourceType: "Patient",
        resourceId: input.patientId,
        patientId: rule === "not_found" ? null : input.patientId,
        details: { rule },
      },
      error,
      deps.now(),
    );
  const facts = (await loadPatientFacts(deps, actor, [input.patientId])).get(input.patientId);
  if (!facts) {
    throw await deny("not_found", new NotFoundError("Patient not found"));
  }
  const decision = canBreakGlass(actor, {
    patientOrganizationId: facts.organizationId,
    activeCareRelationship: facts.activeCareRelationship,
  });
  if (!decision.allowed) {
    throw await deny(
      decision.rule,
      decision.rule === "care_relationship_exists"
        ? new ConflictError(
            "You already have access to this patient through a care relationship",
            decision.rule,
          )
        : new ForbiddenError("You may not use emergency access for this patient", decision.rule),
    );
  }
  try {
    await verifyFreshTotp(deps, actor.userId, input.code, auditActor);
  } catch (err) {
    // Rethrow the verifier's own error (throttle, bad code) once the denial is recorded.
    throw await deny("mfa", err as Error);
  }
  const id = uuidv7();
  const grantedAt = deps.now();
  const expiresAt = new Date(grantedAt.getTime() + settings.minutes * 60_000);
  await deps.db.transaction(async (tx) => {
    await tx.insert(breakGlassGrants).values({
      id,
      organizationId: facts.organizationId,
      patientId: input.patientId,
      userId: actor.userId,
      practitionerId: actor.practitionerId,
      reason: deps.crypto.seal(TABLE, "reason", id, input.reason),
      grantedAt,
      expiresAt,
    });
    await recordAudit(
      tx,
      auditActor,
      {
        action: "access.break_glass",
        outcome: "allowed",
        resourceType: "BreakGlassGrant",
        resourceId: id,
        patientId: input.patientId,
        reason: "break_glass",
        details: { grantId: id, minutes: settings.minutes },
      },
      grantedAt,
    );
  });
  return toGrant(
    { id, patientId: input.patientId, grantedAt, expiresAt, revokedAt: null },
    grantedAt,
  );
}

/**
 * End a grant now (`{ grantId }`): the clinician who holds it, or an admin of the patient's
 * organization. Idempotent: revoking a revoked grant returns it unchanged. Audited.
 * @throws NotFoundError (no such grant), ForbiddenError (neither holder nor the organization's admin)
 */
export async function revokeGrant(
  deps: ServiceDeps,
  actor: Actor,
  auditActor: AuditActor,
  grantId: string,
): Promise<Grant> {
  const [row] = await deps.db
    .select()
    .from(breakGlassGrants)
    .where(eq(breakGlassGrants.id, grantId))
    .limit(1);
  if (!row) throw new NotFoundError("Grant not found");
  if (!canRevokeGrant(actor, row)) {
    throw await auditDenial(
      deps.db,
      auditActor,
      {
        action: "access.break_glass_revoke",
        resourceType: "BreakGlassGrant",
        resourceId: grantId,
        patientId: row.patientId,
        details: { rule: actor.role === "admin" ? "other_organization" : "not_holder" },
      },
      new ForbiddenError("You may not revoke this grant"),
      deps.now(),
    );
  }
  const now = deps.now();
  if (row.revokedAt) return toGrant(row, now);
  const [updated] = await deps.db.transaction(async (tx) => {
    const rows = await tx
      .update(breakGlassGrants)
      .set({ revokedAt: now, revokedByUserId: actor.userId })
      .where(and(eq(breakGlassGrants.id, grantId), isNull(breakGlassGrants.revokedAt)))
      .returning();
    if (rows.length > 0) {
      await recordAudit(
        tx,
        auditActor,
        {
          action: "access.break_glass_revoke",
          outcome: "allowed",
          resourceType: "BreakGlassGrant",
          resourceId: grantId,
          patientId: row.patientId,
          details: { grantId },
        },
        now,
      );
    }
    return rows;
  });
  return toGrant(updated ?? row, now);
}

/** The caller's grants that are active now (no reasons; ids and times). */
export async function myActiveGrants(deps: ServiceDeps, actor: Actor): Promise<Grant[]> {
  const now = deps.now();
  const rows = await deps.db
    .select({
      id: breakGlassGrants.id,
      patientId: breakGlassGrants.patientId,
      grantedAt: breakGlassGrants.grantedAt,
      expiresAt: breakGlassGrants.expiresAt,
      revokedAt: breakGlassGrants.revokedAt,
    })
    .from(breakGlassGrants)
    .where(
      and(
        eq(breakGlassGrants.userId, actor.userId),
        gt(breakGlassGrants.expiresAt, now),
        isNull(breakGlassGrants.revokedAt),
      ),
    )
    .orderBy(asc(breakGlassGrants.expiresAt));
  return rows.map((r) => toGrant(r, now));
}

/**
 * The admins' review queue: grants of the admin's organization, oldest first (`status`
 * `pending` = not yet acknowledged), with the decrypted reason, the holder, state and how many
 * reads were made under each. Reading a reason is a disclosure: one `audit.break_glass_review` row
 * per listed grant (patient id, grant id).
 * @throws ValidationError (bad cursor)
 */
export async function reviewQueue(
  deps: ServiceDeps,
  actor: Actor,
  auditActor: AuditActor,
  input: { status: "pending" | "reviewed" | "all"; limit: number; cursor?: string | undefined },
): Promise<ReviewPage> {
  const after = decodeOptionalCursor(input.cursor);
  const g = breakGlassGrants;
  const rows = await deps.db
    .select({
      grant: g,
      practitionerName: practitioners.name,
    })
    .from(g)
    .leftJoin(practitioners, eq(practitioners.id, g.practitionerId))
    .where(
      and(
        eq(g.organizationId, actor.organizationId),
        input.status === "pending"
          ? isNull(g.reviewedAt)
          : input.status === "reviewed"
            ? isNotNull(g.reviewedAt)
            : undefined,
        keysetAfter(after, g.grantedAt, g.id, "asc"),
      ),
    )
    .orderBy(asc(g.grantedAt), asc(g.id))
    .limit(input.limit + 1);
  const page = rows.slice(0, input.limit).filter((r) => canReviewGrant(actor, r.grant));
  const counts = new Map<string, number>();
  if (page.length > 0) {
    const grantId = sql<string>`${auditEvents.details}->>'grantId'`;
    const used = await deps.db
      .select({ grantId, n: count() })
      .from(auditEvents)
      .where(
        and(
          eq(auditEvents.action, "access.break_glass_used"),
          inArray(
            auditEvents.patientId,
            page.map((r) => r.grant.patientId),
          ),
          inArray(
            grantId,
            page.map((r) => r.grant.id),
          ),
        ),
      )
      .groupBy(grantId);
    for (const u of used) counts.set(u.grantId, Number(u.n));
  }
  const now = deps.now();
  const items: ReviewItem[] = page.map(({ grant, practitionerName }) => ({
    grantId: grant.id,
    patientId: grant.patientId,
    clinician: {
      userId: grant.userId,
      practitionerId: grant.practitionerId,
      practitionerName: practitionerName ?? null,
    },
    reason: deps.crypto.open<string>(TABLE, "reason", grant.id, grant.reason),
    grantedAt: grant.grantedAt,
    expiresAt: grant.expiresAt,
    revokedAt: grant.revokedAt,
    state: grantState(grant, now),
    accessCount: counts.get(grant.id) ?? 0,
    review:
      grant.reviewedAt && grant.reviewOutcome
        ? {
            reviewedAt: grant.reviewedAt,
            reviewedByUserId: grant.reviewedByUserId,
            outcome: grant.reviewOutcome,
            note: grant.reviewNote
              ? deps.crypto.open<string>(TABLE, "review_note", grant.id, grant.reviewNote)
              : null,
          }
        : null,
  }));
  await recordAudit(
    deps.db,
    auditActor,
    items.length > 0
      ? items.map((i) => ({
          action: "audit.break_glass_review" as const,
          outcome: "allowed" as const,
          resourceType: "BreakGlassGrant",
          resourceId: i.grantId,
          patientId: i.patientId,
          details: { grantId: i.grantId },
        }))
      : [{ action: "audit.break_glass_review", outcome: "allowed", details: { results: 0 } }],
    now,
  );
  const last = page.at(-1);
  return {
    items,
    nextCursor:
      rows.length > input.limit && last ? encodeCursor(last.grant.grantedAt, last.grant.id) : null,
  };
}

/**
 * Acknowledge a grant after review (`{ grantId, outcome, note? }`): admins of the patient's
 * organization, once per grant (the note is sealed). Audited.
 * @throws NotFoundError, ForbiddenError (other organization), ConflictError (already reviewed)
 */
export async function acknowledgeGrant(
  deps: ServiceDeps,
  actor: Actor,
  auditActor: AuditActor,
  input: { grantId: string; outcome: "appropriate" | "inappropriate"; note?: string | undefined },
): Promise<NonNullable<ReviewItem["review"]>> {
  const [row] = await deps.db
    .select({
      id: breakGlassGrants.id,
      organizationId: breakGlassGrants.organizationId,
      userId: breakGlassGrants.userId,
      patientId: breakGlassGrants.patientId,
    })
    .from(breakGlassGrants)
    .where(eq(breakGlassGrants.id, input.grantId))
    .limit(1);
  if (!row) throw new NotFoundError("Grant not found");
  if (!canReviewGrant(actor, row)) {
    throw await auditDenial(
      deps.db,
      auditActor,
      {
        action: "audit.break_glass_acknowledge",
        resourceType: "BreakGlassGrant",
        resourceId: row.id,
        patientId: row.patientId,
        details: { rule: "other_organization" },
      },
      new ForbiddenError("You may not review this grant", "other_organization"),
      deps.now(),
    );
  }
  const now = deps.now();
  const note = input.note ? input.note : null;
  return deps.db.transaction(async (tx) => {
    const updated = await tx
      .update(breakGlassGrants)
      .set({
        reviewedAt: now,
        reviewedByUserId: actor.userId,
        reviewOutcome: input.outcome,
        reviewNote: note === null ? null : deps.crypto.seal(TABLE, "review_note", row.id, note),
      })
      .where(and(eq(breakGlassGrants.id, row.id), isNull(breakGlassGrants.reviewedAt)))
      .returning({ id: breakGlassGrants.id });
    if (updated.length === 0)
      throw new ConflictError("This grant was already reviewed", "already_reviewed");
    await recordAudit(
      tx,
      auditActor,
      {
        action: "audit.break_glass_acknowledge",
        outcome: "allowed",
        resourceType: "BreakGlassGrant",
        resourceId: row.id,
        patientId: row.patientId,
        details: { grantId: row.id, outcome: input.outcome },
      },
      now,
    );
    return { reviewedAt: now, reviewedByUserId: actor.userId, outcome: input.outcome, note };
  });
}
