import { eq, inArray, sql } from "drizzle-orm";
import { v7 as uuidv7 } from "uuid";
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

// One fixed statement per table, prepared once per connection (bench/results/optimisations.md §9).
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
 * `run.counts`. Existing rows are loaded in one batch per table; inserts are multi-row; only rows
 * whose input changed are updated.
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
  const dir = await loadDirectory(run.tx, run.crypto, lookups);

  await writeOrganizations(run, dir, orgs);
  await writePractitioners(run, dir, index, practs, encounters);
  await writePatients(run, dir, index, pats, encounters, firstOrgFhirId);
  const placed = await writeClinicalEntries(run, dir, index, clinical);
  await writeAppointments(run, dir, index, placed);
  await writeCareRelationships(run, dir, index, placed);
}

async function writeOrganizations(
  run: Run,
  dir: Directory,
  orgs: Map<string, BundleEntry>,
): Promise<void> {
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
      await tx
        .update(organizations)
        .set({ name, updatedAt: now })
        .where(eq(organizations.id, existing.id));
      existing.name = name;
      bump(counts.updated, "Organization");
    } else {
      bump(counts.unchanged, "Organization");
    }
  }
  for (const rows of chunked(inserts, INSERT_CHUNK)) await insertOrganizations.run(tx, rows);
}

async function writePractitioners(
  run: Run,
  dir: Directory,
  index: BundleIndex,
  practs: Map<string, BundleEntry>,
  encounters: readonly ClinicalEntry[],
): Promise<void> {
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
  for (const rows of chunked(inserts, INSERT_CHUNK)) await insertPractitioners.run(tx, rows);
  for (const r of changed) {
    await tx
      .update(practitioners)
      .set({
        fhirId: r.fhirId,
        npi: r.npi,
        name: r.name,
        organizationId: r.organizationId,
        updatedAt: now,
      })
      .where(eq(practitioners.id, r.id));
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

async function writePatients(
  run: Run,
  dir: Directory,
  index: BundleIndex,
  pats: Map<string, BundleEntry>,
  encounters: readonly ClinicalEntry[],
  firstOrgFhirId: string | undefined,
): Promise<void> {
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
      await tx
        .update(patients)
        .set({ ...values, version: sql`${patients.version} + 1`, updatedAt: now })
        .where(eq(patients.id, existing.id));
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
  for (const rows of chunked(inserts, INSERT_CHUNK)) await insertPatients.run(tx, rows);
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

async function writeClinicalEntries(
  run: Run,
  dir: Directory,
  index: BundleIndex,
  clinical: Map<string, ClinicalEntry>,
): Promise<Placed[]> {
  const { tx, crypto, counts, now } = run;
  const existingById = new Map<string, { id: string; kind: string; sourceMac: string | null }>();
  for (const ids of chunked([...clinical.keys()], LOOKUP_CHUNK)) {
    const rows = await tx
      .select({
        id: clinicalEntries.id,
        fhirId: clinicalEntries.fhirId,
        kind: clinicalEntries.kind,
        sourceMac: clinicalEntries.sourceMac,
      })
      .from(clinicalEntries)
      .where(inArray(clinicalEntries.fhirId, ids));
    for (const row of rows) if (row.fhirId) existingById.set(row.fhirId, row);
  }

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
      await tx
        .update(clinicalEntries)
        .set({ ...values, updatedAt: now })
        .where(eq(clinicalEntries.id, existing.id));
      bump(counts.updated, type);
    } else {
      inserts.push({ id, fhirId, ...values });
      bump(counts.created, type);
    }
  }
  for (const rows of chunked(inserts, INSERT_CHUNK)) await insertClinicalEntries.run(tx, rows);
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

async function writeAppointments(
  run: Run,
  dir: Directory,
  index: BundleIndex,
  placed: readonly Placed[],
): Promise<void> {
  const { tx, crypto, counts, now } = run;
  const encounters = placed.filter((p) => p.entry.type === "Encounter");
  const existingById = new Map<string, AppointmentPlain & { id: string }>();
  for (const ids of chunked(
    encounters.map((p) => p.entry.fhirId),
    LOOKUP_CHUNK,
  )) {
    const rows = await tx
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
      .where(inArray(appointments.fhirId, ids));
    for (const row of rows) if (row.fhirId) existingById.set(row.fhirId, row);
  }

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
      await tx
        .update(appointments)
        .set({ ...plain, reason, version: sql`${appointments.version} + 1`, updatedAt: now })
        .where(eq(appointments.id, existing.id));
      bump(counts.updated, "Appointment");
    } else {
      inserts.push({ id, fhirId: p.entry.fhirId, ...plain, reason });
      bump(counts.created, "Appointment");
    }
  }
  for (const rows of chunked(inserts, INSERT_CHUNK)) await insertAppointments.run(tx, rows);
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

async function writeCareRelationships(
  run: Run,
  dir: Directory,
  index: BundleIndex,
  placed: readonly Placed[],
): Promise<void> {
  const { tx, counts } = run;
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

  const existing = new Map<string, { validFrom: Date; validTo: Date | null }>();
  const patientIds = [...new Set([...wanted.values()].map((r) => r.patientId))];
  for (const ids of chunked(patientIds, LOOKUP_CHUNK)) {
    const rows = await tx
      .select({
        patientId: careRelationships.patientId,
        practitionerId: careRelationships.practitionerId,
        source: careRelationships.source,
        validFrom: careRelationships.validFrom,
        validTo: careRelationships.validTo,
      })
      .from(careRelationships)
      .where(inArray(careRelationships.patientId, ids));
    for (const r of rows) existing.set(`${r.patientId}|${r.practitionerId}|${r.source}`, r);
  }

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
  for (const rows of chunked(writes, INSERT_CHUNK)) await upsertCareRelationships.run(tx, rows);
}
