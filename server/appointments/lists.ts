import { and, asc, eq, gte, lt } from "drizzle-orm";
import type { z } from "zod";
import { appointments, organizations } from "../../db/schema/index.ts";
import type { ServiceDeps } from "../deps.ts";
import { type AuditActor, type AuditEvent, auditDenial, recordAudit } from "../kernel/audit.ts";
import { decodeOptionalCursor, encodeCursor, keysetAfter } from "../kernel/cursor.ts";
import { ForbiddenError, NotFoundError } from "../kernel/errors.ts";
import type { Actor } from "../kernel/roles.ts";
import { loadPractitioner } from "../scheduling/service.ts";
import { localDayBounds } from "../scheduling/slots.ts";
import type { scheduleOutput } from "./schemas.ts";
import { selectAppointmentRows, toScheduleItem } from "./view.ts";

export type SchedulePage = z.infer<typeof scheduleOutput>;

async function deny(
  deps: ServiceDeps,
  auditActor: AuditActor,
  resource: { type: string; id: string },
  rule: string,
  message: string,
): Promise<never> {
  throw await auditDenial(
    deps.db,
    auditActor,
    {
      action: "appointment.list",
      resourceType: resource.type,
      resourceId: resource.id,
      details: { rule },
    },
    new ForbiddenError(message, rule),
    deps.now(),
  );
}

/** Ascending keyset page over `(starts_at, id)` within `where`, serialized for `actor`. */
async function page(
  deps: ServiceDeps,
  actor: Actor,
  auditActor: AuditActor,
  where: ReturnType<typeof and>,
  input: { limit: number; cursor?: string | undefined },
  view: "day" | "practitioner",
  timeZone: string,
): Promise<SchedulePage> {
  const after = decodeOptionalCursor(input.cursor);
  const rows = await selectAppointmentRows(
    deps.db,
    and(where, keysetAfter(after, appointments.startsAt, appointments.id, "asc")),
  )
    .orderBy(asc(appointments.startsAt), asc(appointments.id))
    .limit(input.limit + 1);
  const items = rows.slice(0, input.limit);
  // Accounting of disclosures: one record per patient whose appointments were shown.
  const perPatient = new Map<string, number>();
  for (const r of items) perPatient.set(r.patientId, (perPatient.get(r.patientId) ?? 0) + 1);
  const events: AuditEvent[] = [...perPatient].map(([patientId, count]) => ({
    action: "appointment.list",
    outcome: "allowed",
    resourceType: "Patient",
    resourceId: patientId,
    patientId,
    details: { view, count },
  }));
  await recordAudit(deps.db, auditActor, events, deps.now());
  const last = items.at(-1);
  return {
    timeZone,
    items: items.map((r) => toScheduleItem(deps, actor, r)),
    nextCursor: rows.length > input.limit && last ? encodeCursor(last.startsAt, last.id) : null,
  };
}

/**
 * `appointments.day`: the front desk's list of one local day (`YYYY-MM-DD` in the clinic's zone,
 * so a 23- or 25-hour DST day is covered exactly), every status, ascending by start, cursor-paged,
 * optionally for one practitioner. Staff and admins of that organization only. Each patient shown
 * is audited as `appointment.list` (45 CFR 164.312(b)).
 * @throws NotFoundError (organization/practitioner), ForbiddenError (other organization; audited),
 *   ValidationError (cursor)
 */
export async function listDay(
  deps: ServiceDeps,
  actor: Actor,
  auditActor: AuditActor,
  input: {
    organizationId: string;
    date: string;
    practitionerId?: string | undefined;
    limit: number;
    cursor?: string | undefined;
  },
): Promise<SchedulePage> {
  if (input.organizationId !== actor.organizationId) {
    await deny(
      deps,
      auditActor,
      { type: "Organization", id: input.organizationId },
      "other_organization",
      "You may only list your own organization's appointments",
    );
  }
  const [org] = await deps.db
    .select({ timeZone: organizations.timezone })
    .from(organizations)
    .where(eq(organizations.id, input.organizationId))
    .limit(1);
  if (!org) throw new NotFoundError("Organization not found");
  const day = localDayBounds(input.date, org.timeZone);
  return page(
    deps,
    actor,
    auditActor,
    and(
      eq(appointments.organizationId, input.organizationId),
      gte(appointments.startsAt, day.startsAt),
      lt(appointments.startsAt, day.endsAt),
      input.practitionerId ? eq(appointments.practitionerId, input.practitionerId) : undefined,
    ),
    input,
    "day",
    org.timeZone,
  );
}

/**
 * `appointments.forPractitioner`: a practitioner's appointments starting in `[from, to)` (UTC, at
 * most 31 days), every status, ascending, cursor-paged. Clinicians: their own calendar (default);
 * staff/admins: any practitioner of their organization. Audited per patient shown.
 * @throws NotFoundError, ForbiddenError (audited), ValidationError (no practitioner, cursor)
 */
export async function listForPractitioner(
  deps: ServiceDeps,
  actor: Actor,
  auditActor: AuditActor,
  input: {
    practitionerId?: string | undefined;
    from: Date;
    to: Date;
    limit: number;
    cursor?: string | undefined;
  },
): Promise<SchedulePage> {
  const practitionerId = input.practitionerId ?? actor.practitionerId;
  if (!practitionerId) {
    await deny(
      deps,
      auditActor,
      { type: "Practitioner", id: "none" },
      "not_own_calendar",
      "Your account is not linked to a practitioner; pass practitionerId",
    );
  }
  const practitioner = await loadPractitioner(deps.db, practitionerId as string);
  const resource = { type: "Practitioner", id: practitioner.id };
  if (actor.role === "clinician" && actor.practitionerId !== practitioner.id) {
    await deny(
      deps,
      auditActor,
      resource,
      "not_own_calendar",
      "Clinicians may only list their own calendar",
    );
  }
  if (
    (actor.role === "staff" || actor.role === "admin") &&
    practitioner.organizationId !== actor.organizationId
  ) {
    await deny(
      deps,
      auditActor,
      resource,
      "other_organization",
      "This practitioner belongs to another organization",
    );
  }
  return page(
    deps,
    actor,
    auditActor,
    and(
      eq(appointments.practitionerId, practitioner.id),
      // Staff and admins see their organization's visits only, even of a shared practitioner.
      actor.role === "clinician"
        ? undefined
        : eq(appointments.organizationId, actor.organizationId),
      gte(appointments.startsAt, input.from),
      lt(appointments.startsAt, input.to),
    ),
    input,
    "practitioner",
    practitioner.timeZone,
  );
}
