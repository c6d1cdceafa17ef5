import { and, desc, eq, inArray } from "drizzle-orm";
import type { z } from "zod";
import { clinicalEntries, patients } from "../../db/schema/index.ts";
import { type AuditActor, recordAudit } from "../audit/service.ts";
import type { Actor } from "../auth/roles.ts";
import type { ServiceDeps } from "../deps.ts";
import { assertCanReadPatient, loadPatientFacts } from "./access.ts";
import type { Demographics } from "./demographics.ts";
import { canReadPatient, patientViewFor } from "./policy.ts";
import type { getOutput, searchInput, searchOutput } from "./schemas.ts";

export type SearchInput = z.infer<typeof searchInput>;
export type SearchResult = z.infer<typeof searchOutput>;
export type PatientRecord = z.infer<typeof getOutput>;

/**
 * Exact-match patient search through blind indexes: by MRN, or by family name + birth date
 * (`YYYY-MM-DD`). Returns only patients the actor may read; each returned patient is audited as
 * `patient.search` (HIPAA accounting of disclosures), an empty search once with `results: 0`.
 */
export async function searchPatients(
  deps: ServiceDeps,
  actor: Actor,
  auditActor: AuditActor,
  input: SearchInput,
): Promise<SearchResult> {
  const where =
    "mrn" in input
      ? eq(patients.mrnIndex, deps.crypto.index("patient.mrn", input.mrn))
      : eq(patients.familyBirthIndex, deps.crypto.familyBirth(input.family, input.birthDate));
  const scope =
    actor.role === "staff" || actor.role === "admin"
      ? and(where, eq(patients.organizationId, actor.organizationId))
      : where;
  const rows = await deps.db
    .select({
      id: patients.id,
      organizationId: patients.organizationId,
      demographics: patients.demographics,
    })
    .from(patients)
    .where(scope)
    .limit(50);
  const facts = await loadPatientFacts(
    deps,
    actor,
    rows.map((r) => r.id),
  );
  const visible = rows.filter((r) => {
    const f = facts.get(r.id);
    return f !== undefined && canReadPatient(actor, f).allowed;
  });
  const results = visible.map((r) => {
    const d = deps.crypto.open<Demographics>("patients", "demographics", r.id, r.demographics);
    return {
      id: r.id,
      organizationId: r.organizationId,
      name: { family: d.name.family, given: d.name.given },
      birthDate: d.birthDate,
      sex: d.sex,
      mrn: d.mrn,
    };
  });
  await recordAudit(
    deps.db,
    auditActor,
    results.length > 0
      ? results.map((r) => ({
          action: "patient.search" as const,
          outcome: "allowed" as const,
          resourceType: "Patient",
          resourceId: r.id,
          patientId: r.id,
          details: { by: "mrn" in input ? "mrn" : "family_birth" },
        }))
      : [
          {
            action: "patient.search",
            outcome: "allowed",
            details: { by: "mrn" in input ? "mrn" : "family_birth", results: 0 },
          },
        ],
    deps.now(),
  );
  return results;
}

/**
 * Read one patient's record: decrypted demographics and the most recent clinical entries
 * (`entryLimit`, newest first). Clinical bodies only for roles whose view allows them.
 * Audited as `patient.read` (allowed or denied).
 * @throws NotFoundError, ForbiddenError
 */
export async function getPatient(
  deps: ServiceDeps,
  actor: Actor,
  auditActor: AuditActor,
  input: { patientId: string; entryLimit: number },
): Promise<PatientRecord> {
  await assertCanReadPatient(deps, actor, auditActor, input.patientId, "patient.read");
  const view = patientViewFor(actor.role);
  const [row] = await deps.db
    .select()
    .from(patients)
    .where(eq(patients.id, input.patientId))
    .limit(1);
  if (!row) throw new Error("patient vanished between policy check and read");
  const entryRows = await deps.db
    .select()
    .from(clinicalEntries)
    .where(eq(clinicalEntries.patientId, row.id))
    .orderBy(desc(clinicalEntries.recordedAt), desc(clinicalEntries.id))
    .limit(input.entryLimit + 1);
  const truncated = entryRows.length > input.entryLimit;
  const entries = entryRows.slice(0, input.entryLimit).map((e) => ({
    id: e.id,
    kind: e.kind,
    recordedAt: e.recordedAt,
    source: e.source,
    ...(view.clinicalBodies
      ? {
          resource: deps.crypto.open<Record<string, unknown>>(
            "clinical_entries",
            "body",
            e.id,
            e.body,
          ),
        }
      : {}),
  }));
  await recordAudit(
    deps.db,
    auditActor,
    {
      action: "patient.read",
      outcome: "allowed",
      resourceType: "Patient",
      resourceId: row.id,
      patientId: row.id,
      details: { entries: entries.length, clinicalBodies: view.clinicalBodies },
    },
    deps.now(),
  );
  return {
    id: row.id,
    organizationId: row.organizationId,
    version: row.version,
    demographics: deps.crypto.open<Demographics>(
      "patients",
      "demographics",
      row.id,
      row.demographics,
    ),
    entries,
    entriesTruncated: truncated,
  };
}

/** Patients linked to portal accounts or practitioners, by id (used by demo seeding and tests). */
export async function patientIdsByFhirId(
  deps: ServiceDeps,
  fhirIds: string[],
): Promise<Map<string, string>> {
  if (fhirIds.length === 0) return new Map();
  const rows = await deps.db
    .select({ id: patients.id, fhirId: patients.fhirId })
    .from(patients)
    .where(inArray(patients.fhirId, fhirIds));
  return new Map(rows.flatMap((r) => (r.fhirId ? [[r.fhirId, r.id] as const] : [])));
}
