import { eq, inArray } from "drizzle-orm";
import type { DatabaseHandle } from "../../db/client.ts";
import { appointments, sessions, users } from "../../db/schema/index.ts";
import type { ServiceDeps } from "../deps.ts";
import { type AuditActor, auditDenial, recordAudit } from "../kernel/audit.ts";
import { ForbiddenError, UnauthorizedError } from "../kernel/errors.ts";
import { type Actor, isPrivileged } from "../kernel/roles.ts";
import { loadPractitioner } from "../scheduling/service.ts";
import {
  CHANGES_CHANNEL,
  type ChangeKind,
  latestSeq,
  parseSignal,
  readChanges,
  signalMatches,
} from "./changes.ts";
import { canReadAppointment, type FeedScope, resolveFeedScope } from "./policy.ts";
import { type ScheduleItem, selectAppointmentRows, toScheduleItem } from "./view.ts";

/** One change as a subscriber receives it; `id` is the resumable SSE event id (the log's seq). */
export interface FeedEvent {
  id: string;
  data: { kind: ChangeKind; occurredAt: Date; appointment: ScheduleItem };
}

export interface FeedDeps {
  deps: ServiceDeps;
  pubsub: Pick<DatabaseHandle, "listen">;
  /** Idle timeout of privileged sessions, minutes (automatic logoff applies to live feeds too). */
  idleTimeoutMinutes: number;
  /** Re-read the log at least this often even without a NOTIFY, ms. */
  pollMs: number;
}
const BATCH = 100;

/** A wake-up latch: `wake()` before `wait()` is not lost. */
class Waker {
  #pending = false;
  #release: (() => void) | null = null;

  wake(): void {
    this.#pending = true;
    this.#release?.();
  }

  async wait(ms: number, signal: AbortSignal): Promise<void> {
    if (!this.#pending && !signal.aborted) {
      await new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(timer);
          signal.removeEventListener("abort", done);
          this.#release = null;
          resolve();
        };
        const timer = setTimeout(done, ms);
        signal.addEventListener("abort", done, { once: true });
        this.#release = done;
      });
    }
    this.#pending = false;
  }
}

/**
 * The session behind a live feed must still be valid: not revoked, not past its absolute
 * lifetime, not idle for a privileged role (45 CFR 164.312(a)(2)(iii) automatic logoff), and the
 * account not disabled. Checked before every delivery and every poll.
 * @throws UnauthorizedError when it has ended
 */
async function assertSessionLive(f: FeedDeps, actor: Actor): Promise<void> {
  const [row] = await f.deps.db
    .select({
      expiresAt: sessions.expiresAt,
      lastSeenAt: sessions.lastSeenAt,
      disabledAt: users.disabledAt,
    })
    .from(sessions)
    .innerJoin(users, eq(users.id, sessions.userId))
    .where(eq(sessions.id, actor.sessionId))
    .limit(1);
  const now = f.deps.now().getTime();
  const idleEnded =
    row !== undefined &&
    isPrivileged(actor.role) &&
    now >= row.lastSeenAt.getTime() + f.idleTimeoutMinutes * 60_000;
  if (!row || row.disabledAt !== null || now >= row.expiresAt.getTime() || idleEnded) {
    throw new UnauthorizedError("Your session has ended; sign in again", "session_ended");
  }
}

/**
 * Resolve and authorize the scope of a subscription. Denials are audited.
 * @throws NotFoundError (practitioner), ForbiddenError
 */
export async function resolveScope(
  deps: ServiceDeps,
  actor: Actor,
  auditActor: AuditActor,
  input: { organizationId?: string | undefined; practitionerId?: string | undefined },
): Promise<FeedScope> {
  const practitionerId =
    input.practitionerId ?? (actor.role === "clinician" ? actor.practitionerId : null);
  const practitionerOrg = practitionerId
    ? (await loadPractitioner(deps.db, practitionerId)).organizationId
    : null;
  const decision = resolveFeedScope(actor, input, practitionerOrg);
  if (!decision.allowed) {
    throw await auditDenial(
      deps.db,
      auditActor,
      {
        action: "appointment.subscribe",
        resourceType: input.practitionerId ? "Practitioner" : "Organization",
        resourceId: input.practitionerId ?? input.organizationId ?? actor.organizationId,
        details: { rule: decision.rule },
      },
      new ForbiddenError(
        decision.rule === "not_own_calendar"
          ? "Clinicians may only watch their own calendar"
          : decision.rule === "role"
            ? "Your role may not watch appointment changes"
            : "You may only watch your own organization",
        decision.rule,
      ),
      deps.now(),
    );
  }
  return decision.scope;
}

/**
 * `appointments.onChange`: changes in the subscriber's scope, in commit order, as they happen,
 * resumable after `lastEventId`. Instances learn of changes through Postgres LISTEN/NOTIFY (ids
 * only) and every subscriber re-reads the change log and the appointments through its OWN policy
 * and serializer, so a subscriber never receives what it could not read with a query. Each
 * delivered appointment is audited as `appointment.read` (via `subscription`).
 * Ends when `signal` aborts (client gone).
 * @throws ForbiddenError (scope; audited), NotFoundError, UnauthorizedError (session ended)
 */
export async function* watchChanges(
  f: FeedDeps,
  actor: Actor,
  auditActor: AuditActor,
  input: {
    organizationId?: string | undefined;
    practitionerId?: string | undefined;
    lastEventId?: string | null | undefined;
  },
  signal: AbortSignal,
): AsyncGenerator<FeedEvent, void, undefined> {
  const { deps } = f;
  const scope = await resolveScope(deps, actor, auditActor, input);
  const waker = new Waker();
  // Listen BEFORE reading the starting point, so nothing committed in between is missed.
  const unlisten = await f.pubsub.listen(
    CHANGES_CHANNEL,
    (payload) => {
      const s = parseSignal(payload);
      if (s && signalMatches(s, scope)) waker.wake();
    },
    () => waker.wake(),
  );
  try {
    let cursor = input.lastEventId ? Number(input.lastEventId) : await latestSeq(deps.db, scope);
    await recordAudit(
      deps.db,
      auditActor,
      {
        action: "appointment.subscribe",
        outcome: "allowed",
        resourceType: scope.practitionerId ? "Practitioner" : "Organization",
        resourceId: scope.practitionerId ?? scope.organizationId,
        details: { resumed: Boolean(input.lastEventId), after: cursor },
      },
      deps.now(),
    );
    while (!signal.aborted) {
      await assertSessionLive(f, actor);
      const changes = await readChanges(deps.db, scope, cursor, BATCH);
      if (changes.length > 0) {
        const rows = await selectAppointmentRows(
          deps.db,
          inArray(
            appointments.id,
            changes.map((c) => c.appointmentId),
          ),
        );
        const byId = new Map(rows.map((r) => [r.id, r]));
        const events: FeedEvent[] = [];
        for (const c of changes) {
          const row = byId.get(c.appointmentId);
          // Scope already limits clinicians to their own calendar, so no care lookup is needed.
          if (row && canReadAppointment(actor, { ...row, activeCareRelationship: false }).allowed) {
            events.push({
              id: String(c.seq),
              data: {
                kind: c.kind,
                occurredAt: c.occurredAt,
                appointment: toScheduleItem(deps, actor, row),
              },
            });
          }
        }
        await recordAudit(
          deps.db,
          auditActor,
          events.map((e) => ({
            action: "appointment.read" as const,
            outcome: "allowed" as const,
            resourceType: "Appointment",
            resourceId: e.data.appointment.id,
            patientId: e.data.appointment.patientId,
            details: { via: "subscription", seq: Number(e.id) },
          })),
          deps.now(),
        );
        for (const e of events) yield e;
        cursor = changes.at(-1)?.seq ?? cursor;
        if (changes.length === BATCH) continue;
      }
      await waker.wait(f.pollMs, signal);
    }
  } finally {
    try {
      await unlisten();
    } catch {
      // the database is closing; nothing left to unlisten from
    }
  }
}
