import { canonicalJson } from "../kernel/canonical-json.ts";
import { blindIndex } from "./blind-index.ts";
import type { PhiCrypto } from "./phi.ts";

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
