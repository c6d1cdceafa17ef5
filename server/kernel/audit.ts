import { v7 as uuidv7 } from "uuid";
import type { Executor } from "../../db/client.ts";
import { auditEvents } from "../../db/schema/index.ts";
import type { AuditAction, AuditOutcome } from "./audit-actions.ts";
import type { Role } from "./roles.ts";

/** Who did something, as known from the request (ids only). */
export interface AuditActor {
  userId: string | null;
  role: Role | null;
  sessionId: string | null;
  organizationId: string | null;
  ip: string | null;
  requestId: string | null;
}

/** Haven itself (CLI key operations, background jobs): no user, session or request. */
export const SYSTEM_ACTOR: AuditActor = Object.freeze({
  userId: null,
  role: null,
  sessionId: null,
  organizationId: null,
  ip: null,
  requestId: null,
});

/** One audit record. `details` must hold ids, counts or codes only — never names or other PHI. */
export interface AuditEvent {
  action: AuditAction;
  outcome: AuditOutcome;
  resourceType?: string;
  resourceId?: string;
  patientId?: string | null;
  reason?: string | null;
  details?: Record<string, string | number | boolean | null>;
}

/**
 * Append audit events (one INSERT for many). Call inside the transaction that does the work for
 * writes; for reads and denials call with the plain database so the record survives a rollback.
 * @param at time of the event (UTC)
 */
export async function recordAudit(
  db: Executor,
  actor: AuditActor,
  events: AuditEvent | AuditEvent[],
  at: Date = new Date(),
): Promise<void> {
  const list = Array.isArray(events) ? events : [events];
  if (list.length === 0) return;
  await db.insert(auditEvents).values(
    list.map((e) => ({
      id: uuidv7(),
      occurredAt: at,
      actorUserId: actor.userId,
      actorRole: actor.role,
      sessionId: actor.sessionId,
      organizationId: actor.organizationId,
      action: e.action,
      resourceType: e.resourceType ?? null,
      resourceId: e.resourceId ?? null,
      patientId: e.patientId ?? null,
      outcome: e.outcome,
      reason: e.reason ?? null,
      ip: actor.ip,
      requestId: actor.requestId,
      details: e.details ?? null,
    })),
  );
}

/** A denial to record: an audit event whose outcome is always `denied`. */
export type DenialEvent = Omit<AuditEvent, "outcome">;

/**
 * Record a refusal, then hand back the error to throw — the ONE way a service refuses, so a
 * refusal cannot forget its audit row (45 CFR 164.312(b): denials are audited like access).
 * Write with the plain database, not the transaction being refused, so the record survives the
 * rollback. Call as `throw await auditDenial(deps.db, who, { action, … }, new ForbiddenError(…))`.
 * @param events one or more events; each is recorded with `outcome: "denied"`
 * @param at time of the refusal (UTC)
 * @returns `error`, unchanged, after the audit rows are written
 */
export async function auditDenial<E extends Error>(
  db: Executor,
  actor: AuditActor,
  events: DenialEvent | DenialEvent[],
  error: E,
  at: Date = new Date(),
): Promise<E> {
  const list = (Array.isArray(events) ? events : [events]).map(
    (e): AuditEvent => ({ ...e, outcome: "denied" }),
  );
  await recordAudit(db, actor, list, at);
  return error;
}
