import { blindIndex } from "../crypto/blind-index.ts";
import type { PhiCrypto } from "../crypto/phi.ts";

/**
 * Canonical JSON: object keys sorted (code-unit order) at every depth, array order kept, no
 * whitespace, `undefined` members dropped. Two resources that differ only in key order map to the
 * same string.
 */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== "object") {
    return JSON.stringify(value) ?? "null";
  }
  if (Array.isArray(value)) {
    return `[${value.map((v) => (v === undefined ? "null" : canonicalJson(v))).join(",")}]`;
  }
  const obj = value as Record<string, unknown>;
  const keys = Object.keys(obj)
    .filter((k) => obj[k] !== undefined)
    .sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(obj[k])}`).join(",")}}`;
}

/**
 * Keyed MAC of an imported FHIR resource (`source_mac`): HMAC-SHA-256 with the `fhir.source`
 * blind-index key over the canonical JSON, base64url (43 chars).
 *
 * Computed over the exact canonical text, not through `PhiCrypto.index`, whose normalisation
 * (lower case, collapsed whitespace) would make a case-only correction, e.g. of a name, look
 * unchanged and be skipped on re-import.
 */
export function sourceMac(crypto: PhiCrypto, resource: unknown): string {
  return blindIndex(crypto.keyring, "fhir.source", canonicalJson(resource));
}
