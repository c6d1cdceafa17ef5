/**
 * Patient demographics as stored (encrypted, one JSON column) and returned to authorised callers.
 * Mapped from FHIR R4 Patient: name (official), birthDate, gender, telecom, address, identifiers
 * (MRN: type code MR; SSN: system http://hl7.org/fhir/sid/us-ssn).
 */
export interface Demographics {
  name: { family: string; given: string[]; prefix: string[]; suffix: string[] };
  /** `YYYY-MM-DD` or null when unknown. */
  birthDate: string | null;
  /** FHIR administrative gender. */
  sex: "male" | "female" | "other" | "unknown";
  phone: string | null;
  email: string | null;
  address: {
    line: string[];
    city: string | null;
    state: string | null;
    postalCode: string | null;
    country: string | null;
  } | null;
  ssn: string | null;
  mrn: string | null;
  /** ISO date-time when deceased, `true` if deceased without a date, else null. */
  deceased: string | boolean | null;
}
