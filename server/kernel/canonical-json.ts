/**
 * Canonical JSON: object keys sorted (code-unit order) at every depth, array order kept, no
 * whitespace, `undefined` members dropped. Two resources that differ only in key order map to the
 * same string.
 *
 * The text is hashed into stored values (`source_mac` of imported FHIR resources, the audit hash
 * chain), so it must never change: `canonical-json.test.ts` pins it against the first
 * (map/join) implementation, which this single-pass one replaced to cut the FHIR importer's
 * intermediate arrays and strings (bench/results/optimisations.md §10). Values other than
 * objects, arrays and JSON primitives render as `JSON.stringify` renders them, or `null`
 * (functions, symbols); `toJSON` is not called (a `Date` is `{}`); array holes render as nothing.
 * @throws TypeError for a `bigint` (as `JSON.stringify`)
 */
export function canonicalJson(value: unknown): string {
  return append("", value);
}

function append(out: string, value: unknown): string {
  if (typeof value === "string") return out + JSON.stringify(value);
  if (value === null || typeof value !== "object") return out + (JSON.stringify(value) ?? "null");
  if (Array.isArray(value)) {
    let s = `${out}[`;
    for (let i = 0; i < value.length; i++) {
      if (i > 0) s += ",";
      if (!(i in value)) continue;
      const v: unknown = value[i];
      s = v === undefined ? `${s}null` : append(s, v);
    }
    return `${s}]`;
  }
  const obj = value as Record<string, unknown>;
  const keys = Object.keys(obj).sort();
  let s = `${out}{`;
  let first = true;
  for (const k of keys) {
    const v = obj[k];
    if (v === undefined) continue;
    s = append(`${first ? s : `${s},`}${JSON.stringify(k)}:`, v);
    first = false;
  }
  return `${s}}`;
}
