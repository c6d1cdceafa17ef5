import { isDeepStrictEqual } from "node:util";
import { asc, eq, inArray } from "drizzle-orm";
import {
  appointments,
  careRelationships,
  clinicalEntries,
  organizations,
  patients,
  practitioners,
} from "../../db/schema/index.ts";
import { uuidv7 } from "../../lib/uuid.ts";
import type { ServiceDeps } from "../deps.ts";
import type { Demographics } from "../kernel/demographics.ts";
import { NotFoundError } from "../kernel/errors.ts";
import { mapPatient, NPI_SYSTEM, SSN_SYSTEM } from "./map.ts";
import type { FhirResource } from "./types.ts";

/**
 * Export one patient's whole record as a FHIR R4 Bundle in the shape of `Patient/$everything`
 * (right of access, 45 CFR 164.524): the Patient, every clinical entry's resource as stored
 * (Encounter, Condition, Observation, Immunization, Procedure, DiagnosticReport, CarePlan,
 * CareTeam, notes), Appointments booked in Haven (those not already represented by an Encounter),
 * and the Organizations and Practitioners they reference.
 *
 * The bundle has type `collection` (the importer's accepted types) and `urn:uuid:` full URLs for
 * UUID ids, so references inside the stored resources resolve within the bundle: importing it
 * into an empty database yields the same decrypted patient, clinical entries, appointments and
 * care relationships (`export.test.ts` proves it for every fixture patient). Appointments booked in
 * Haven are exported as FHIR Appointments, which the importer counts and skips.
 */

/** A FHIR R4 Bundle as exported. */
export interface FhirBundle {
  resourceType: "Bundle";
  id: string;
  type: "collection";
  timestamp: string;
  meta: { lastUpdated: string };
  entry: { fullUrl?: string; resource: FhirResource }[];
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const MR_TYPE = {
  coding: [{ system: "http://terminology.hl7.org/CodeSystem/v2-0203", code: "MR" }],
  text: "Medical Record Number",
};

function entryFor(resource: FhirResource): FhirBundle["entry"][number] {
  const id = resource.id;
  return typeof id === "string" && UUID.test(id)
    ? { fullUrl: `urn:uuid:${id}`, resource }
    : { resource };
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function records(v: unknown): Record<string, unknown>[] {
  return Array.isArray(v) ? v.filter(isRecord) : [];
}

/**
 * The FHIR Patient for a record: the imported resource as stored when it still says what the
 * current demographics say; otherwise that resource (or a new one) with the demographics written
 * over it — official name, birth date, gender, first phone and e-mail, first address, SSN and MRN
 * identifiers, deceased — so `mapPatient(result)` equals `demographics`.
 * @param stored the resource imported for this patient, or null (patient created in Haven)
 * @param fhirId the id to give a new resource
 */
export function patientResourceFor(
  demographics: Demographics,
  stored: FhirResource | null,
  fhirId: string,
): FhirResource {
  if (stored && isDeepStrictEqual(mapPatient(stored), demographics)) return stored;
  const r: FhirResource = stored
    ? structuredClone(stored)
    : { resourceType: "Patient", id: fhirId };
  const d = demographics;
  const name: Record<string, unknown> = { use: "official" };
  if (d.name.family) name.family = d.name.family;
  if (d.name.given.length) name.given = [...d.name.given];
  if (d.name.prefix.length) name.prefix = [...d.name.prefix];
  if (d.name.suffix.length) name.suffix = [...d.name.suffix];
  r.name = [name, ...records(r.name).filter((n) => n.use !== "official")];
  if (d.birthDate) r.birthDate = d.birthDate;
  else delete r.birthDate;
  r.gender = d.sex;
  const telecom = records(r.telecom).filter((t) => t.system !== "phone" && t.system !== "email");
  r.telecom = [
    ...(d.phone ? [{ system: "phone", value: d.phone }] : []),
    ...(d.email ? [{ system: "email", value: d.email }] : []),
    ...telecom,
  ];
  if (d.address) {
    const a: Record<string, unknown> = {};
    if (d.address.line.length) a.line = [...d.address.line];
    if (d.address.city) a.city = d.address.city;
    if (d.address.state) a.state = d.address.state;
    if (d.address.postalCode) a.postalCode = d.address.postalCode;
    if (d.address.country) a.country = d.address.country;
    r.address = [a, ...records(r.address).slice(1)];
  } else {
    delete r.address;
  }
  const isMrn = (i: Record<string, unknown>) =>
    records((i.type as { coding?: unknown } | undefined)?.coding).some((c) => c.code === "MR");
  r.identifier = [
    ...records(r.identifier).filter((i) => i.system !== SSN_SYSTEM && !isMrn(i)),
    ...(d.mrn ? [{ type: MR_TYPE, value: d.mrn }] : []),
    ...(d.ssn ? [{ system: SSN_SYSTEM, value: d.ssn }] : []),
  ];
  delete r.deceasedBoolean;
  delete r.deceasedDateTime;
  if (typeof d.deceased === "string") r.deceasedDateTime = d.deceased;
  else if (d.deceased === true) r.deceasedBoolean = true;
  return r;
}

const APPOINTMENT_STATUS = {
  booked: "booked",
  checked_in: "arrived",
  completed: "fulfilled",
  cancelled: "cancelled",
  no_show: "noshow",
} as const;

/**
 * Build the export bundle of one patient. No access check here: callers are
 * `patients.exportMyRecord` (the patient, self) and operator tooling; the caller audits.
 * @param patientId Haven id of the patient
 * @returns the bundle (resources decrypted: handle as PHI)
 * @throws NotFoundError when the patient does not exist; DecryptionError when a value cannot be opened
 */
export async function exportPatientBundle(
  deps: ServiceDeps,
  patientId: string,
): Promise<FhirBundle> {
  const [row] = await deps.db
    .select({
      id: patients.id,
      organizationId: patients.organizationId,
      demographics: patients.demographics,
      resource: patients.resource,
    })
    .from(patients)
    .where(eq(patients.id, patientId))
    .limit(1);
  if (!row) throw new NotFoundError("Patient not found");
  const demographics = deps.crypto.open<Demographics>(
    "patients",
    "demographics",
    row.id,
    row.demographics,
  );
  const stored = row.resource
    ? deps.crypto.open<FhirResource>("patients", "resource", row.id, row.resource)
    : null;
  // The original FHIR id is in the decrypted resource; `patients.fhir_id` only holds its index.
  const patientFhirId = typeof stored?.id === "string" ? stored.id : row.id;
  const patient = patientResourceFor(demographics, stored, patientFhirId);
  const patientRef = UUID.test(patientFhirId)
    ? `urn:uuid:${patientFhirId}`
    : `Patient/${patientFhirId}`;

  const entryRows = await deps.db
    .select({
      id: clinicalEntries.id,
      fhirId: clinicalEntries.fhirId,
      body: clinicalEntries.body,
      authorPractitionerId: clinicalEntries.authorPractitionerId,
    })
    .from(clinicalEntries)
    .where(eq(clinicalEntries.patientId, row.id))
    .orderBy(asc(clinicalEntries.recordedAt), asc(clinicalEntries.id));
  const clinical = entryRows.map((e) => {
    const resource = deps.crypto.open<FhirResource>("clinical_entries", "body", e.id, e.body);
    if (typeof resource.id !== "string") resource.id = e.fhirId ?? e.id;
    return resource;
  });
  const encounterIds = new Set(
    clinical.filter((r) => r.resourceType === "Encounter").map((r) => r.id as string),
  );

  const appointmentRows = await deps.db
    .select({
      id: appointments.id,
      fhirId: appointments.fhirId,
      organizationId: appointments.organizationId,
      practitionerId: appointments.practitionerId,
      startsAt: appointments.startsAt,
      endsAt: appointments.endsAt,
      status: appointments.status,
      reason: appointments.reason,
    })
    .from(appointments)
    .where(eq(appointments.patientId, row.id))
    .orderBy(asc(appointments.startsAt), asc(appointments.id));
  const careRows = await deps.db
    .select({ practitionerId: careRelationships.practitionerId })
    .from(careRelationships)
    .where(eq(careRelationships.patientId, row.id));

  const practitionerIds = new Set<string>([
    ...appointmentRows.map((a) => a.practitionerId),
    ...careRows.map((c) => c.practitionerId),
    ...entryRows.flatMap((e) => (e.authorPractitionerId ? [e.authorPractitionerId] : [])),
  ]);
  const practitionerRows =
    practitionerIds.size === 0
      ? []
      : await deps.db
          .select({
            id: practitioners.id,
            fhirId: practitioners.fhirId,
            npi: practitioners.npi,
            name: practitioners.name,
            organizationId: practitioners.organizationId,
          })
          .from(practitioners)
          .where(inArray(practitioners.id, [...practitionerIds]))
          .orderBy(asc(practitioners.id));
  const practitionerFhirId = new Map(practitionerRows.map((p) => [p.id, p.fhirId ?? p.id]));

  const organizationIds = new Set<string>([
    row.organizationId,
    ...appointmentRows.map((a) => a.organizationId),
    ...practitionerRows.flatMap((p) => (p.organizationId ? [p.organizationId] : [])),
  ]);
  const organizationRows = await deps.db
    .select({ id: organizations.id, fhirId: organizations.fhirId, name: organizations.name })
    .from(organizations)
    .where(inArray(organizations.id, [...organizationIds]))
    .orderBy(asc(organizations.id));
  const organizationFhirId = new Map(organizationRows.map((o) => [o.id, o.fhirId ?? o.id]));
  const refTo = (type: string, id: string) => (UUID.test(id) ? `urn:uuid:${id}` : `${type}/${id}`);

  const organizationResources: FhirResource[] = organizationRows.map((o) => ({
    resourceType: "Organization",
    id: o.fhirId ?? o.id,
    name: o.name,
  }));
  const practitionerResources: FhirResource[] = practitionerRows.map((p) => ({
    resourceType: "Practitioner",
    id: p.fhirId ?? p.id,
    ...(p.npi ? { identifier: [{ system: NPI_SYSTEM, value: p.npi }] } : {}),
    name: [{ text: p.name }],
  }));
  const appointmentResources: FhirResource[] = appointmentRows
    .filter((a) => !(a.fhirId && encounterIds.has(a.fhirId)))
    .map((a) => {
      const reason = a.reason
        ? deps.crypto.open<string>("appointments", "reason", a.id, a.reason)
        : null;
      const practitionerId = practitionerFhirId.get(a.practitionerId) ?? a.practitionerId;
      const orgId = organizationFhirId.get(a.organizationId) ?? a.organizationId;
      return {
        resourceType: "Appointment",
        id: a.fhirId ?? a.id,
        status: APPOINTMENT_STATUS[a.status],
        start: a.startsAt.toISOString(),
        end: a.endsAt.toISOString(),
        ...(reason ? { reasonCode: [{ text: reason }] } : {}),
        participant: [
          { actor: { reference: patientRef }, status: "accepted" },
          { actor: { reference: refTo("Practitioner", practitionerId) }, status: "accepted" },
        ],
        supportingInformation: [{ reference: refTo("Organization", orgId) }],
      };
    });

  const now = deps.now().toISOString();
  return {
    resourceType: "Bundle",
    id: uuidv7(),
    type: "collection",
    timestamp: now,
    meta: { lastUpdated: now },
    entry: [
      entryFor(patient),
      ...organizationResources.map(entryFor),
      ...practitionerResources.map(entryFor),
      ...clinical.map(entryFor),
      ...appointmentResources.map(entryFor),
    ],
  };
}
