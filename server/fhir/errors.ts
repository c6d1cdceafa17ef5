import { ValidationError } from "../kernel/errors.ts";

/**
 * Why a bundle was rejected: bad input, an unresolvable required reference, a database refusal, or
 * an unexpected error inside the importer.
 */
export type FhirImportFailure = "malformed" | "unresolved" | "database" | "internal";

/**
 * A bundle (or file) could not be imported; nothing of it was written (one transaction per bundle).
 *
 * The message names at most the resource type and the entry's index in the bundle, never a value
 * from the resource (no names, identifiers or dates), and never a driver message (Drizzle quotes
 * query parameters in its messages). Extends `ValidationError`, so a router maps it to BAD_REQUEST.
 */
export class FhirImportError extends ValidationError {
  override name = "FhirImportError";
  /** Index of the offending entry in `Bundle.entry`, when one entry is to blame. */
  readonly entryIndex: number | undefined;
  /** FHIR resource type of the offending entry, when known. */
  readonly resourceType: string | undefined;
  /** SQLSTATE when the database refused the bundle. */
  readonly sqlState: string | undefined;
  /** Path of the file being imported, set by `importFiles` (operator input, not resource data). */
  file: string | undefined;

  constructor(
    message: string,
    readonly failure: FhirImportFailure,
    details: { entryIndex?: number; resourceType?: string; sqlState?: string; file?: string } = {},
  ) {
    super(message, `fhir_${failure}`);
    this.entryIndex = details.entryIndex;
    this.resourceType = details.resourceType;
    this.sqlState = details.sqlState;
    this.file = details.file;
  }
}

/** `entry 3 (Encounter)`: the PHI-free way to point at an entry in messages. */
export function describeEntry(index: number, resourceType?: string): string {
  return resourceType ? `entry ${index} (${resourceType})` : `entry ${index}`;
}
