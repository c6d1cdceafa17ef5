import { and, desc, eq } from "drizzle-orm";
import type { z } from "zod";
import { appointments, practitioners } from "../../db/schema/index.ts";
import type { ServiceDeps } from "../deps.ts";
import { type AuditActor, recordAudit } from "../kernel/audit.ts";
import { decodeOptionalCursor, encodeCursor, keysetAfter } from "../kernel/cursor.ts";
import type { Actor } from "../kernel/roles.ts";
import { assertCanReadPatient } from "../patients/access.ts";
import { patientViewFor } from "../patients/policy.ts";
import type { listForPatientOutput } from "./schemas.ts";

export type AppointmentPage = z.infer<typeof listForPatientOutput>;

/**
 * A patient's appointments, newest first, with keyset pagination.
 * The row rule is the patient record's rule (`canReadPatient`); the visit reason is decrypted only
 * for roles whose view includes it. Audited as `appointment.list`.
 * @throws NotFoundError, ForbiddenError, ValidationError (bad cursor)
 */
export async function listForPatient(
  deps: ServiceDeps,
  actor: Actor,
  auditActor: AuditActor,
  input: { patientId: string; limit: number; cursor?: string | undefined },
): Promise<AppointmentPage> {
  const after = decodeOptionalCursor(input.cursor);
  await assertCanReadPatient(deps, actor, auditActor, input.patientId, "appointment.list");
  const view = patientViewFor(actor.role);
  const rows = await deps.db
    .select({ a: appointments, practitionerName: practitioners.name })
    .from(appointments)
    .innerJoin(practitioners, eq(practitioners.id, appointments.practitionerId))
    .where(
      and(
        eq(appointments.patientId, input.patientId),
        keysetAfter(after, appointments.startsAt, appointments.id, "desc"),
      ),
    )
    .orderBy(desc(appointments.startsAt), desc(appointments.id))
    .limit(input.limit + 1);
  const page = rows.slice(0, input.limit);
  const last = page.at(-1);
  await recordAudit(
    deps.db,
    auditActor,
    {
      action: "appointment.list",
      outcome: "allowed",
      resourceType: "Patient",
      resourceId: input.patientId,
      patientId: input.patientId,
      details: { count: page.length },
    },
    deps.now(),
  );
  return {
    items: page.map(({ a, practitionerName }) => ({
      id: a.id,
      organizationId: a.organizationId,
      patientId: a.patientId,
      practitioner: { id: a.practitionerId, name: practitionerName },
      startsAt: a.startsAt,
      endsAt: a.endsAt,
      status: a.status,
      reason:
        view.appointmentReasons && a.reason
          ? deps.crypto.open<string>("appointments", "reason", a.id, a.reason)
          : null,
      version: a.version,
    })),
    nextCursor: rows.length > input.limit && last ? encodeCursor(last.a.startsAt, last.a.id) : null,
  };
}
