import { and, asc, eq, gt, max, sql } from "drizzle-orm";
import type { Executor } from "../../db/client.ts";
import { appointmentChanges } from "../../db/schema/index.ts";
import type { FeedScope } from "./policy.ts";

/**
 * The appointment change log and its wake-up signal.
 *
 * Every committed appointment change appends one row (ids only) to `appointment_changes` and sends
 * `NOTIFY haven_appointment_changes, '{"o":org,"p":practitioner,"s":seq}'` in the SAME transaction,
 * so listeners on every instance wake exactly when the change becomes visible, and never for a
 * rolled-back one. Payloads carry ids only; subscribers re-read the log and the appointment
 * through their own policy.
 *
 * Ordering: before taking a `seq`, a writer takes a transaction-scoped advisory lock for its
 * organization. Within an organization, then, a row with a higher `seq` commits after every row
 * with a lower one, so a reader that resumes "after seq n" for that organization can never miss a
 * row committed later with a smaller `seq` (a plain identity column alone would allow that).
 */
export const CHANGES_CHANNEL = "haven_appointment_changes";

export type ChangeKind = (typeof appointmentChanges.$inferSelect)["kind"];

export interface ChangeRow {
  seq: number;
  appointmentId: string;
  practitionerId: string;
  patientId: string;
  kind: ChangeKind;
  occurredAt: Date;
}

/** A NOTIFY payload, parsed. */
export interface ChangeSignal {
  organizationId: string;
  practitionerId: string;
  seq: number;
}

/**
 * Append a change and signal it; call as the LAST statement of the transaction that made the
 * change (the organization lock is then held only for the commit).
 * @returns the change's `seq` (the SSE event id)
 */
export async function recordChange(
  tx: Executor,
  change: {
    organizationId: string;
    appointmentId: string;
    practitionerId: string;
    patientId: string;
    kind: ChangeKind;
    occurredAt: Date;
  },
): Promise<number> {
  await tx.execute(
    sql`SELECT pg_advisory_xact_lock(hashtextextended(${`haven.appointment_changes:${change.organizationId}`}, 0))`,
  );
  const [row] = await tx
    .insert(appointmentChanges)
    .values(change)
    .returning({ seq: appointmentChanges.seq });
  if (!row) throw new Error("change log insert returned nothing");
  const payload = JSON.stringify({
    o: change.organizationId,
    p: change.practitionerId,
    s: row.seq,
  });
  await tx.execute(sql`SELECT pg_notify(${CHANGES_CHANNEL}, ${payload})`);
  return row.seq;
}

/** Parse a NOTIFY payload; null when it is not one of ours. */
export function parseSignal(payload: string): ChangeSignal | null {
  try {
    const v = JSON.parse(payload) as { o?: unknown; p?: unknown; s?: unknown };
    if (typeof v.o !== "string" || typeof v.p !== "string" || typeof v.s !== "number") return null;
    return { organizationId: v.o, practitionerId: v.p, seq: v.s };
  } catch {
    return null;
  }
}

/** Does a signal concern a subscriber with this scope? */
export function signalMatches(signal: ChangeSignal, scope: FeedScope): boolean {
  return (
    signal.organizationId === scope.organizationId &&
    (scope.practitionerId === null || scope.practitionerId === signal.practitionerId)
  );
}

function scopeWhere(scope: FeedScope) {
  return and(
    eq(appointmentChanges.organizationId, scope.organizationId),
    scope.practitionerId ? eq(appointmentChanges.practitionerId, scope.practitionerId) : undefined,
  );
}

/** Changes in `scope` after `afterSeq`, oldest first, at most `limit`. */
export async function readChanges(
  db: Executor,
  scope: FeedScope,
  afterSeq: number,
  limit: number,
): Promise<ChangeRow[]> {
  return db
    .select({
      seq: appointmentChanges.seq,
      appointmentId: appointmentChanges.appointmentId,
      practitionerId: appointmentChanges.practitionerId,
      patientId: appointmentChanges.patientId,
      kind: appointmentChanges.kind,
      occurredAt: appointmentChanges.occurredAt,
    })
    .from(appointmentChanges)
    .where(and(scopeWhere(scope), gt(appointmentChanges.seq, afterSeq)))
    .orderBy(asc(appointmentChanges.seq))
    .limit(limit);
}

/**
 * The newest committed `seq` of the scope's ORGANIZATION (0 when none): a new subscriber starts
 * after it. It must be the organization's, not the global maximum, for the ordering guarantee.
 */
export async function latestSeq(db: Executor, scope: FeedScope): Promise<number> {
  const [row] = await db
    .select({ seq: max(appointmentChanges.seq) })
    .from(appointmentChanges)
    .where(eq(appointmentChanges.organizationId, scope.organizationId));
  return Number(row?.seq ?? 0);
}
