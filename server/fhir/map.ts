import type { appointmentStatusEnum, clinicalKindEnum } from "../../db/schema/index.ts";
import type { Demographics } from "../kernel/demographics.ts";
import type {
  ClinicalType,
  FhirCodeableConcept,
  FhirHumanName,
  FhirIdentifier,
  FhirPeriod,
  FhirResource,
} from "./types.ts";

/**
 * Pure mappers from FHIR R4 resources to Haven's shapes. No database, no crypto, no clock (the
 * import time is passed in). Input is untrusted JSON: every field is shape-checked, and a field of
 * the wrong type is treated as absent rather than trusted.
 */

export type ClinicalKind = (typeof clinicalKindEnum.enumValues)[number];
export type AppointmentStatus = (typeof appointmentStatusEnum.enumValues)[number];

export const SSN_SYSTEM = "http://hl7.org/fhir/sid/us-ssn";
export const NPI_SYSTEM = "http://hl7.org/fhir/sid/us-npi";
export const SYNTHEA_SYSTEM = "https://github.com/synthetichealth/synthea";
/** An appointment whose encounter has no usable end lasts this long. */
export const DEFAULT_VISIT_MS = 15 * 60_000;

// ---- shape-checked accessors -------------------------------------------------------------------

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function str(v: unknown): string | undefined {
  return typeof v === "string" && v.length > 0 ? v : undefined;
}

function records(v: unknown): Record<string, unknown>[] {
  return Array.isArray(v) ? v.filter(isRecord) : [];
}

function strings(v: unknown): string[] {
  return Array.isArray(v)
    ? v.filter((s): s is string => typeof s === "string" && s.length > 0)
    : [];
}

function period(v: unknown): FhirPeriod | undefined {
  if (!isRecord(v)) return undefined;
  const p: FhirPeriod = {};
  const start = str(v.start);
  const end = str(v.end);
  if (start) p.start = start;
  if (end) p.end = end;
  return p;
}

/** `reference` string of a FHIR Reference value, if any. */
export function referenceOf(v: unknown): string | undefined {
  return isRecord(v) ? str(v.reference) : undefined;
}

function identifiers(resource: FhirResource): FhirIdentifier[] {
  return records(resource.identifier) as FhirIdentifier[];
}

/** Value of the first identifier with `system`, or null. */
export function identifierValue(resource: FhirResource, system: string): string | null {
  const found = identifiers(resource).find((i) => i.system === system && str(i.value));
  return found?.value ?? null;
}

const FHIR_DATE_TIME =
  /^\d{4}(-\d{2}(-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})?)?)?)?$/;

/**
 * Parse a FHIR `date`, `dateTime` or `instant` (`2020`, `2020-03`, `2020-03-06`,
 * `2020-03-06T20:20:23-08:00`). Partial dates and times without an offset are read as UTC.
 * @returns the instant, or null when the text is not a valid FHIR date/time
 */
export function parseFhirDateTime(value: unknown): Date | null {
  if (typeof value !== "string" || !FHIR_DATE_TIME.test(value)) return null;
  const hasTime = value.includes("T");
  const hasZone = /(Z|[+-]\d{2}:\d{2})$/.test(value);
  const d = new Date(hasTime && !hasZone ? `${value}Z` : value);
  return Number.isNaN(d.getTime()) ? null : d;
}

// ---- Patient -----------------------------------------------------------------------------------

function chooseName(resource: FhirResource): FhirHumanName | undefined {
  const names = records(resource.name) as FhirHumanName[];
  return names.find((n) => n.use === "official") ?? names[0];
}

/**
 * FHIR Patient → {@link Demographics}: the official name (else the first), birthDate, gender (any
 * other value → "unknown"), first phone, first e-mail, first address, SSN (identifier system
 * `http://hl7.org/fhir/sid/us-ssn`), MRN (identifier whose type has code `MR`),
 * deceasedDateTime / deceasedBoolean (`false` → null). Missing values are null / empty.
 */
export function mapPatient(resource: FhirResource): Demographics {
  const name = chooseName(resource);
  const telecom = records(resource.telecom);
  const phone = telecom.find((t) => t.system === "phone" && str(t.value));
  const email = telecom.find((t) => t.system === "email" && str(t.value));
  const addr = records(resource.address)[0];
  const mrn = identifiers(resource).find(
    (i) => str(i.value) && records(i.type?.coding).some((c) => c.code === "MR"),
  );
  const gender = resource.gender;
  const deceasedDateTime = str(resource.deceasedDateTime);
  return {
    name: {
      family: str(name?.family) ?? "",
      given: strings(name?.given),
      prefix: strings(name?.prefix),
      suffix: strings(name?.suffix),
    },
    birthDate: str(resource.birthDate) ?? null,
    sex: gender === "male" || gender === "female" || gender === "other" ? gender : "unknown",
    phone: str(phone?.value) ?? null,
    email: str(email?.value) ?? null,
    address: addr
      ? {
          line: strings(addr.line),
          city: str(addr.city) ?? null,
          state: str(addr.state) ?? null,
          postalCode: str(addr.postalCode) ?? null,
          country: str(addr.country) ?? null,
        }
      : null,
    ssn: identifierValue(resource, SSN_SYSTEM),
    mrn: str(mrn?.value) ?? null,
    deceased: deceasedDateTime ?? (resource.deceasedBoolean === true ? true : null),
  };
}

/** `Patient.managingOrganization` reference, if any. */
export function managingOrganizationReference(patient: FhirResource): string | undefined {
  return referenceOf(patient.managingOrganization);
}

// ---- Practitioner, Organization ----------------------------------------------------------------

/**
 * FHIR Practitioner → `{ name: "Dr. Given Family", npi }`. The prefix is the name's own (default
 * "Dr."), then given names, family name and suffixes; NPI is the identifier with system
 * `http://hl7.org/fhir/sid/us-npi` (null when absent). A practitioner without any name part gets
 * `name.text`, else "Unnamed practitioner".
 */
export function mapPractitioner(resource: FhirResource): { name: string; npi: string | null } {
  const name = chooseName(resource);
  const core = [...strings(name?.given), str(name?.family)].filter((s): s is string => !!s);
  let display: string;
  if (core.length > 0) {
    const prefix = strings(name?.prefix);
    display = [...(prefix.length > 0 ? prefix : ["Dr."]), ...core, ...strings(name?.suffix)].join(
      " ",
    );
  } else {
    display = str(name?.text) ?? "Unnamed practitioner";
  }
  return { name: display, npi: identifierValue(resource, NPI_SYSTEM) };
}

/** FHIR Organization → `{ name }` ("Unnamed organization" when absent). */
export function mapOrganization(resource: FhirResource): { name: string } {
  return { name: str(resource.name)?.trim() || "Unnamed organization" };
}

// ---- clinical resources ------------------------------------------------------------------------

/** clinical_kind for a clinical FHIR type. */
export function clinicalKind(type: ClinicalType): ClinicalKind {
  switch (type) {
    case "Encounter":
      return "encounter";
    case "Condition":
      return "condition";
    case "Observation":
      return "observation";
    case "Immunization":
      return "immunization";
    case "Procedure":
      return "procedure";
    case "DiagnosticReport":
      return "diagnostic-report";
    case "CarePlan":
      return "care-plan";
    case "CareTeam":
      return "care-team";
  }
}

/** Paths tried, in order, for a clinical resource's main time. */
const TIME_PATHS: readonly (readonly [string, string?])[] = [
  ["effectiveDateTime"],
  ["occurrenceDateTime"],
  ["recordedDate"],
  ["onsetDateTime"],
  ["performedPeriod", "start"],
  ["performedDateTime"],
  ["period", "start"],
  ["issued"],
  ["effectivePeriod", "start"],
  ["effectiveInstant"],
  ["onsetPeriod", "start"],
  ["created"],
];

/** The resource's main time (see TIME_PATHS), or null when none parses. */
export function mainTime(resource: FhirResource): Date | null {
  for (const [key, sub] of TIME_PATHS) {
    const v = resource[key];
    const raw = sub ? (isRecord(v) ? v[sub] : undefined) : v;
    const d = parseFhirDateTime(raw);
    if (d) return d;
  }
  return null;
}

/**
 * Clinical FHIR resource → `{ kind, recordedAt }`. `recordedAt` is the first parseable of
 * effectiveDateTime, occurrenceDateTime, recordedDate, onsetDateTime, performedPeriod.start,
 * performedDateTime, period.start, issued (then effectivePeriod.start, effectiveInstant,
 * onsetPeriod.start, created), else `importedAt`.
 */
export function mapClinical(
  type: ClinicalType,
  resource: FhirResource,
  importedAt: Date,
): { kind: ClinicalKind; recordedAt: Date } {
  return { kind: clinicalKind(type), recordedAt: mainTime(resource) ?? importedAt };
}

/** The patient a clinical resource is about: `subject`, else `patient`. */
export function patientReference(resource: FhirResource): string | undefined {
  return referenceOf(resource.subject) ?? referenceOf(resource.patient);
}

/**
 * Candidate authors of a clinical resource, in order of preference (recorder, performer, asserter
 * and their per-type equivalents). The importer keeps the first that resolves to a Practitioner.
 */
export function authorReferences(type: ClinicalType, resource: FhirResource): string[] {
  const out: (string | undefined)[] = [];
  const actors = (v: unknown) => records(v).map((p) => referenceOf(p.actor) ?? referenceOf(p));
  switch (type) {
    case "Encounter":
      out.push(...encounterPractitionerReferences(resource));
      break;
    case "Condition":
      out.push(referenceOf(resource.recorder), referenceOf(resource.asserter));
      break;
    case "Observation":
      out.push(...actors(resource.performer));
      break;
    case "Immunization":
      out.push(...actors(resource.performer));
      break;
    case "Procedure":
      out.push(
        referenceOf(resource.recorder),
        ...actors(resource.performer),
        referenceOf(resource.asserter),
      );
      break;
    case "DiagnosticReport":
      out.push(...actors(resource.performer), ...actors(resource.resultsInterpreter));
      break;
    case "CarePlan":
      out.push(referenceOf(resource.author), ...actors(resource.contributor));
      break;
    case "CareTeam":
      break;
  }
  return out.filter((r): r is string => !!r);
}

/** `Encounter.participant[].individual` references, in order. */
export function encounterPractitionerReferences(encounter: FhirResource): string[] {
  return records(encounter.participant)
    .map((p) => referenceOf(p.individual))
    .filter((r): r is string => !!r);
}

/** `Encounter.serviceProvider` reference, if any. */
export function serviceProviderReference(encounter: FhirResource): string | undefined {
  return referenceOf(encounter.serviceProvider);
}

/** `CareTeam.participant[].member` references, in order. */
export function careTeamMemberReferences(careTeam: FhirResource): string[] {
  return records(careTeam.participant)
    .map((p) => referenceOf(p.member))
    .filter((r): r is string => !!r);
}

/** `CareTeam.period` as instants (either may be null). */
export function careTeamPeriod(careTeam: FhirResource): { start: Date | null; end: Date | null } {
  const p = period(careTeam.period);
  return { start: parseFhirDateTime(p?.start), end: parseFhirDateTime(p?.end) };
}

/**
 * Appointment window of an Encounter from `period`: null without a parseable start; when the end
 * is missing, unparseable or not after the start, the visit lasts {@link DEFAULT_VISIT_MS}.
 */
export function encounterWindow(encounter: FhirResource): { startsAt: Date; endsAt: Date } | null {
  const p = period(encounter.period);
  const startsAt = parseFhirDateTime(p?.start);
  if (!startsAt) return null;
  const end = parseFhirDateTime(p?.end);
  const endsAt =
    end && end.getTime() > startsAt.getTime()
      ? end
      : new Date(startsAt.getTime() + DEFAULT_VISIT_MS);
  return { startsAt, endsAt };
}

/**
 * Appointment status for an Encounter status: finished → completed, cancelled → cancelled,
 * entered-in-error → null (no appointment). Otherwise by time: a past `planned` encounter is a
 * no_show, any other past one completed; a future `arrived`/`triaged`/`in-progress`/`onleave` one
 * checked_in, any other future one booked.
 */
export function appointmentStatus(
  status: unknown,
  endsAt: Date,
  now: Date,
): AppointmentStatus | null {
  switch (status) {
    case "finished":
      return "completed";
    case "cancelled":
      return "cancelled";
    case "entered-in-error":
      return null;
  }
  const past = endsAt.getTime() <= now.getTime();
  if (status === "planned") return past ? "no_show" : "booked";
  if (past) return "completed";
  return status === "arrived" ||
    status === "triaged" ||
    status === "in-progress" ||
    status === "onleave"
    ? "checked_in"
    : "booked";
}

/** Appointment reason text: `type[0].text`, else `reasonCode[0].text`, else null. PHI: seal it. */
export function encounterReason(encounter: FhirResource): string | null {
  const type0 = records(encounter.type)[0] as FhirCodeableConcept | undefined;
  const reason0 = records(encounter.reasonCode)[0] as FhirCodeableConcept | undefined;
  return str(type0?.text) ?? str(reason0?.text) ?? null;
}
