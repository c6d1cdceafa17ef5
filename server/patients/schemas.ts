import { z } from "zod";
import { fhirCollectionBundleOutput, fhirResourceOutput } from "../fhir/schemas.ts";

const isoDate = z
  .string()
  .regex(/^\d{4}-\d{2}-\d{2}$/, "expected YYYY-MM-DD")
  .refine((s) => !Number.isNaN(Date.parse(`${s}T00:00:00Z`)), "not a calendar date");

/** `patients.search` input: exactly one of MRN, or family name + birth date. */
export const searchInput = z.union([
  z.strictObject({ mrn: z.string().trim().min(1).max(64) }),
  z.strictObject({ family: z.string().trim().min(1).max(100), birthDate: isoDate }),
]);

export const getInput = z.strictObject({
  patientId: z.uuid(),
  /** Most recent clinical entries to return (1–500, default 200). */
  entryLimit: z.number().int().min(1).max(500).default(200),
});

/**
 * Demographics as returned. Each role gets exactly its whitelist
 * (`patientViewFor(role).demographicFields`): every role that may read a record sees the
 * front-desk fields; the SSN only the patient themself — absent (not null) for everyone else.
 */
export const demographicsOutput = z.object({
  name: z.object({
    family: z.string(),
    given: z.array(z.string()),
    prefix: z.array(z.string()),
    suffix: z.array(z.string()),
  }),
  birthDate: z.string().nullable(),
  sex: z.enum(["male", "female", "other", "unknown"]),
  phone: z.string().nullable(),
  email: z.string().nullable(),
  address: z
    .object({
      line: z.array(z.string()),
      city: z.string().nullable(),
      state: z.string().nullable(),
      postalCode: z.string().nullable(),
      country: z.string().nullable(),
    })
    .nullable(),
  ssn: z.string().nullable().optional(),
  mrn: z.string().nullable(),
  deceased: z.union([z.string(), z.boolean()]).nullable(),
});

export const searchOutput = z.array(
  z.object({
    id: z.uuid(),
    organizationId: z.uuid(),
    name: z.object({ family: z.string(), given: z.array(z.string()) }),
    birthDate: z.string().nullable(),
    sex: z.enum(["male", "female", "other", "unknown"]),
    mrn: z.string().nullable(),
  }),
);

export const clinicalKind = z.enum([
  "encounter",
  "condition",
  "observation",
  "immunization",
  "procedure",
  "diagnostic-report",
  "care-plan",
  "care-team",
  "note",
]);

/**
 * `patients.get` output. Clinical entries are listed for every role that may read the record;
 * `resource` (the FHIR body) only for roles whose view includes clinical bodies (patient self,
 * clinicians). `access` says on what basis the read was allowed (`break_glass` under an emergency
 * grant).
 */
export const getOutput = z.object({
  id: z.uuid(),
  organizationId: z.uuid(),
  version: z.number().int(),
  access: z.enum(["self", "care_relationship", "break_glass", "organization"]),
  demographics: demographicsOutput,
  entries: z.array(
    z.object({
      id: z.uuid(),
      kind: clinicalKind,
      recordedAt: z.date(),
      source: z.enum(["fhir-import", "portal"]),
      /** The FHIR R4 resource; omitted for roles that may not see clinical content. */
      resource: fhirResourceOutput.optional(),
    }),
  ),
  entriesTruncated: z.boolean(),
});

/** `patients.exportMyRecord` input: nothing (the caller's own record). */
export const exportMyRecordInput = z.strictObject({}).optional();

/** A FHIR R4 Bundle (type `collection`, Patient/$everything content). */
export const fhirBundleOutput = fhirCollectionBundleOutput;
