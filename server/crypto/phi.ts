import type { Ciphertext } from "../../db/schema/columns.ts";
import {
  type BlindIndexField,
  blindIndex,
  familyBirthIndex,
  normalizeForIndex,
} from "./blind-index.ts";
import { type CipherContext, decryptJson, encryptJson } from "./envelope.ts";
import type { Keyring } from "./keyring.ts";

/**
 * The one entry point services use to seal and open PHI and to compute blind indexes.
 * `table`/`column` are the SQL names; `rowId` the row's UUID (minted before the insert).
 */
export class PhiCrypto {
  constructor(readonly keyring: Keyring) {}

  /** Encrypt a JSON-serialisable value for `table.column` of row `rowId`. */
  seal(table: string, column: string, rowId: string, value: unknown): Ciphertext {
    return encryptJson(this.keyring, { table, column, rowId }, value) as Ciphertext;
  }

  /** Decrypt a value sealed by {@link seal} for the same place. @throws DecryptionError */
  open<T>(table: string, column: string, rowId: string, envelope: Ciphertext | string): T {
    const ctx: CipherContext = { table, column, rowId };
    return decryptJson<T>(this.keyring, ctx, envelope);
  }

  /** Blind index of a free-text value (normalised first). */
  index(field: BlindIndexField, value: string): string {
    return blindIndex(this.keyring, field, normalizeForIndex(value));
  }

  /**
   * Blind index of an exact value, NOT normalised (case- and whitespace-sensitive), for
   * identifiers such as FHIR ids (`[A-Za-z0-9\-.]{1,64}`, case-sensitive).
   */
  indexExact(field: BlindIndexField, value: string): string {
    return blindIndex(this.keyring, field, value);
  }

  /** Blind index stored in `patients.fhir_id` for a source FHIR Patient id. */
  patientFhirId(fhirId: string): string {
    return this.indexExact("patient.fhir_id", fhirId);
  }

  /** Blind index for family name + birth date (`YYYY-MM-DD`). */
  familyBirth(family: string, birthDate: string): string {
    return familyBirthIndex(this.keyring, family, birthDate);
  }
}
