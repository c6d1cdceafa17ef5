import { eq, inArray, type SQLWrapper, sql } from "drizzle-orm";
import type { Transaction } from "../../db/client.ts";
import {
  appointments,
  careRelationships,
  clinicalEntries,
  organizations,
  patients,
  practitioners,
} from "../../db/schema/index.ts";
import { UnnestInsert } from "../../db/unnest-insert.ts";
import { uuidv7 } from "../../lib/uuid.ts";
import type { PhiCrypto } from "../crypto/phi.ts";
import { sourceMac } from "../crypto/source-mac.ts";
import { bump, type ImportCounts } from "./counts.ts";
import { describeEntry, FhirImportError } from "./errors.ts";
import {
  type AppointmentStatus,
  appointmentStatus,
  authorReferences,
  careTeamMemberReferences,
  careTeamPeriod,
  encounterPractitionerReferences,
  encounterReason,
  encounterWindow,
  managingOrganizationReference,
  mapClinical,
  mapOrganization,
  mapPatient,
  mapPractitioner,
  patientReference,
  serviceProviderReference,
} from "./map.ts";
import {
  BundleIndex,
  chunked,
  type Directory,
  Lookups,
  loadDirectory,
  type PatientRow,
  type PractitionerRow,
} from "./references.ts";
import {
  type BundleEntry,
  type ClinicalType,
  type FhirResource,
  isClinicalType,
  isHandledType,
} from "./types.ts";

/**
 * The per-table writers behind `importBundle`: one bundle, inside its transaction. Rows are keyed
 * by FHIR id (`patients.fhir_id` holds its blind index); ids are UUIDv7 minted here; PHI is
 * sealed with the row's id as associated data.
 */

/** Rows per multi-row INSERT (bounds one statement's size; one array parameter per column). */
const INSERT_CHUNK = 500;
/** Clinical rows per INSERT sent while the bundle's later entries are still being sealed. */
const CLINICAL_FLUSH = 64;

// One fixed statement per table, prepared once per connection (bench/results/optimisations.md §10).
const insertOrganizations = new UnnestInsert(organizations, ["id", "fhirId", "name"]);
const insertPractitioners = new UnnestInsert(practitioners, [
  "id",
  "fhirId",
  "npi",
  "name",
  "organizationId",
]);
const insertPatients = new UnnestInsert(patients, [
  "id",
  "fhirId",
  "organizationId",
  "demographics",
  "resource",
  "mrnIndex",
  "emailIndex",
  "familyBirthIndex",
  "sourceMac",
]);
const insertClinicalEntries = new UnnestInsert(clinicalEntries, [
  "id",
  "fhirId",
  "organizationId",
  "patientId",
  "kind",
  "recordedAt",
  "body",
  "source",
  "authorPractitionerId",
  "sourceMac",
]);
const insertAppointments = new UnnestInsert(appointments, [
  "id",
  "fhirId",
  "organizationId",
  "patientId",
  "practitionerId",
  "startsAt",
  "endsAt",
  "status",
  "reason",
]);
/** Insert, or widen the validity of the existing (patient, practitioner, source) relationship. */
const upsertCareRelationships = new UnnestInsert(
  careRelationships,
  ["id", "patientId", "practitionerId", "organizationId", "source", "validFrom", "validTo"],
  sql`on conflict ("patient_id", "practitioner_id", "source") do update set
    "valid_from" = LEAST("care_relationships"."valid_from", excluded."valid_from"),
    "valid_to" = CASE
      WHEN "care_relationships"."source" = 'encounter' THEN "care_relationships"."valid_to"
      WHEN "care_relationships"."valid_to" IS NULL OR excluded."valid_to" IS NULL THEN NULL
      ELSE GREATEST("care_relationships"."valid_to", excluded."valid_to") END`,
);
/** Keys per `inArray` lookup. */
const LOOKUP_CHUNK = 5000;

/** One bundle's import: the open transaction, crypto, import time and the counters to fill. */
export interface Run {
  tx: Transaction;
  crypto: PhiCrypto;
  now: Date;
  counts: ImportCounts;
}

interface ClinicalEntry extends BundleEntry {
  type: ClinicalType;
}

/** A clinical resource whose patient resolved, for the appointment and care-relationship passes. */
interface Placed {
  entry: ClinicalEntry;
  patient: PatientRow;
  recordedAt: Date;
  /** The clinical entry was inserted or rewritten (its source MAC changed). */
  changed: boolean;
}

/**
 * Write one validated bundle's entries inside `run.tx`: organizations, practitioners, patients,
 * clinical entries, appointments, care relationships, in that order (foreign keys), filling
 * `run.counts`. Existing rows are loaded in one batch per table, all sent at once; inserts are
 * multi-row (`UnnestInsert`); only rows whose input changed are updated. Writes are sent in that
 * order without awaiting each other ({@link Pending}); this resolves once all have answered.
 * @throws FhirImportError ("unresolved") when a new patient's organization cannot be determined;
 *   driver errors pass through (the caller maps them and rolls back)
 */
export async function writeBundle(run: Run, entries: readonly BundleEntry[]): Promise<void> {
  const { skipped } = run.counts;
  const index = new BundleIndex(entries);

  // Group by table; the last entry with a FHIR id wins.
  const orgs = new Map<string, BundleEntry>();
  const practs = new Map<string, BundleEntry>();
  const pats = new Map<string, BundleEntry>();
  const clinical = new Map<string, ClinicalEntry>();
  const firstOrgFhirId = entries.find((e) => e.resource.resourceType === "Organization")?.fhirId;
  for (const e of entries) {
    const type = e.resource.resourceType;
    if (!isHandledType(type)) {
      bump(skipped, type);
      continue;
    }
    if (isClinicalType(type)) {
      if (clinical.has(e.fhirId)) bump(skipped, `${type}.duplicate`);
      clinical.set(e.fhirId, { ...e, type });
      continue;
    }
    const group = type === "Organization" ? orgs : type === "Practitioner" ? practs : pats;
    if (group.has(e.fhirId)) bump(skipped, `${type}.duplicate`);
    group.set(e.fhirId, e);
  }
  const encounters = [...clinical.values()].filter((e) => e.type === "Encounter");

  // One batched lookup per table for everything the bundle names.
  const lookups = new Lookups();
  for (const id of orgs.keys()) lookups.addId("Organization", id);
  for (const [id, e] of practs) {
    lookups.addId("Practitioner", id);
    const npi = mapPractitioner(e.resource).npi;
    if (npi) lookups.practitionerNpis.add(npi);
  }
  for (const [id, e] of pats) {
    lookups.addId("Patient", id);
    lookups.add(index.target(managingOrganizationReference(e.resource)), "Organization");
  }
  for (const e of clinical.values()) {
    lookups.add(index.target(patientReference(e.resource)), "Patient");
    for (const r of authorReferences(e.type, e.resource))
      lookups.add(index.target(r), "Practitioner");
    if (e.type === "Encounter") {
      lookups.add(index.target(serviceProviderReference(e.resource)), "Organization");
    }
    if (e.type === "CareTeam") {
      for (const r of careTeamMemberReferences(e.resource))
        lookups.add(index.target(r), "Practitioner");
    }
  }
  // Every lookup goes out before the first answer is awaited (one round trip on the transaction's
  // connection); the writes then follow without waiting for each other (see Pending).
  const { tx, crypto } = run;
  const dirQuery = loadDirectory(tx, crypto, lookups);
  const existingQuery = loadExisting(
    tx,
    [...clinical.keys()],
    encounters.map((e) => e.fhirId),
    [...lookups.patients].map((fhirId) => crypto.patientFhirId(fhirId)),
  );
  const settled = await Promise.allSettled([dirQuery, existingQuery]);
  for (const r of settled) if (r.status === "rejected") throw r.reason;
  const dir = await dirQuery;
  const existing = await existingQuery;

  const pending = new Pending(tx);
  try {
    writeOrganizations(run, pending, dir, orgs);
    writePractitioners(run, pending, dir, index, practs, encounters);
    writePatients(run, pending, dir, index, pats, encounters, firstOrgFhirId);
    const placed = writeClinicalEntries(run, pending, existing, dir, index, clinical);
    writeAppointments(run, pending, existing, dir, index, placed);
    writeCareRelationships(run, pending, existing, dir, index, placed);
  } catch (err) {
    // Let the statements already sent finish before the caller rolls back; report this error.
    await pending.settle().catch(() => {});
    throw err;
  }
  await pending.settle();
}

/**
 * Statements sent without awaiting each other: postgres.js queues them on the transaction's one
 * connection and the server runs them in send order (so foreign keys see the rows written before),
 * while the importer seals the next rows. {@link Pending.settle} waits for all of them.
 *
 * Every statement goes through {@link Pending.send}, one code path: the drivers hand a query to the
 * connection a fixed number of microtasks after it is started, so one path keeps the send order
 * equal to the call order (a query builder awaited elsewhere can overtake: the importer test
 * "gives a stored practitioner the organization its bundle creates" fails if it does).
 */
class Pending {
  private readonly sent: Promise<unknown>[] = [];

  constructor(private readonly tx: Transaction) {}

  /** Send a statement now; its failure is reported by {@link settle}, never left unhandled. */
  send(statement: SQLWrapper): void {
    const answer = this.tx.execute(statement).execute();
    answer.catch(() => {});
    this.sent.push(answer);
  }

  /**
   * Wait until every statement has answered.
   * @throws the first failure in send order (the later ones only say the transaction is aborted)
   */
  async settle(): Promise<void> {
    const results = await Promise.allSettled(this.sent.splice(0));
    for (const r of results) if (r.status === "rejected") throw r.reason;
  }
}

/** Rows already stored for the bundle's clinical entries, encounters and patients. */
interface Existing {
  /** clinical_entries by FHIR id. */
  clinical: Map<string, { id: string; kind: string; sourceMac: string | null }>;
  /** appointments by the FHIR id of their Encounter. */
  appointments: Map<string, AppointmentPlain & { id: string }>;
  /** care_relationships by `patientId|practitionerId|source`. */
  care: Map<string, { validFrom: Date; validTo: Date | null }>;
}

/**
 * Load the stored rows the bundle may update: clinical entries and appointments by FHIR id, care
 * relationships of the stored patients (by the blind index of their FHIR id; a patient the bundle
 * creates has none). All queries are sent before the first answer is awaited.
 * @throws the driver's error (callers wrap it; it may quote parameters)
 */
async function loadExisting(
  tx: Transaction,
  clinicalFhirIds: readonly string[],
  encounterFhirIds: readonly string[],
  patientFhirIndexes: readonly string[],
): Promise<Existing> {
  const clinicalQueries = chunked(clinicalFhirIds, LOOKUP_CHUNK).map((ids) =>
    tx
      .select({
        id: clinicalEntries.id,
        fhirId: clinicalEntries.fhirId,
        kind: clinicalEntries.kind,
        sourceMac: clinicalEntries.sourceMac,
      })
      .from(clinicalEntries)
      .where(inArray(clinicalEntries.fhirId, ids))
      .execute(),
  );
  const appointmentQueries = chunked(encounterFhirIds, LOOKUP_CHUNK).map((ids) =>
    tx
      .select({
        id: appointments.id,
        fhirId: appointments.fhirId,
        organizationId: appointments.organizationId,
        patientId: appointments.patientId,
        practitionerId: appointments.practitionerId,
        startsAt: appointments.startsAt,
        endsAt: appointments.endsAt,
        status: appointments.status,
      })
      .from(appointments)
      .where(inArray(appointments.fhirId, ids))
      .execute(),
  );
  const careQueries = chunked(patientFhirIndexes, LOOKUP_CHUNK).map((indexes) =>
    tx
      .select({
        patientId: careRelationships.patientId,
        practitionerId: careRelationships.practitionerId,
        source: careRelationships.source,
        validFrom: careRelationships.validFrom,
        validTo: careRelationships.validTo,
      })
      .from(careRelationships)
      .where(
        inArray(
          careRelationships.patientId,
          tx.select({ id: patients.id }).from(patients).where(inArray(patients.fhirId, indexes)),
        ),
      )
      .execute(),
  );
  const settled = await Promise.allSettled([
    ...clinicalQueries,
    ...appointmentQueries,
    ...careQueries,
  ]);
  for (const r of settled) if (r.status === "rejected") throw r.reason;
  const out: Existing = { clinical: new Map(), appointments: new Map(), care: new Map() };
  for (const rows of await Promise.all(clinicalQueries)) {
    for (const row of rows) if (row.fhirId) out.clinical.set(row.fhirId, row);
  }
  for (const rows of await Promise.all(appointmentQueries)) {
    for (const row of rows) if (row.fhirId) out.appointments.set(row.fhirId, row);
  }
  for (const rows of await Promise.all(careQueries)) {
    for (const r of rows) out.care.set(`${r.patientId}|${r.practitionerId}|${r.source}`, r);
  }
  return out;
}

function writeOrganizations(
  run: Run,
  pending: Pending,
  dir: Directory,
  orgs: Map<string, BundleEntry>,
): void {
  const { tx, counts, now } = run;
  const inserts: (typeof organizations.$inferInsert)[] = [];
  for (const [fhirId, e] of orgs) {
    const { name } = mapOrganization(e.resource);
    const existing = dir.organizations.get(fhirId);
    if (!existing) {
      const row = { id: uuidv7(), fhirId, name };
      inserts.push(row);
      dir.addOrganization(fhirId, row);
      bump(counts.created, "Organization");
    } else if (existing.name !== name) {
      // Only the name is imported; the clinic's time zone is managed in Haven.
      pending.send(
        tx
          .update(organizations)
          .set({ name, updatedAt: now })
          .where(eq(organizations.id, existing.id)),
      );
      existing.name = name;
      bump(counts.updated, "Organization");
    } else {
      bump(counts.unchanged, "Organization");
    }
  }
  for (const rows of chunked(inserts, INSERT_CHUNK)) pending.send(insertOrganizations.query(rows));
}

function writePractitioners(
  run: Run,
  pending: Pending,
  dir: Directory,
  index: BundleIndex,
  practs: Map<string, BundleEntry>,
  encounters: readonly ClinicalEntry[],
): void {
  const { tx, counts, now } = run;
  const created = new Set<PractitionerRow>();
  const changed = new Set<PractitionerRow>();
  const fromBundle = new Set<PractitionerRow>();
  for (const [fhirId, e] of practs) {
    const { name, npi } = mapPractitioner(e.resource);
    // Same FHIR id, else same NPI (a practitioner created in Haven before the import).
    let row = dir.practitioners.get(fhirId) ?? (npi ? dir.practitionersByNpi.get(npi) : undefined);
    if (!row) {
      row = { id: uuidv7(), fhirId, npi, name, organizationId: null };
      created.add(row);
    } else if (!created.has(row)) {
      if (row.name !== name || row.npi !== npi || row.fhirId === null) {
        row.name = name;
        row.npi = npi;
        row.fhirId ??= fhirId;
        changed.add(row);
      }
    }
    fromBundle.add(row);
    dir.addPractitioner(fhirId, row);
  }
  // Organization: the serviceProvider of the first Encounter that cites the practitioner, unless set.
  for (const enc of encounters) {
    const org = dir.resolve(index.target(serviceProviderReference(enc.resource)), "Organization");
    if (!org) continue;
    for (const ref of encounterPractitionerReferences(enc.resource)) {
      const row = dir.resolve(index.target(ref), "Practitioner");
      if (row && row.organizationId === null) {
        row.organizationId = org.id;
        if (!created.has(row)) changed.add(row);
      }
    }
  }
  const inserts = [...created].map((r) => ({
    id: r.id,
    fhirId: r.fhirId,
    npi: r.npi,
    name: r.name,
    organizationId: r.organizationId,
  }));
  for (const rows of chunked(inserts, INSERT_CHUNK)) pending.send(insertPractitioners.query(rows));
  for (const r of changed) {
    pending.send(
      tx
        .update(practitioners)
        .set({
          fhirId: r.fhirId,
          npi: r.npi,
          name: r.name,
          organizationId: r.organizationId,
          updatedAt: now,
        })
        .where(eq(practitioners.id, r.id)),
    );
  }
  bump(counts.created, "Practitioner", created.size);
  bump(counts.updated, "Practitioner", changed.size);
  let same = 0;
  for (const r of fromBundle) if (!created.has(r) && !changed.has(r)) same++;
  bump(counts.unchanged, "Practitioner", same);
}

/** serviceProvider tallies: count and latest start per organization row id. */
type OrgTally = Map<string, { count: number; latest: number }>;

function tally(into: OrgTally, orgId: string, when: number): void {
  const t = into.get(orgId);
  if (t) {
    t.count++;
    t.latest = Math.max(t.latest, when);
  } else {
    into.set(orgId, { count: 1, latest: when });
  }
}

/** Most frequent organization; ties → the one with the most recent encounter. */
function mostFrequent(t: OrgTally | undefined): string | undefined {
  let best: string | undefined;
  let bestCount = 0;
  let bestLatest = Number.NEGATIVE_INFINITY;
  for (const [orgId, { count, latest }] of t ?? []) {
    if (count > bestCount || (count === bestCount && latest > bestLatest)) {
      best = orgId;
      bestCount = count;
      bestLatest = latest;
    }
  }
  return best;
}

function writePatients(
  run: Run,
  pending: Pending,
  dir: Directory,
  index: BundleIndex,
  pats: Map<string, BundleEntry>,
  encounters: readonly ClinicalEntry[],
  firstOrgFhirId: string | undefined,
): void {
  const { tx, crypto, counts, now } = run;
  // Where each patient (by FHIR id) was seen, and where the bundle's encounters happened overall.
  const perPatient = new Map<string, OrgTally>();
  const overall: OrgTally = new Map();
  for (const enc of encounters) {
    const org = dir.resolve(index.target(serviceProviderReference(enc.resource)), "Organization");
    if (!org) continue;
    const when = encounterWindow(enc.resource)?.startsAt.getTime() ?? Number.NEGATIVE_INFINITY;
    tally(overall, org.id, when);
    const subject = index.target(patientReference(enc.resource));
    if (subject?.by !== "id") continue;
    let t = perPatient.get(subject.fhirId);
    if (!t) {
      t = new Map();
      perPatient.set(subject.fhirId, t);
    }
    tally(t, org.id, when);
  }
  const bundleFallback =
    mostFrequent(overall) ??
    (firstOrgFhirId ? dir.organizations.get(firstOrgFhirId)?.id : undefined);

  const inserts: (typeof patients.$inferInsert)[] = [];
  for (const [fhirId, e] of pats) {
    // The stored resource always carries its id (an id-less entry takes its urn:uuid): it is the
    // only place the original id is kept, for export and for `keys reindex` of `fhir_id`.
    const resource: FhirResource =
      typeof e.resource.id === "string" ? e.resource : { ...e.resource, id: fhirId };
    const mac = sourceMac(crypto, resource);
    const existing = dir.patients.get(fhirId);
    if (existing && existing.sourceMac === mac) {
      bump(counts.unchanged, "Patient");
      continue;
    }
    const managing = dir.resolve(
      index.target(managingOrganizationReference(e.resource)),
      "Organization",
    );
    // An existing patient keeps its organization unless the resource names one.
    const organizationId =
      managing?.id ??
      existing?.organizationId ??
      mostFrequent(perPatient.get(fhirId)) ??
      bundleFallback;
    if (!organizationId) {
      throw new FhirImportError(
        `${describeEntry(e.index, "Patient")}: no organization could be determined ` +
          "(no managingOrganization, no Encounter.serviceProvider, no Organization in the bundle)",
        "unresolved",
        { entryIndex: e.index, resourceType: "Patient" },
      );
    }
    const id = existing?.id ?? uuidv7();
    const demo = mapPatient(e.resource);
    const values = {
      organizationId,
      demographics: crypto.seal("patients", "demographics", id, demo),
      resource: crypto.seal("patients", "resource", id, resource),
      mrnIndex: demo.mrn ? crypto.index("patient.mrn", demo.mrn) : null,
      emailIndex: demo.email ? crypto.index("patient.email", demo.email) : null,
      familyBirthIndex:
        demo.name.family && demo.birthDate
          ? crypto.familyBirth(demo.name.family, demo.birthDate)
          : null,
      sourceMac: mac,
    };
    if (existing) {
      pending.send(
        tx
          .update(patients)
          .set({ ...values, version: sql`${patients.version} + 1`, updatedAt: now })
          .where(eq(patients.id, existing.id)),
      );
      existing.organizationId = organizationId;
      existing.sourceMac = mac;
      existing.version++;
      bump(counts.updated, "Patient");
    } else {
      inserts.push({ id, fhirId: crypto.patientFhirId(fhirId), ...values });
      dir.addPatient(fhirId, { id, fhirId, organizationId, sourceMac: mac, version: 1 });
      bump(counts.created, "Patient");
    }
  }
  for (const rows of chunked(inserts, INSERT_CHUNK)) pending.send(insertPatients.query(rows));
}

function firstPractitioner(
  dir: Directory,
  index: BundleIndex,
  refs: readonly string[],
): PractitionerRow | undefined {
  for (const ref of refs) {
    const row = dir.resolve(index.target(ref), "Practitioner");
    if (row) return row;
  }
  return undefined;
}

function writeClinicalEntries(
  run: Run,
  pending: Pending,
  existing: Existing,
  dir: Directory,
  index: BundleIndex,
  clinical: Map<string, ClinicalEntry>,
): Placed[] {
  const { tx, crypto, counts, now } = run;
  const existingById = existing.clinical;
  const placed: Placed[] = [];
  const inserts: (typeof clinicalEntries.$inferInsert)[] = [];
  for (const [fhirId, entry] of clinical) {
    const { type, resource } = entry;
    const patient = dir.resolve(index.target(patientReference(resource)), "Patient");
    if (!patient) {
      bump(counts.skipped, `${type}.orphan`);
      continue;
    }
    const { kind, recordedAt } = mapClinical(type, resource, now);
    const existing = existingById.get(fhirId);
    if (existing && existing.kind !== kind) {
      bump(counts.skipped, `${type}.id-conflict`);
      continue;
    }
    const mac = sourceMac(crypto, resource);
    const changed = !existing || existing.sourceMac !== mac;
    placed.push({ entry, patient, recordedAt, changed });
    if (!changed) {
      bump(counts.unchanged, type);
      continue;
    }
    const id = existing?.id ?? uuidv7();
    const author = firstPractitioner(dir, index, authorReferences(type, resource));
    const values = {
      organizationId: patient.organizationId,
      patientId: patient.id,
      kind,
      recordedAt,
      body: crypto.seal("clinical_entries", "body", id, resource),
      source: "fhir-import" as const,
      authorPractitionerId: author?.id ?? null,
      sourceMac: mac,
    };
    if (existing) {
      pending.send(
        tx
          .update(clinicalEntries)
          .set({ ...values, updatedAt: now })
          .where(eq(clinicalEntries.id, existing.id)),
      );
      bump(counts.updated, type);
    } else {
      inserts.push({ id, fhirId, ...values });
      bump(counts.created, type);
      // Sent while the next rows are sealed (the server writes them meanwhile).
      if (inserts.length === CLINICAL_FLUSH)
        pending.send(insertClinicalEntries.query(inserts.splice(0)));
    }
  }
  for (const rows of chunked(inserts, INSERT_CHUNK))
    pending.send(insertClinicalEntries.query(rows));
  return placed;
}

interface AppointmentPlain {
  organizationId: string;
  patientId: string;
  practitionerId: string;
  startsAt: Date;
  endsAt: Date;
  status: AppointmentStatus;
}

function samePlain(a: AppointmentPlain, b: AppointmentPlain): boolean {
  return (
    a.organizationId === b.organizationId &&
    a.patientId === b.patientId &&
    a.practitionerId === b.practitionerId &&
    a.startsAt.getTime() === b.startsAt.getTime() &&
    a.endsAt.getTime() === b.endsAt.getTime() &&
    a.status === b.status
  );
}

function writeAppointments(
  run: Run,
  pending: Pending,
  existing: Existing,
  dir: Directory,
  index: BundleIndex,
  placed: readonly Placed[],
): void {
  const { tx, crypto, counts, now } = run;
  const encounters = placed.filter((p) => p.entry.type === "Encounter");
  const existingById = existing.appointments;

  const inserts: (typeof appointments.$inferInsert)[] = [];
  for (const p of encounters) {
    const enc = p.entry.resource;
    const practitioner = firstPractitioner(dir, index, encounterPractitionerReferences(enc));
    const window = encounterWindow(enc);
    const status = window ? appointmentStatus(enc.status, window.endsAt, now) : null;
    if (!practitioner || !window || !status) {
      bump(counts.skipped, "Encounter.appointment");
      continue;
    }
    const org = dir.resolve(index.target(serviceProviderReference(enc)), "Organization");
    const plain: AppointmentPlain = {
      organizationId: org?.id ?? p.patient.organizationId,
      patientId: p.patient.id,
      practitionerId: practitioner.id,
      startsAt: window.startsAt,
      endsAt: window.endsAt,
      status,
    };
    const existing = existingById.get(p.entry.fhirId);
    // The reason is sealed: only re-seal it when the encounter itself changed.
    if (existing && !p.changed && samePlain(existing, plain)) {
      bump(counts.unchanged, "Appointment");
      continue;
    }
    const id = existing?.id ?? uuidv7();
    const reasonText = encounterReason(enc);
    const reason =
      reasonText === null ? null : crypto.seal("appointments", "reason", id, reasonText);
    if (existing) {
      pending.send(
        tx
          .update(appointments)
          .set({ ...plain, reason, version: sql`${appointments.version} + 1`, updatedAt: now })
          .where(eq(appointments.id, existing.id)),
      );
      bump(counts.updated, "Appointment");
    } else {
      inserts.push({ id, fhirId: p.entry.fhirId, ...plain, reason });
      bump(counts.created, "Appointment");
    }
  }
  for (const rows of chunked(inserts, INSERT_CHUNK)) pending.send(insertAppointments.query(rows));
}

type CareSource = "encounter" | "care-team";

interface CareRow {
  patientId: string;
  practitionerId: string;
  organizationId: string;
  source: CareSource;
  validFrom: Date;
  validTo: Date | null;
}

function earlier(a: Date, b: Date): Date {
  return a.getTime() <= b.getTime() ? a : b;
}

/** Union of two validity ends: open (null) wins, else the later one. */
function laterEnd(a: Date | null, b: Date | null): Date | null {
  if (a === null || b === null) return null;
  return a.getTime() >= b.getTime() ? a : b;
}

function writeCareRelationships(
  run: Run,
  pending: Pending,
  known: Existing,
  dir: Directory,
  index: BundleIndex,
  placed: readonly Placed[],
): void {
  const { counts } = run;
  const wanted = new Map<string, CareRow>();
  const want = (row: CareRow) => {
    const key = `${row.patientId}|${row.practitionerId}|${row.source}`;
    const prev = wanted.get(key);
    if (!prev) {
      wanted.set(key, row);
      return;
    }
    prev.validFrom = earlier(prev.validFrom, row.validFrom);
    if (row.source === "care-team") prev.validTo = laterEnd(prev.validTo, row.validTo);
  };
  for (const p of placed) {
    const { type, resource } = p.entry;
    if (type === "Encounter") {
      // Every practitioner who took part in the encounter, from its start.
      const from = encounterWindow(resource)?.startsAt ?? p.recordedAt;
      for (const ref of encounterPractitionerReferences(resource)) {
        const pr = dir.resolve(index.target(ref), "Practitioner");
        if (!pr) continue;
        want({
          patientId: p.patient.id,
          practitionerId: pr.id,
          organizationId: p.patient.organizationId,
          source: "encounter",
          validFrom: from,
          validTo: null,
        });
      }
    } else if (type === "CareTeam") {
      const period = careTeamPeriod(resource);
      for (const ref of careTeamMemberReferences(resource)) {
        const pr = dir.resolve(index.target(ref), "Practitioner");
        if (!pr) continue;
        want({
          patientId: p.patient.id,
          practitionerId: pr.id,
          organizationId: p.patient.organizationId,
          source: "care-team",
          validFrom: period.start ?? p.recordedAt,
          validTo: period.end,
        });
      }
    }
  }
  if (wanted.size === 0) return;

  const existing = known.care;
  const writes: (typeof careRelationships.$inferInsert)[] = [];
  for (const [key, row] of wanted) {
    const old = existing.get(key);
    if (!old) {
      bump(counts.created, "CareRelationship");
    } else {
      const from = earlier(old.validFrom, row.validFrom);
      // Encounter relationships never close from an import; care-team ones follow the team period.
      const to = row.source === "encounter" ? old.validTo : laterEnd(old.validTo, row.validTo);
      const sameTo = (to?.getTime() ?? null) === (old.validTo?.getTime() ?? null);
      if (from.getTime() === old.validFrom.getTime() && sameTo) {
        bump(counts.unchanged, "CareRelationship");
        continue;
      }
      bump(counts.updated, "CareRelationship");
    }
    writes.push({ id: uuidv7(), ...row });
  }
  for (const rows of chunked(writes, INSERT_CHUNK))
    pending.send(upsertCareRelationships.query(rows));
}
