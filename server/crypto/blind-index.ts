import { createHmac, hkdfSync } from "node:crypto";
import type { Keyring } from "./keyring.ts";

/**
 * Blind indexes: deterministic HMAC-SHA-256 over a normalised value, with a key derived per field
 * (HKDF-SHA-256, info `haven-blind-index:v1:<field>`), so equal values can be found by exact match
 * without storing them, and an index of one field cannot be joined against another's.
 */
export type BlindIndexField =
  | "patient.mrn"
  | "patient.email"
  | "patient.family_birth"
  | "patient.fhir_id"
  | "user.email"
  | "fhir.source";

const derived = new WeakMap<Buffer, Map<BlindIndexField, Buffer>>();

function fieldKey(keyring: Keyring, field: BlindIndexField): Buffer {
  let perRoot = derived.get(keyring.blindIndexKey);
  if (!perRoot) {
    perRoot = new Map();
    derived.set(keyring.blindIndexKey, perRoot);
  }
  let key = perRoot.get(field);
  if (!key) {
    key = Buffer.from(
      hkdfSync(
        "sha256",
        keyring.blindIndexKey,
        Buffer.alloc(0),
        `haven-blind-index:v1:${field}`,
        32,
      ),
    );
    perRoot.set(field, key);
  }
  return key;
}

/** Normalise free text for exact matching: Unicode NFKC, trimmed, inner whitespace collapsed, lower case. */
export function normalizeForIndex(value: string): string {
  return value.normalize("NFKC").trim().replace(/\s+/g, " ").toLowerCase();
}

/**
 * Compute the blind index of an already-normalised value.
 * @returns base64url HMAC (43 chars)
 */
export function blindIndex(keyring: Keyring, field: BlindIndexField, normalized: string): string {
  return createHmac("sha256", fieldKey(keyring, field))
    .update(normalized, "utf8")
    .digest("base64url");
}

/** Index for family name + birth date (`YYYY-MM-DD`), the portal's name search. */
export function familyBirthIndex(keyring: Keyring, family: string, birthDate: string): string {
  return blindIndex(keyring, "patient.family_birth", `${normalizeForIndex(family)}|${birthDate}`);
}
