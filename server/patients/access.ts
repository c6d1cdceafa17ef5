import { and, eq, gt, inArray, isNull, lte, or } from "drizzle-orm";
import { careRelationships, patients } from "../../db/schema/index.ts";
import type { AuditAction } from "../audit/actions.ts";
import { type AuditActor, recordAudit } from "../audit/service.ts";
import type { Actor } from "../auth/roles.ts";
import type { ServiceDeps } from "../deps.ts";
import { ForbiddenError, NotFoundError } from "../errors.ts";
import { canReadPatient, type PatientFacts } from "./policy.ts";

/**
 * Load the facts `canReadPatient` needs for the given patients (one query each for rows and
 * care relationships). Unknown ids are absent from the map.
 */
export async function loadPatientFacts(
  deps: ServiceDeps,
  actor: Actor,
  patientIds: string[],
): Promise<Map<string, PatientFacts>> {
  const facts = new Map<string, PatientFacts>();
  if (patientIds.length === 0) return facts;
  const rows = await deps.db
    .select({ id: patients.id, organizationId: patients.organizationId })
    .from(patients)
    .where(inArray(patients.id, patientIds));
  const withCare = new Set<string>();
  if (actor.role === "clinician" && actor.practitionerId && rows.length > 0) {
    const now = deps.now();
    const rels = await deps.db
      .select({ patientId: careRelationships.patientId })
      .from(careRelationships)
      .where(
        and(
          eq(careRelationships.practitionerId, actor.practitionerId),
          inArray(
            careRelationships.patientId,
            rows.map((r) => r.id),
          ),
          lte(careRelationships.validFrom, now),
          or(isNull(careRelationships.validTo), gt(careRelationships.validTo, now)),
        ),
      );
    for (const r of rels) withCare.add(r.patientId);
  }
  for (const r of rows) {
    facts.set(r.id, {
      patientId: r.id,
      organizationId: r.organizationId,
      activeCareRelationship: withCare.has(r.id),
    });
  }
  return facts;
}

/**
 * Enforce the row-level rule for one patient. A refusal is audited as `denied` (with the rule, no
 * PHI) before it is thrown.
 * @throws NotFoundError when the patient does not exist; ForbiddenError when the rule refuses
 */
export async function assertCanReadPatient(
  deps: ServiceDeps,
  actor: Actor,
  auditActor: AuditActor,
  patientId: string,
  action: AuditAction,
): Promise<PatientFacts> {
  const facts = (await loadPatientFacts(deps, actor, [patientId])).get(patientId);
  if (!facts) {
    await recordAudit(
      deps.db,
      auditActor,
      {
        action,
        outcome: "denied",
        resourceType: "Patient",
        resourceId: patientId,
        details: { rule: "not_found" },
      },
      deps.now(),
    );
    throw new NotFoundError("Patient not found");
  }
  const decision = canReadPatient(actor, facts);
  if (!decision.allowed) {
    await recordAudit(
      deps.db,
      auditActor,
      {
        action,
        outcome: "denied",
        resourceType: "Patient",
        resourceId: patientId,
        patientId,
        details: { rule: decision.rule },
      },
      deps.now(),
    );
    throw new ForbiddenError("You may not access this patient's record", decision.rule);
  }
  return facts;
}
