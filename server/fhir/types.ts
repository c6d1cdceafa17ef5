/**
 * The slice of FHIR R4 the importer reads. Resources stay `unknown`-typed JSON beyond these fields;
 * every accessor in `map.ts` checks shapes at run time, since input is untrusted.
 */

/** Any FHIR resource: a JSON object with a `resourceType`. */
export interface FhirResource {
  resourceType: string;
  id?: string;
  [key: string]: unknown;
}

/** FHIR Reference (only the literal `reference` string is used for resolution). */
export interface FhirReference {
  reference?: string;
  display?: string;
}

export interface FhirCoding {
  system?: string;
  code?: string;
  display?: string;
}

export interface FhirCodeableConcept {
  coding?: FhirCoding[];
  text?: string;
}

export interface FhirIdentifier {
  system?: string;
  value?: string;
  type?: FhirCodeableConcept;
}

export interface FhirHumanName {
  use?: string;
  text?: string;
  family?: string;
  given?: string[];
  prefix?: string[];
  suffix?: string[];
}

export interface FhirPeriod {
  start?: string;
  end?: string;
}

/** One validated `Bundle.entry`: the resource plus the id the importer keys it by. */
export interface BundleEntry {
  /** Position in `Bundle.entry` (for PHI-free error messages). */
  index: number;
  fullUrl: string | undefined;
  resource: FhirResource;
  /** `resource.id`, or the uuid of a `urn:uuid:` fullUrl when the resource has no id. */
  fhirId: string;
}

/** Resource types the importer stores. */
export const HANDLED_TYPES = [
  "Patient",
  "Practitioner",
  "Organization",
  "Encounter",
  "Condition",
  "Observation",
  "Immunization",
  "Procedure",
  "DiagnosticReport",
  "CarePlan",
  "CareTeam",
] as const;
export type HandledType = (typeof HANDLED_TYPES)[number];

/** Handled types that become `clinical_entries` rows. */
export type ClinicalType = Exclude<HandledType, "Patient" | "Practitioner" | "Organization">;

export function isHandledType(type: string): type is HandledType {
  return (HANDLED_TYPES as readonly string[]).includes(type);
}

export function isClinicalType(type: string): type is ClinicalType {
  return (
    isHandledType(type) && type !== "Patient" && type !== "Practitioner" && type !== "Organization"
  );
}
