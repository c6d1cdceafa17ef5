import { and, desc, eq, gt, inArray, isNull, lte, or, sql } from "drizzle-orm";
import { breakGlassGrants, careRelationships, patients } from "../../db/schema/index.ts";
import type { ServiceDeps } from "../deps.ts";
import { type AuditActor, auditDenial, recordAudit } from "../kernel/audit.ts";
import type { AuditAction } from "../kernel/audit-actions.ts";
import { ForbiddenError, NotFoundError } from "../kernel/errors.ts";
import type { Actor } from "../kernel/roles.ts";
import { type AccessBasis, canReadPatient, type PatientFacts } from "./policy.ts";

/**
 * Load the facts `canReadPatient` needs for the given patients (one query each for rows, care
 * relationships and — for clinicians — break-the-glass grants valid now: granted, unexpired,
 * unrevoked). Unknown ids are absent from the map.
 */
export async function loadPatientFacts(
  deps: ServiceDeps,
  actor: Actor,
  patientIds: string[],
): Promise<Map<string, PatientFacts>> {
  if (patientIds.length === 0) return new Map();
  const rows = await deps.db
    .select({ id: patients.id, organizationId: patients.organizationId })
    .from(patients)
    .where(inArray(patients.id, patientIds));
  return factsForRows(deps, actor, rows);
}

/**
 * The facts of patients whose rows are already read (id and organization): care relationships
 * and break-the-glass grants valid now, for clinicians. The caller's rows are the ONLY source of
 * the patients' existence and organization, so a caller that read more columns in the same query
 * gets exactly the facts {@link loadPatientFacts} would have produced.
 */
async function factsForRows(
  deps: ServiceDeps,
  actor: Actor,
  rows: readonly { id: string; organizationId: string }[],
): Promise<Map<string, PatientFacts>> {
  const facts = new Map<string, PatientFacts>();
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
  const grants = new Map<string, string>();
  if (actor.role === "clinician" && rows.length > 0) {
    const now = deps.now();
    const active = await deps.db
      .select({ id: breakGlassGrants.id, patientId: breakGlassGrants.patientId })
      .from(breakGlassGrants)
      .where(
        and(
          eq(breakGlassGrants.userId, actor.userId),
          inArray(
            breakGlassGrants.patientId,
            rows.map((r) => r.id),
          ),
          lte(breakGlassGrants.grantedAt, now),
          gt(breakGlassGrants.expiresAt, now),
          isNull(breakGlassGrants.revokedAt),
        ),
      )
      .orderBy(desc(breakGlassGrants.expiresAt));
    for (const g of active) if (!grants.has(g.patientId)) grants.set(g.patientId, g.id);
  }
  for (const r of rows) {
    facts.set(r.id, {
      patientId: r.id,
      organizationId: r.organizationId,
      activeCareRelationship: withCare.has(r.id),
      breakGlassGrantId: grants.get(r.id) ?? null,
    });
  }
  return facts;
}

/** The facts of one allowed read, with the basis the rule allowed it on. */
export type PatientAccess = PatientFacts & { basis: AccessBasis };

/**
 * Audit that a read was made under a break-the-glass grant (one row per patient per call), so
 * every access under a grant is in the trail with the grant that justified it, whatever domain
 * made the read. The grant's reason is sealed in the grant; the row carries the grant id.
 */
export async function recordBreakGlassUse(
  deps: ServiceDeps,
  auditActor: AuditActor,
  uses: { patientId: string; grantId: string }[],
  action: AuditAction,
): Promise<void> {
  await recordAudit(
    deps.db,
    auditActor,
    uses.map((u) => ({
      action: "access.break_glass_used" as const,
      outcome: "allowed" as const,
      resourceType: "Patient",
      resourceId: u.patientId,
      patientId: u.patientId,
      reason: "break_glass",
      details: { grantId: u.grantId, action },
    })),
    deps.now(),
  );
}

/**
 * Enforce the row-level rule for one patient. A refusal is audited as `denied` (with the rule, no
 * PHI) before it is thrown; a read allowed by a break-the-glass grant is audited as
 * `access.break_glass_used` with the grant id.
 * @returns the facts and the basis of the allowed access
 * @throws NotFoundError when the patient does not exist; ForbiddenError when the rule refuses
 */
export async function assertCanReadPatient(
  deps: ServiceDeps,
  actor: Actor,
  auditActor: AuditActor,
  patientId: string,
  action: AuditAction,
): Promise<PatientAccess> {
  const facts = (await loadPatientFacts(deps, actor, [patientId])).get(patientId);
  return enforce(deps, actor, auditActor, patientId, action, facts);
}

/** The `patients` columns `patients.get` returns (demographics still sealed). */
export interface SealedPatientRow {
  id: string;
  organizationId: string;
  version: number;
  /** Sealed envelope; open it only after the rule allowed the read. */
  demographics: string;
}

/** Which statement a read needs: a clinician with / without a practitioner record, anyone else. */
type PatientReadVariant = "clinician" | "clinician-no-care" | "plain";

/**
 * The `patients` read of {@link readPatientRowIfAllowed} for one variant, with the patient id, the
 * caller's user and practitioner ids and "now" as placeholders. For clinicians the facts are
 * correlated subqueries of the same statement, with exactly the conditions of `factsForRows`:
 * a care relationship valid now (only with a practitioner record; otherwise `false`), the
 * longest-running break-the-glass grant valid now; other roles get `false` / `null`.
 */
function buildPatientRead(db: ServiceDeps["db"], variant: PatientReadVariant) {
  const now = sql.placeholder("now");
  const care =
    variant === "clinician"
      ? sql<boolean>`exists(${db
          .select({ one: sql`1` })
          .from(careRelationships)
          .where(
            and(
              eq(careRelationships.practitionerId, sql.placeholder("practitionerId")),
              eq(careRelationships.patientId, patients.id),
              lte(careRelationships.validFrom, now),
              or(isNull(careRelationships.validTo), gt(careRelationships.validTo, now)),
            ),
          )})`
      : sql<boolean>`false`;
  const grant =
    variant === "plain"
      ? sql<string | null>`null`
      : sql<string | null>`(${db
          .select({ id: breakGlassGrants.id })
          .from(breakGlassGrants)
          .where(
            and(
              eq(breakGlassGrants.userId, sql.placeholder("userId")),
              eq(breakGlassGrants.patientId, patients.id),
              lte(breakGlassGrants.grantedAt, now),
              gt(breakGlassGrants.expiresAt, now),
              isNull(breakGlassGrants.revokedAt),
            ),
          )
          .orderBy(desc(breakGlassGrants.expiresAt))
          .limit(1)})`;
  return db
    .select({
      id: patients.id,
      organizationId: patients.organizationId,
      version: patients.version,
      demographics: patients.demographics,
      care,
      grant,
    })
    .from(patients)
    .where(eq(patients.id, sql.placeholder("patientId")))
    .limit(1)
    .prepare(`haven_patient_read_${variant}`);
}

type PatientRead = ReturnType<typeof buildPatientRead>;
/** Per database handle (the pool, or a transaction), so a statement runs where it was built. */
const patientReads = new WeakMap<object, Map<PatientReadVariant, PatientRead>>();

function patientRead(db: ServiceDeps["db"], variant: PatientReadVariant): PatientRead {
  let byVariant = patientReads.get(db);
  if (!byVariant) {
    byVariant = new Map();
    patientReads.set(db, byVariant);
  }
  let read = byVariant.get(variant);
  if (!read) {
    read = buildPatientRead(db, variant);
    byVariant.set(variant, read);
  }
  return read;
}

/**
 * {@link assertCanReadPatient} for a read that needs the patient row itself: ONE query reads the
 * row and every fact the rule needs (id, organization and, for clinicians, the care relationship
 * and break-the-glass grant valid now, as correlated subqueries with the conditions of
 * {@link loadPatientFacts}), instead of a facts query, two clinician queries and a row query. The rule, its inputs and its audit rows are the same; the sealed demographics
 * are only handed back once the rule allowed the read (a refusal throws before, and nothing is
 * decrypted here).
 * @returns the access basis and the sealed row
 * @throws NotFoundError when the patient does not exist; ForbiddenError when the rule refuses
 */
export async function readPatientRowIfAllowed(
  deps: ServiceDeps,
  actor: Actor,
  auditActor: AuditActor,
  patientId: string,
  action: AuditAction,
): Promise<{ access: PatientAccess; row: SealedPatientRow }> {
  const now = deps.now();
  const variant: PatientReadVariant =
    actor.role !== "clinician" ? "plain" : actor.practitionerId ? "clinician" : "clinician-no-care";
  // Built by Drizzle once per database handle and variant (bench/results/optimisations.md §11.5).
  const [found] = await patientRead(deps.db, variant).execute({
    patientId,
    userId: actor.userId,
    practitionerId: actor.practitionerId ?? null,
    // What the timestamp columns' own encoder sends for a Date (timestamptz, ISO 8601 UTC).
    now: now.toISOString(),
  });
  const row = found
    ? {
        id: found.id,
        organizationId: found.organizationId,
        version: found.version,
        demographics: found.demographics,
      }
    : undefined;
  const facts: PatientFacts | undefined = found
    ? {
        patientId: found.id,
        organizationId: found.organizationId,
        activeCareRelationship: found.care === true,
        breakGlassGrantId: found.grant ?? null,
      }
    : undefined;
  const access = await enforce(deps, actor, auditActor, patientId, action, facts);
  // `enforce` throws unless the facts (hence the row) exist.
  return { access, row: row as SealedPatientRow };
}

/** Apply `canReadPatient` to loaded facts: audit and throw a refusal, audit a break-glass use. */
async function enforce(
  deps: ServiceDeps,
  actor: Actor,
  auditActor: AuditActor,
  patientId: string,
  action: AuditAction,
  facts: PatientFacts | undefined,
): Promise<PatientAccess> {
  if (!facts) {
    throw await auditDenial(
      deps.db,
      auditActor,
      {
        action,
        resourceType: "Patient",
        resourceId: patientId,
        details: { rule: "not_found" },
      },
      new NotFoundError("Patient not found"),
      deps.now(),
    );
  }
  const decision = canReadPatient(actor, facts);
  if (!decision.allowed) {
    throw await auditDenial(
      deps.db,
      auditActor,
      {
        action,
        resourceType: "Patient",
        resourceId: patientId,
        patientId,
        details: { rule: decision.rule },
      },
      new ForbiddenError("You may not access this patient's record", decision.rule),
      deps.now(),
    );
  }
  if (decision.basis === "break_glass") {
    await recordBreakGlassUse(
      deps,
      auditActor,
      [{ patientId, grantId: decision.breakGlassGrantId }],
      action,
    );
  }
  return { ...facts, basis: decision.basis };
}
