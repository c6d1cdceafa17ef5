import { sql } from "drizzle-orm";
import type { Executor } from "../../db/client.ts";
import { rowsOf } from "../../db/rows.ts";
import { decryptString, ENVELOPE_VERSION } from "./envelope.ts";
import { KeyError, type Keyring } from "./keyring.ts";
import { type EncryptedColumnEntry, encryptedColumns } from "./registry.ts";

/**
 * Boot-time canary: for every key id that protects stored data, decrypt one real
 * value per encrypted column with this process's keyring. A server that could not read what is
 * stored must not start (it would answer every PHI read with an error while /readyz said ready).
 *
 * Cost: one `DISTINCT ON (key id)` scan per encrypted column (the key id is the envelope prefix),
 * no decryption beyond one value per (column, key id).
 */

/** One (column, key id) sample that failed. */
export interface CanaryFailure {
  table: string;
  column: string;
  keyId: string;
  reason: "key not loaded" | "does not decrypt";
}

async function tableExists(db: Executor, table: string): Promise<boolean> {
  const [row] = rowsOf<{ ok: boolean }>(
    await db.execute(sql`SELECT to_regclass(${`public.${table}`}) IS NOT NULL AS ok`),
  );
  return row?.ok === true;
}

/**
 * Decrypt one sample per (encrypted column, key id) found in the data.
 * @returns every failure (empty when the keyring reads everything that is stored)
 */
export async function keyCanaryFailures(
  db: Executor,
  keyring: Keyring,
  columns: EncryptedColumnEntry[] = encryptedColumns(),
): Promise<CanaryFailure[]> {
  const failures: CanaryFailure[] = [];
  const loaded = new Set(keyring.keyIds());
  for (const entry of columns) {
    if (!(await tableExists(db, entry.table))) continue;
    const col = sql.identifier(entry.column);
    const samples = rowsOf<{ key_id: string; id: string; value: string }>(
      await db.execute(sql`
        SELECT DISTINCT ON (split_part(${col}, ':', 2)) split_part(${col}, ':', 2) AS key_id,
               ${sql.identifier(entry.idColumn)}::text AS id, ${col} AS value
        FROM ${sql.identifier(entry.table)}
        WHERE ${col} IS NOT NULL AND starts_with(${col}, ${`${ENVELOPE_VERSION}:`})
        ORDER BY split_part(${col}, ':', 2)`),
    );
    for (const s of samples) {
      const base = { table: entry.table, column: entry.column, keyId: s.key_id };
      if (!loaded.has(s.key_id)) {
        failures.push({ ...base, reason: "key not loaded" });
        continue;
      }
      try {
        decryptString(keyring, { table: entry.table, column: entry.column, rowId: s.id }, s.value);
      } catch {
        failures.push({ ...base, reason: "does not decrypt" });
      }
    }
  }
  return failures;
}

/** True when any registered encrypted column holds a value (tables that do not exist yet count as empty). */
export async function databaseHoldsEncryptedData(
  db: Executor,
  columns: EncryptedColumnEntry[] = encryptedColumns(),
): Promise<boolean> {
  for (const entry of columns) {
    if (!(await tableExists(db, entry.table))) continue;
    const col = sql.identifier(entry.column);
    const [row] = rowsOf<{ found: boolean }>(
      await db.execute(
        sql`SELECT EXISTS (SELECT 1 FROM ${sql.identifier(entry.table)} WHERE ${col} IS NOT NULL) AS found`,
      ),
    );
    if (row?.found) return true;
  }
  return false;
}

/**
 * One-line description of canary failures for an operator (key ids and column names only).
 * @returns the message, naming at most three columns per key id
 */
export function describeCanaryFailures(failures: CanaryFailure[]): string {
  const byKey = new Map<string, { reason: CanaryFailure["reason"]; columns: string[] }>();
  for (const f of failures) {
    const e = byKey.get(f.keyId) ?? { reason: f.reason, columns: [] };
    e.columns.push(`${f.table}.${f.column}`);
    byKey.set(f.keyId, e);
  }
  const parts = [...byKey].map(([id, e]) => {
    const cols = e.columns.slice(0, 3).join(", ") + (e.columns.length > 3 ? ", …" : "");
    return e.reason === "key not loaded"
      ? `key "${id}" protects stored data (${cols}) but is not loaded`
      : `key "${id}" is loaded but does not decrypt stored data (${cols}): wrong key material for that id`;
  });
  return (
    `The configured PHI keys cannot decrypt data in this database: ${parts.join("; ")}. ` +
    "Check HAVEN_PHI_KEYS (or that HAVEN_DATA_DIR points at the directory holding the original keys.json)."
  );
}

/**
 * Startup guard: refuse to serve when the keyring cannot decrypt stored data.
 * @throws KeyError with {@link describeCanaryFailures}'s message
 */
export async function assertKeysDecryptData(db: Executor, keyring: Keyring): Promise<void> {
  const failures = await keyCanaryFailures(db, keyring);
  if (failures.length > 0) throw new KeyError(describeCanaryFailures(failures));
}
