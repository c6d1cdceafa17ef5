import { sql } from "drizzle-orm";
import type { Database, Executor } from "../../db/client.ts";
import { recordsetJson } from "../../db/rows.ts";
import { auditEvents } from "../../db/schema/index.ts";
import { uuidv7 } from "../../lib/uuid.ts";
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

type AuditRow = typeof auditEvents.$inferInsert;

/** Most rows one group INSERT carries (15 parameters a row, far below Postgres's 65,535). */
const MAX_GROUP_ROWS = 1000;

interface Waiter {
  rows: AuditRow[];
  resolve: () => void;
  reject: (err: unknown) => void;
}

/**
 * INSERT `rows` into `audit_events` in one statement. One row: drizzle's prepared multi-parameter
 * INSERT. Several: `INSERT … SELECT … FROM jsonb_to_recordset($1)` with ONE bind parameter instead
 * of 15 per row — building a 50-row INSERT parameter by parameter in drizzle was ~20 % of the
 * reminder queue's server CPU (bench/results/optimisations.md §12). Same columns and values either
 * way: times as ISO-8601 UTC with milliseconds (what drizzle sends), `details` as jsonb, JSON null
 * and absent keys as SQL NULL.
 */
export async function insertAuditRows(db: Executor, rows: readonly AuditRow[]): Promise<void> {
  if (rows.length === 0) return;
  if (rows.length === 1) {
    await db.insert(auditEvents).values(rows as AuditRow[]);
    return;
  }
  const json = recordsetJson(
    rows.map((r) => ({
      id: r.id,
      occurred_at: r.occurredAt.toISOString(),
      actor_user_id: r.actorUserId ?? null,
      actor_role: r.actorRole ?? null,
      session_id: r.sessionId ?? null,
      organization_id: r.organizationId ?? null,
      action: r.action,
      resource_type: r.resourceType ?? null,
      resource_id: r.resourceId ?? null,
      patient_id: r.patientId ?? null,
      outcome: r.outcome,
      reason: r.reason ?? null,
      ip: r.ip ?? null,
      request_id: r.requestId ?? null,
      details: r.details ?? null,
    })),
  );
  await db
    .insert(auditEvents)
    .select(
      sql`select r.id, r.occurred_at, r.actor_user_id, r.actor_role, r.session_id, r.organization_id, r.action, r.resource_type, r.resource_id, r.patient_id, r.outcome, r.reason, r.ip, r.request_id, r.details from jsonb_to_recordset(${json}::jsonb) as r(id uuid, occurred_at timestamptz, actor_user_id uuid, actor_role "role", session_id text, organization_id uuid, action text, resource_type text, resource_id text, patient_id uuid, outcome audit_outcome, reason text, ip text, request_id text, details jsonb)`,
    );
}

/**
 * Group commit of audit rows written outside a transaction (reads, denials), one per database
 * handle. A caller's promise settles only when the INSERT that carries its rows has committed
 * (autocommit, so the rows are durable), or rejects with that INSERT's error; nothing is dropped
 * and nothing is acknowledged early. While one INSERT is in flight, rows of concurrent requests
 * queue and go out together in the next single INSERT (leader/follower group commit, no timer:
 * a lone request waits for nobody). A failing INSERT rejects EVERY waiter whose rows it carried
 * (the statement is atomic: none of its rows exist). Row ids (UUIDv7) and times are fixed by the
 * caller before queueing, and the chain sealer orders links by event id, so batching cannot
 * reorder the audit hash chain (server/audit/chain.ts).
 */
export class AuditGroupCommit {
  #queue: Waiter[] = [];
  #draining = false;
  /** INSERT statements issued so far (for tests and metrics). */
  statements = 0;
  /** Rows committed so far. */
  rows = 0;

  constructor(private readonly db: Database) {}

  /** Queue rows; resolves once they are committed, rejects with the INSERT's error. */
  append(rows: AuditRow[]): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.#queue.push({ rows, resolve, reject });
      if (!this.#draining) void this.#drain();
    });
  }

  async #drain(): Promise<void> {
    this.#draining = true;
    try {
      while (this.#queue.length > 0) {
        const group: Waiter[] = [];
        let count = 0;
        while (this.#queue.length > 0) {
          const next = this.#queue[0] as Waiter;
          if (group.length > 0 && count + next.rows.length > MAX_GROUP_ROWS) break;
          group.push(next);
          count += next.rows.length;
          this.#queue.shift();
        }
        const rows = group.flatMap((w) => w.rows);
        try {
          this.statements++;
          await insertAuditRows(this.db, rows);
          this.rows += rows.length;
          for (const w of group) w.resolve();
        } catch (err) {
          for (const w of group) w.reject(err);
        }
      }
    } finally {
      this.#draining = false;
    }
  }
}

const groupCommits = new WeakMap<object, AuditGroupCommit>();

/**
 * Turn on group commit for audit rows written through `db` itself (not through its transactions:
 * a transaction handle is another object, so rows written in one still go out in it, and commit or
 * roll back with the work). Idempotent. @returns the handle's group committer (its counters)
 */
export function enableAuditGroupCommit(db: Database): AuditGroupCommit {
  let group = groupCommits.get(db);
  if (!group) {
    group = new AuditGroupCommit(db);
    groupCommits.set(db, group);
  }
  return group;
}

/**
 * Append audit events (one INSERT for many). Call inside the transaction that does the work for
 * writes; for reads and denials call with the plain database so the record survives a rollback.
 * With the plain database and group commit on ({@link enableAuditGroupCommit}), concurrent calls
 * share one INSERT; the promise still settles only after this call's rows are committed.
 * @param at time of the event (UTC)
 * @throws the driver's error when the INSERT carrying these rows fails (the rows do not exist)
 */
export async function recordAudit(
  db: Executor,
  actor: AuditActor,
  events: AuditEvent | AuditEvent[],
  at: Date = new Date(),
): Promise<void> {
  const list = Array.isArray(events) ? events : [events];
  if (list.length === 0) return;
  const rows: AuditRow[] = list.map((e) => ({
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
  }));
  const group = groupCommits.get(db);
  if (group) return group.append(rows);
  await insertAuditRows(db, rows);
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
