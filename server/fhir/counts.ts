/** Per-type import counters, shared by the importer and its writers. */

/** Per-type counters. Keys are FHIR types, `Appointment`, `CareRelationship`, or `<Type>.<why>`. */
export type TypeCounts = Record<string, number>;

export interface ImportCounts {
  /** Rows inserted, per type. */
  created: TypeCounts;
  /** Rows rewritten because the input changed, per type. */
  updated: TypeCounts;
  /** Input that matched the stored row, which was left untouched, per type. */
  unchanged: TypeCounts;
  /**
   * Entries not stored: unknown types under their type (`Claim`), and `<Type>.orphan` (patient
   * neither in the bundle nor the database), `<Type>.duplicate` (same FHIR id earlier in the
   * bundle; the last one wins), `<Type>.id-conflict` (FHIR id held by a clinical entry of another
   * kind), `Encounter.appointment` (encounter without a resolvable practitioner or start time).
   */
  skipped: TypeCounts;
}

export function emptyCounts(): ImportCounts {
  return { created: {}, updated: {}, unchanged: {}, skipped: {} };
}

/** Add `n` to `counts[key]` (a zero leaves the key absent). */
export function bump(counts: TypeCounts, key: string, n = 1): void {
  if (n !== 0) counts[key] = (counts[key] ?? 0) + n;
}

/** Add every counter of `from` into `into`. */
export function mergeCounts(into: ImportCounts, from: ImportCounts): void {
  for (const k of ["created", "updated", "unchanged", "skipped"] as const) {
    for (const [type, n] of Object.entries(from[k])) bump(into[k], type, n);
  }
}
