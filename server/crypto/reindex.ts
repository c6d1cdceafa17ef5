import { setTimeout as sleep } from "node:timers/promises";
import { type SQL, sql } from "drizzle-orm";
import { getTableConfig, type PgColumn, type PgTable } from "drizzle-orm/pg-core";
import type { Database } from "../../db/client.ts";
import { rowsOf } from "../../db/rows.ts";
import { clinicalEntries, invitations, patients, users } from "../../db/schema/index.ts";
import type { Demographics } from "../kernel/demographics.ts";
import { DecryptionError, decryptJson } from "./envelope.ts";
import { recordBlindIndexFingerprint } from "./fingerprint.ts";
import type { PhiCrypto } from "./phi.ts";
import { sourceMac } from "./source-mac.ts";

/**
 * Rebuilding blind indexes after a blind-index key change (`npm run keys -- reindex`).
 *
 * Each {@link ReindexRule} says how one table's index columns derive from one of its encrypted
 * columns. The run decrypts the source (PHI keys are unchanged), recomputes the indexes under the
 * keyring's CURRENT blind-index key and writes only rows whose indexes differ, with a conditional
 * UPDATE on the source ciphertext so a concurrent edit is never overwritten. When every row is
 * done it records the key's fingerprint (`key_metadata`), which is what lets servers with the new
 * key start. Blind indexes carry no key id, so a killed run is resumed by running it again (rows
 * already right are read, not written).
 */

/** How one table's keyed columns derive from one of its encrypted columns. */
export interface ReindexRule {
  table: PgTable;
  /** The encrypted column holding the plaintext the indexes derive from. */
  source: PgColumn;
  /** Every column this rule writes (blind indexes, source MACs). */
  targets: PgColumn[];
  /** Only rows where this holds (SQL over the table's own columns). */
  where?: SQL;
  /** Target values (by SQL column name) for one decrypted source value. */
  compute(crypto: PhiCrypto, plain: unknown): Record<string, string | null>;
}

/** The canonical blind indexes of a patient's demographics (same rules as the importer). */
export function patientIndexes(
  crypto: PhiCrypto,
  d: Demographics,
): { mrn_index: string | null; email_index: string | null; family_birth_index: string | null } {
  return {
    mrn_index: d.mrn ? crypto.index("patient.mrn", d.mrn) : null,
    email_index: d.email ? crypto.index("patient.email", d.email) : null,
    family_birth_index:
      d.name.family && d.birthDate ? crypto.familyBirth(d.name.family, d.birthDate) : null,
  };
}

/** Every keyed derived column Haven stores. `reindex.test.ts` fails when a blind-index column is missing. */
export const REINDEX_RULES: ReindexRule[] = [
  {
    table: patients,
    source: patients.demographics,
    targets: [patients.mrnIndex, patients.emailIndex, patients.familyBirthIndex],
    compute: (crypto, plain) => patientIndexes(crypto, plain as Demographics),
  },
  {
    table: patients,
    source: patients.resource,
    targets: [patients.sourceMac],
    where: sql`${sql.identifier("source_mac")} IS NOT NULL`,
    compute: (crypto, plain) => ({ source_mac: sourceMac(crypto, plain) }),
  },
  {
    // `fhir_id` is the keyed index of the imported resource's id (rows without one keep null).
    table: patients,
    source: patients.resource,
    targets: [patients.fhirId],
    compute: (crypto, plain) => {
      const id = (plain as { id?: unknown } | null)?.id;
      return { fhir_id: typeof id === "string" ? crypto.patientFhirId(id) : null };
    },
  },
  {
    table: clinicalEntries,
    source: clinicalEntries.body,
    targets: [clinicalEntries.sourceMac],
    where: sql`${sql.identifier("source_mac")} IS NOT NULL`,
    compute: (crypto, plain) => ({ source_mac: sourceMac(crypto, plain) }),
  },
  {
    table: users,
    source: users.email,
    targets: [users.emailIndex],
    compute: (crypto, plain) => ({ email_index: crypto.index("user.email", String(plain)) }),
  },
  {
    table: invitations,
    source: invitations.email,
    targets: [invitations.emailIndex],
    compute: (crypto, plain) => ({ email_index: crypto.index("user.email", String(plain)) }),
  },
];

export interface RuleResult {
  table: string;
  source: string;
  targets: string[];
  scanned: number;
  updated: number;
  conflicts: number;
  failed: number;
  failedIds: string[];
}

export interface ReindexSummary {
  rules: RuleResult[];
  scanned: number;
  updated: number;
  conflicts: number;
  failed: number;
  /** True when every row was handled and the key's fingerprint was recorded. */
  complete: boolean;
  aborted: boolean;
  durationMs: number;
}

export interface ReindexOptions {
  batchSize?: number;
  delayMs?: number;
  signal?: AbortSignal;
  onProgress?: (p: { done: number; total: number }) => void;
  rules?: ReindexRule[];
  /** Passes over a rule while conflicts keep happening (default 20). */
  maxPasses?: number;
  now?: () => Date;
}

function primaryKey(table: PgTable): PgColumn {
  const pk = getTableConfig(table).columns.find((c) => c.primary);
  if (!pk) throw new Error(`table ${getTableConfig(table).name} has no primary key`);
  return pk;
}

/**
 * Recompute every blind index and source MAC under `crypto`'s current blind-index key.
 * @returns the summary; `complete` only when nothing failed or was aborted (then the key's
 *   fingerprint is recorded so servers with this key may start)
 * @throws the driver's error on database failure (run again to resume)
 */
export async function reindexBlindIndexes(
  db: Database,
  crypto: PhiCrypto,
  options: ReindexOptions = {},
): Promise<ReindexSummary> {
  const started = performance.now();
  const rules = options.rules ?? REINDEX_RULES;
  const batchSize = options.batchSize ?? 500;
  const maxPasses = options.maxPasses ?? 20;
  let total = 0;
  for (const rule of rules) {
    const name = getTableConfig(rule.table).name;
    const [row] = rowsOf<{ n: number | string }>(
      await db.execute(
        sql`SELECT count(*)::int AS n FROM ${sql.identifier(name)} WHERE ${sql.identifier(rule.source.name)} IS NOT NULL ${rule.where ? sql`AND ${rule.where}` : sql``}`,
      ),
    );
    total += Number(row?.n ?? 0);
  }
  let done = 0;
  let aborted = false;
  let unresolvedRules = 0;
  const results: RuleResult[] = [];
  for (const rule of rules) {
    const tableName = getTableConfig(rule.table).name;
    const pk = primaryKey(rule.table);
    const cast = sql.raw(pk.getSQLType());
    const table = sql.identifier(tableName);
    const idCol = sql.identifier(pk.name);
    const src = sql.identifier(rule.source.name);
    const targetNames = rule.targets.map((t) => t.name);
    const result: RuleResult = {
      table: tableName,
      source: rule.source.name,
      targets: targetNames,
      scanned: 0,
      updated: 0,
      conflicts: 0,
      failed: 0,
      failedIds: [],
    };
    results.push(result);
    const failed = new Set<string>();
    let unresolved = 0;
    for (let pass = 1; pass <= maxPasses && !aborted; pass++) {
      let after: string | null = null;
      let passConflicts = 0;
      for (;;) {
        if (options.signal?.aborted) {
          aborted = true;
          break;
        }
        const rows: Record<string, string | null>[] = rowsOf<Record<string, string | null>>(
          await db.execute(sql`
            SELECT ${idCol}::text AS "__id", ${src} AS "__src",
                   ${sql.join(
                     targetNames.map((n) => sql.identifier(n)),
                     sql`, `,
                   )}
            FROM ${table}
            WHERE ${src} IS NOT NULL ${rule.where ? sql`AND ${rule.where}` : sql``}
              ${after === null ? sql`` : sql`AND ${idCol} > ${after}::${cast}`}
            ORDER BY ${idCol} LIMIT ${batchSize}`),
        );
        if (rows.length === 0) break;
        after = rows[rows.length - 1]?.__id ?? after;
        const changes: { id: string; src: string; values: (string | null)[] }[] = [];
        for (const row of rows) {
          const id = row.__id as string;
          const srcValue = row.__src as string;
          if (pass === 1) {
            result.scanned++;
            done++;
          }
          if (failed.has(id)) continue;
          let next: Record<string, string | null>;
          try {
            const plain = decryptJson<unknown>(
              crypto.keyring,
              { table: tableName, column: rule.source.name, rowId: id },
              srcValue,
            );
            next = rule.compute(crypto, plain);
          } catch (err) {
            if (!(err instanceof DecryptionError)) throw err;
            failed.add(id);
            result.failed++;
            if (result.failedIds.length < 20) result.failedIds.push(id);
            continue;
          }
          const values = targetNames.map((n) => next[n] ?? null);
          if (values.some((v, i) => v !== (row[targetNames[i] as string] ?? null))) {
            changes.push({ id, src: srcValue, values });
          }
        }
        if (changes.length > 0) {
          const tuples = sql.join(
            changes.map(
              (c) =>
                sql`(${c.id}::${cast}, ${c.src}::text, ${sql.join(
                  c.values.map((v) => sql`${v}::text`),
                  sql`, `,
                )})`,
            ),
            sql`, `,
          );
          const cols = sql.join(
            ["id", "src", ...targetNames.map((_, i) => `t${i}`)].map((n) => sql.identifier(n)),
            sql`, `,
          );
          const sets = sql.join(
            targetNames.map((n, i) => sql`${sql.identifier(n)} = v.${sql.identifier(`t${i}`)}`),
            sql`, `,
          );
          const updated = rowsOf<{ id: string }>(
            await db.execute(sql`
              UPDATE ${table} AS t SET ${sets}
              FROM (VALUES ${tuples}) AS v(${cols})
              WHERE t.${idCol} = v.id AND t.${src} = v.src
              RETURNING t.${idCol}::text AS id`),
          );
          result.updated += updated.length;
          const missed = changes.length - updated.length;
          result.conflicts += missed;
          passConflicts += missed;
        }
        options.onProgress?.({ done, total });
        if (rows.length < batchSize) break;
        if (options.delayMs) {
          try {
            await sleep(options.delayMs, undefined, { signal: options.signal });
          } catch {
            aborted = true;
            break;
          }
        }
      }
      unresolved = passConflicts;
      if (passConflicts === 0) break;
    }
    if (unresolved > 0) unresolvedRules++;
    if (aborted) break;
  }
  const failedCount = results.reduce((a, r) => a + r.failed, 0);
  const complete = !aborted && failedCount === 0 && unresolvedRules === 0;
  if (complete) {
    await recordBlindIndexFingerprint(db, crypto.keyring, (options.now ?? (() => new Date()))());
  }
  return {
    rules: results,
    scanned: results.reduce((a, r) => a + r.scanned, 0),
    updated: results.reduce((a, r) => a + r.updated, 0),
    conflicts: results.reduce((a, r) => a + r.conflicts, 0),
    failed: failedCount,
    complete,
    aborted,
    durationMs: performance.now() - started,
  };
}
