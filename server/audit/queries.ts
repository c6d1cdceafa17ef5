import { and, desc, eq, gte, inArray, lt, or, type SQL } from "drizzle-orm";
import type { z } from "zod";
import type { Database } from "../../db/client.ts";
import { auditEvents, breakGlassGrants, patients, practitioners } from "../../db/schema/index.ts";
import type { ServiceDeps } from "../deps.ts";
import { type AuditActor, auditDenial, recordAudit } from "../kernel/audit.ts";
import type { AuditAction } from "../kernel/audit-actions.ts";
import { decodeOptionalCursor, encodeCursor, keysetAfter } from "../kernel/cursor.ts";
import { ForbiddenError, NotFoundError } from "../kernel/errors.ts";
import type { Actor } from "../kernel/roles.ts";
import { sealAuditChain, verifyAuditChain } from "./chain.ts";
import type { disclosureItem, forPatientOutput, searchOutput, verifyOutput } from "./schemas.ts";

/**
 * Reading the audit trail: the accounting of disclosures for one patient (HIPAA 45 CFR 164.528),
 * the admins' search, and chain verification. Every read of the trail is itself audited.
 */

export type DisclosureItem = z.infer<typeof disclosureItem>;
export type DisclosurePage = z.infer<typeof forPatientOutput>;
export type AuditSearchPage = z.infer<typeof searchOutput>;
export type VerifyReport = z.infer<typeof verifyOutput>;

interface Range {
  from?: Date | undefined;
  to?: Date | undefined;
  limit: number;
  cursor?: string | undefined;
}

/** Time range and keyset (newest first) conditions shared by both listings. */
function rangeConditions(input: Range): SQL[] {
  const after = decodeOptionalCursor(input.cursor);
  const out: SQL[] = [];
  if (input.from) out.push(gte(auditEvents.occurredAt, input.from));
  if (input.to) out.push(lt(auditEvents.occurredAt, input.to));
  const keyset = keysetAfter(after, auditEvents.occurredAt, auditEvents.id, "desc");
  if (keyset) out.push(keyset);
  return out;
}

function nextCursor<T extends { occurredAt: Date; id: string }>(
  rows: T[],
  limit: number,
): string | null {
  const last = rows[limit - 1];
  return rows.length > limit && last ? encodeCursor(last.occurredAt, last.id) : null;
}

/**
 * Accounting of disclosures: every audited access to one patient's record in `[from, to)` (UTC),
 * newest first, cursor-paginated — who (user, role, practitioner name), when, which action, the
 * outcome and why (access basis; for emergency access the grant and its decrypted reason).
 * Allowed for admins of the patient's organization and for the patient themself; a refusal is
 * audited as `audit.for_patient` denied, the listing as allowed.
 * @throws NotFoundError (no such patient), ForbiddenError (another patient / organization),
 *   ValidationError (bad cursor)
 */
export async function accountingForPatient(
  deps: ServiceDeps,
  actor: Actor,
  auditActor: AuditActor,
  input: Range & { patientId: string },
): Promise<DisclosurePage> {
  const [patient] = await deps.db
    .select({ id: patients.id, organizationId: patients.organizationId })
    .from(patients)
    .where(eq(patients.id, input.patientId))
    .limit(1);
  const rule = !patient
    ? actor.role === "patient"
      ? "not_self"
      : "not_found"
    : actor.role === "patient"
      ? actor.patientId === patient.id
        ? null
        : "not_self"
      : actor.role === "admin"
        ? actor.organizationId === patient.organizationId
          ? null
          : "other_organization"
        : "role";
  if (rule) {
    throw await auditDenial(
      deps.db,
      auditActor,
      {
        action: "audit.for_patient",
        resourceType: "Patient",
        resourceId: input.patientId,
        patientId: patient ? input.patientId : null,
        details: { rule },
      },
      rule === "not_found"
        ? new NotFoundError("Patient not found")
        : new ForbiddenError("You may not see this patient's access history", rule),
      deps.now(),
    );
  }
  const rows = await deps.db
    .select({
      id: auditEvents.id,
      occurredAt: auditEvents.occurredAt,
      actorUserId: auditEvents.actorUserId,
      actorRole: auditEvents.actorRole,
      action: auditEvents.action,
      outcome: auditEvents.outcome,
      resourceType: auditEvents.resourceType,
      reason: auditEvents.reason,
      ip: auditEvents.ip,
      requestId: auditEvents.requestId,
      details: auditEvents.details,
      practitionerName: practitioners.name,
    })
    .from(auditEvents)
    .leftJoin(practitioners, eq(practitioners.userId, auditEvents.actorUserId))
    .where(and(eq(auditEvents.patientId, input.patientId), ...rangeConditions(input)))
    .orderBy(desc(auditEvents.occurredAt), desc(auditEvents.id))
    .limit(input.limit + 1);
  const page = rows.slice(0, input.limit);
  const grantIds = [
    ...new Set(
      page.flatMap((r) => (typeof r.details?.grantId === "string" ? [r.details.grantId] : [])),
    ),
  ].filter((id) => /^[0-9a-f-]{36}$/.test(id));
  const reasons = new Map<string, string>();
  if (grantIds.length > 0) {
    const grants = await deps.db
      .select({ id: breakGlassGrants.id, reason: breakGlassGrants.reason })
      .from(breakGlassGrants)
      .where(
        and(
          inArray(breakGlassGrants.id, grantIds),
          eq(breakGlassGrants.patientId, input.patientId),
        ),
      );
    for (const g of grants) {
      reasons.set(g.id, deps.crypto.open<string>("break_glass_grants", "reason", g.id, g.reason));
    }
  }
  const admin = actor.role === "admin";
  const items: DisclosureItem[] = page.map((r) => {
    const grantId = typeof r.details?.grantId === "string" ? r.details.grantId : null;
    const basis =
      typeof r.details?.basis === "string"
        ? r.details.basis
        : r.reason === "break_glass"
          ? "break_glass"
          : null;
    return {
      id: r.id,
      occurredAt: r.occurredAt,
      actor: {
        userId: r.actorUserId,
        role: r.actorRole,
        practitionerName: r.practitionerName ?? null,
      },
      action: r.action,
      outcome: r.outcome,
      resourceType: r.resourceType,
      basis,
      breakGlass:
        grantId && basis === "break_glass"
          ? { grantId, reason: reasons.get(grantId) ?? null }
          : null,
      ...(admin ? { ip: r.ip, requestId: r.requestId } : {}),
    };
  });
  await recordAudit(
    deps.db,
    auditActor,
    {
      action: "audit.for_patient",
      outcome: "allowed",
      resourceType: "Patient",
      resourceId: input.patientId,
      patientId: input.patientId,
      details: { results: items.length },
    },
    deps.now(),
  );
  return { items, nextCursor: nextCursor(rows, input.limit) };
}

/**
 * Admins' audit search over their organization's trail (events by its members, or about its
 * patients), newest first, cursor-paginated, filtered by actor, action, outcome, patient and time
 * range `[from, to)` (UTC). Audit rows hold ids and codes only. The search is audited with the
 * names of the filters used.
 * @throws ValidationError (bad cursor)
 */
export async function searchAudit(
  deps: ServiceDeps,
  actor: Actor,
  auditActor: AuditActor,
  input: Range & {
    actorUserId?: string | undefined;
    action?: AuditAction | undefined;
    outcome?: "allowed" | "denied" | "error" | undefined;
    patientId?: string | undefined;
  },
): Promise<AuditSearchPage> {
  const scope = or(
    eq(auditEvents.organizationId, actor.organizationId),
    inArray(
      auditEvents.patientId,
      deps.db
        .select({ id: patients.id })
        .from(patients)
        .where(eq(patients.organizationId, actor.organizationId)),
    ),
  );
  const rows = await deps.db
    .select({
      id: auditEvents.id,
      occurredAt: auditEvents.occurredAt,
      actorUserId: auditEvents.actorUserId,
      actorRole: auditEvents.actorRole,
      organizationId: auditEvents.organizationId,
      action: auditEvents.action,
      outcome: auditEvents.outcome,
      resourceType: auditEvents.resourceType,
      resourceId: auditEvents.resourceId,
      patientId: auditEvents.patientId,
      reason: auditEvents.reason,
      ip: auditEvents.ip,
      requestId: auditEvents.requestId,
      details: auditEvents.details,
    })
    .from(auditEvents)
    .where(
      and(
        scope,
        input.actorUserId ? eq(auditEvents.actorUserId, input.actorUserId) : undefined,
        input.action ? eq(auditEvents.action, input.action) : undefined,
        input.outcome ? eq(auditEvents.outcome, input.outcome) : undefined,
        input.patientId ? eq(auditEvents.patientId, input.patientId) : undefined,
        ...rangeConditions(input),
      ),
    )
    .orderBy(desc(auditEvents.occurredAt), desc(auditEvents.id))
    .limit(input.limit + 1);
  const filters = (["actorUserId", "action", "outcome", "patientId", "from", "to"] as const)
    .filter((k) => input[k] !== undefined)
    .join(",");
  await recordAudit(
    deps.db,
    auditActor,
    {
      action: "audit.search",
      outcome: "allowed",
      patientId: input.patientId ?? null,
      details: { results: Math.min(rows.length, input.limit), filters: filters || null },
    },
    deps.now(),
  );
  return { items: rows.slice(0, input.limit), nextCursor: nextCursor(rows, input.limit) };
}

/**
 * Seal every unsealed event (full scan), then verify the whole chain; audited as `audit.verify`
 * (outcome `error` when the chain is broken) with the counts.
 * @param anchor a head recorded earlier that must still be in the chain
 */
export async function verifyAuditTrail(
  deps: ServiceDeps & { db: Database },
  auditActor: AuditActor,
  anchor?: { seq: number; hash: string },
): Promise<VerifyReport> {
  const sealed = await sealAuditChain(deps.db, { full: true });
  const result = await verifyAuditChain(deps.db, anchor ? { anchor } : {});
  await recordAudit(
    deps.db,
    auditActor,
    {
      action: "audit.verify",
      outcome: result.ok ? "allowed" : "error",
      details: {
        links: result.links,
        problems: result.problemCount,
        firstBrokenSeq: result.firstBroken?.seq ?? null,
      },
    },
    deps.now(),
  );
  return { ...result, sealed: sealed.sealed };
}
