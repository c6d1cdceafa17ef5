import { and, desc, eq, inArray, sql } from "drizzle-orm";
import type { z } from "zod";
import { clinicalEntries, patients } from "../../db/schema/index.ts";
import type { ServiceDeps } from "../deps.ts";
import { exportPatientBundle, type FhirBundle } from "../fhir/export.ts";
import type { FhirResource } from "../fhir/types.ts";
import { type AuditActor, auditDenial, recordAudit } from "../kernel/audit.ts";
import type { Demographics } from "../kernel/demographics.ts";
import { ForbiddenError, NotFoundError } from "../kernel/errors.ts";
import type { Actor, Role } from "../kernel/roles.ts";
import {
  assertCanReadPatient,
  loadPatientFacts,
  readPatientRowIfAllowed,
  recordBreakGlassUse,
} from "./access.ts";
import { canReadPatient, patientViewFor } from "./policy.ts";
import type { getOutput, searchInput, searchOutput } from "./schemas.ts";

export type SearchInput = z.infer<typeof searchInput>;
export type SearchResult = z.infer<typeof searchOutput>;
/** What the service returns: the output schema's input side (FHIR bodies as stored JSON). */
export type PatientRecord = z.input<typeof getOutput>;
export type DemographicsView = PatientRecord["demographics"];

/**
 * Minimum-necessary serializer (45 CFR 164.502(b)): exactly the demographics fields of `role`'s
 * whitelist (`patientViewFor(role).demographicFields`), copied one by one; nothing else of the
 * decrypted value can reach a response.
 */
export function serializeDemographics(role: Role, d: Demographics): DemographicsView {
  const out: Record<string, unknown> = {};
  for (const field of patientViewFor(role).demographicFields) {
    const value = d[field];
    out[field] = value !== null && typeof value === "object" ? structuredClone(value) : value;
  }
  return out as DemographicsView;
}

/** What an appointment reminder may carry about the patient: first name and contact, nothing else. */
export interface ReminderContact {
  /** First given name, or null when the record has none. */
  givenName: string | null;
  phone: string | null;
  email: string | null;
}

/**
 * The `service` role's whole view of a patient (minimum necessary for a reminder: first name and
 * contact; the appointment time comes from the appointment itself). Never the family name, birth
 * date, address, identifiers or anything clinical.
 */
export function reminderContactView(d: Demographics): ReminderContact {
  return { givenName: d.name.given[0] ?? null, phone: d.phone, email: d.email };
}

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
  const breakGlass: { patientId: string; grantId: string }[] = [];
  const visible = rows.filter((r) => {
    const f = facts.get(r.id);
    if (f === undefined) return false;
    const decision = canReadPatient(actor, f);
    if (decision.allowed && decision.basis === "break_glass") {
      breakGlass.push({ patientId: r.id, grantId: decision.breakGlassGrantId });
    }
    return decision.allowed;
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
  if (breakGlass.length > 0) {
    await recordBreakGlassUse(deps, auditActor, breakGlass, "patient.search");
  }
  return results;
}

/** A clinical entry row of `patients.get`; `body` (sealed) only for roles that may see bodies. */
type EntryRow = Pick<
  typeof clinicalEntries.$inferSelect,
  "id" | "kind" | "recordedAt" | "source"
> & {
  body?: string;
};

/**
 * The newest-first entries read of {@link getPatient}, with patient id and limit as placeholders;
 * `withBodies` false leaves the sealed body out of the SELECT (it is not even read for roles that
 * may not see it).
 */
function buildEntryRead(db: ServiceDeps["db"], withBodies: boolean) {
  return db
    .select({
      id: clinicalEntries.id,
      kind: clinicalEntries.kind,
      recordedAt: clinicalEntries.recordedAt,
      source: clinicalEntries.source,
      ...(withBodies ? { body: clinicalEntries.body } : {}),
    })
    .from(clinicalEntries)
    .where(eq(clinicalEntries.patientId, sql.placeholder("patientId")))
    .orderBy(desc(clinicalEntries.recordedAt), desc(clinicalEntries.id))
    .limit(sql.placeholder("limit"))
    .prepare(withBodies ? "haven_entries_with_bodies" : "haven_entries_without_bodies");
}

/** Per database handle (the pool, or a transaction), so a statement runs where it was built. */
const entryReads = new WeakMap<
  object,
  { with?: EntryReadStatement; without?: EntryReadStatement }
>();
type EntryReadStatement = { execute(values: Record<string, unknown>): Promise<EntryRow[]> };

function entryRead(db: ServiceDeps["db"], withBodies: boolean): EntryReadStatement {
  let cached = entryReads.get(db);
  if (!cached) {
    cached = {};
    entryReads.set(db, cached);
  }
  const key = withBodies ? "with" : "without";
  let read = cached[key];
  if (!read) {
    read = buildEntryRead(db, withBodies) as unknown as EntryReadStatement;
    cached[key] = read;
  }
  return read;
}

/**
 * Read one patient's record through the caller's whitelist (`patientViewFor(role)`): the
 * demographics fields of the role and the most recent clinical entries (`entryLimit`, newest
 * first), with FHIR bodies only for roles that see them (the sealed body is not even selected
 * otherwise). Audited as `patient.read` with the access basis (allowed or
 * denied; a break-the-glass read also as `access.break_glass_used`).
 * @throws NotFoundError, ForbiddenError
 */
export async function getPatient(
  deps: ServiceDeps,
  actor: Actor,
  auditActor: AuditActor,
  input: { patientId: string; entryLimit: number },
): Promise<PatientRecord> {
  // One `patients` query serves the access rule and the row (bench/results/optimisations.md §3).
  const { access, row } = await readPatientRowIfAllowed(
    deps,
    actor,
    auditActor,
    input.patientId,
    "patient.read",
  );
  const view = patientViewFor(actor.role);
  // Built by Drizzle once per database handle (bench/results/optimisations.md §11.5).
  const entryRows: EntryRow[] = await entryRead(deps.db, view.clinicalBodies).execute({
    patientId: row.id,
    limit: input.entryLimit + 1,
  });
  const truncated = entryRows.length > input.entryLimit;
  const entries: PatientRecord["entries"] = entryRows.slice(0, input.entryLimit).map((e) => ({
    id: e.id,
    kind: e.kind,
    recordedAt: e.recordedAt,
    source: e.source,
    ...("body" in e && typeof e.body === "string"
      ? {
          resource: deps.crypto.open<FhirResource>("clinical_entries", "body", e.id, e.body),
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
      reason: access.basis === "break_glass" ? "break_glass" : null,
      details: {
        entries: entries.length,
        clinicalBodies: view.clinicalBodies,
        basis: access.basis,
        ...(access.breakGlassGrantId && access.basis === "break_glass"
          ? { grantId: access.breakGlassGrantId }
          : {}),
      },
    },
    deps.now(),
  );
  const demographics = deps.crypto.open<Demographics>(
    "patients",
    "demographics",
    row.id,
    row.demographics,
  );
  return {
    id: row.id,
    organizationId: row.organizationId,
    version: row.version,
    access: access.basis,
    demographics: serializeDemographics(actor.role, demographics),
    entries,
    entriesTruncated: truncated,
  };
}

/**
 * The reminder projection of one patient (first name, phone, e-mail) for the `service` role and
 * the front desk of the patient's organization — the minimum a reminder needs (45 CFR 164.502(b)).
 * Audited as `patient.read` with `view: "reminder_contact"`; a refusal is audited as denied.
 * @throws NotFoundError when the patient does not exist; ForbiddenError for another organization
 *   or another role
 */
export async function reminderContact(
  deps: ServiceDeps,
  actor: Actor,
  auditActor: AuditActor,
  patientId: string,
): Promise<ReminderContact> {
  const [row] = await deps.db
    .select({
      id: patients.id,
      organizationId: patients.organizationId,
      demographics: patients.demographics,
    })
    .from(patients)
    .where(eq(patients.id, patientId))
    .limit(1);
  const allowedRole = actor.role === "service" || actor.role === "staff" || actor.role === "admin";
  const rule = !row
    ? "not_found"
    : !allowedRole
      ? "role"
      : row.organizationId !== actor.organizationId
        ? "other_organization"
        : null;
  await recordAudit(
    deps.db,
    auditActor,
    {
      action: "patient.read",
      outcome: rule ? "denied" : "allowed",
      resourceType: "Patient",
      resourceId: patientId,
      patientId: row ? patientId : null,
      details: rule ? { rule, view: "reminder_contact" } : { view: "reminder_contact" },
    },
    deps.now(),
  );
  if (!row) throw new NotFoundError("Patient not found");
  if (rule) throw new ForbiddenError("You may not access this patient's contact details", rule);
  return reminderContactView(
    deps.crypto.open<Demographics>("patients", "demographics", row.id, row.demographics),
  );
}

/**
 * `patients.exportMyRecord`: the signed-in patient's whole record as a FHIR R4 Bundle
 * (Patient/$everything content, type `collection`; right of access, 45 CFR 164.524). Audited as
 * `patient.export` with the number of resources.
 * @throws NotFoundError when the account is not linked to a patient record
 */
export async function exportMyRecord(
  deps: ServiceDeps,
  actor: Actor,
  auditActor: AuditActor,
): Promise<FhirBundle> {
  if (!actor.patientId) {
    throw await auditDenial(
      deps.db,
      auditActor,
      { action: "patient.export", details: { rule: "no_patient_record" } },
      new NotFoundError("No patient record is linked to this account", "no_patient_record"),
      deps.now(),
    );
  }
  await assertCanReadPatient(deps, actor, auditActor, actor.patientId, "patient.export");
  const bundle = await exportPatientBundle(deps, actor.patientId);
  await recordAudit(
    deps.db,
    auditActor,
    {
      action: "patient.export",
      outcome: "allowed",
      resourceType: "Patient",
      resourceId: actor.patientId,
      patientId: actor.patientId,
      details: { resources: bundle.entry.length, format: "fhir-r4-bundle" },
    },
    deps.now(),
  );
  return bundle;
}

/** Patients linked to portal accounts or practitioners, by id (used by demo seeding and tests). */
export async function patientIdsByFhirId(
  deps: ServiceDeps,
  fhirIds: string[],
): Promise<Map<string, string>> {
  if (fhirIds.length === 0) return new Map();
  const byIndex = new Map(fhirIds.map((fhirId) => [deps.crypto.patientFhirId(fhirId), fhirId]));
  const rows = await deps.db
    .select({ id: patients.id, fhirIndex: patients.fhirId })
    .from(patients)
    .where(inArray(patients.fhirId, [...byIndex.keys()]));
  return new Map(
    rows.flatMap((r) => {
      const fhirId = r.fhirIndex ? byIndex.get(r.fhirIndex) : undefined;
      return fhirId ? [[fhirId, r.id] as const] : [];
    }),
  );
}
