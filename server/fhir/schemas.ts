import type { Bundle, BundleEntry, FhirResource } from "fhir/r4.js";
import { z } from "zod";

/**
 * A FHIR R4 resource as Haven returns it (clinical entry bodies, export bundle entries). At run
 * time the envelope is checked (an object with a non-empty `resourceType`; every other field is
 * kept as stored, which the importer took from a validated Bundle); the type is the R4 definition
 * from `@types/fhir` (`FhirResource`, the union of every R4 resource), so SDK callers narrow on
 * `resourceType` instead of reading `Record<string, unknown>`. HL7 FHIR R4 §2.1.27 (Resource).
 */
export const fhirResourceOutput = z
  .looseObject({ resourceType: z.string().min(1), id: z.string().optional() })
  .transform((resource) => resource as unknown as FhirResource);

/**
 * A FHIR R4 `Bundle` of type `collection` (Patient/$everything content, HL7 FHIR R4 §3.1.1.4), typed
 * as `Bundle<FhirResource>` from `@types/fhir`.
 */
export const fhirCollectionBundleOutput = z
  .object({
    resourceType: z.literal("Bundle"),
    type: z.literal("collection"),
    id: z.string(),
    timestamp: z.string(),
    meta: z.object({ lastUpdated: z.string() }),
    entry: z.array(z.object({ fullUrl: z.string().optional(), resource: fhirResourceOutput })),
  })
  .transform(
    (bundle): Bundle<FhirResource> & { type: "collection"; entry: BundleEntry<FhirResource>[] } =>
      bundle,
  );
