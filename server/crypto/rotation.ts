import { setTimeout as sleep } from "node:timers/promises";
import { type SQL, sql } from "drizzle-orm";
import type { Database } from "../../db/client.ts";
import { rowsOf } from "../../db/rows.ts";
import { DecryptionError, decryptString, ENVELOPE_VERSION, encryptString } from "./envelope.ts";
import type { Keyring } from "./keyring.ts";
import { type EncryptedColumnEntry, encryptedColumns } from "./registry.ts";

/**
 * Online key rotation (HIPAA 45 CFR 164.312(a)(2)(iv); NIST SP 800-57 key lifetimes): re-encrypt
 * every value of every registered encrypted column that is not under the keyring's active key.
 *
 * - Batches by primary key (keyset), each batch one conditional `UPDATE … WHERE col = <the
 *   ciphertext read>`: a value a concurrent writer changed in between is left alone (its write
 *   wins, never lost) and counted as a conflict; the next pass picks it up if it is still under an
 *   old key.
 * - Resumable by construction: there is no progress state; a restarted run scans again for
 *   envelopes whose key id is not the active one. A killed run leaves every row either old or new.
 * - The plaintext bytes are re-sealed unchanged; `version` and `updated_at` are not touched (a
 *   re-encryption is not an edit, so optimistic-concurrency writers are not disturbed).
 */

/** Progress callback payload: values re-encrypted so far out of the count found at the start. */
export interface RotationProgress {
  table: string;
  column: string;
  done: number;
  total: number;
}

export interface RotationOptions {
  /** Rows per batch (default 500). */
  batchSize?: number;
  /** Pause between batches in ms, to bound the load on a busy database (default 0). */
  delayMs?: number;
  /** Stop between batches (SIGINT); the summary then has `aborted: true`. */
  signal?: AbortSignal;
  onProgress?: (progress: RotationProgress) => void;
  /** Test seam: runs after a batch was read and re-sealed, before its conditional UPDATE. */
  beforeUpdate?: (entry: EncryptedColumnEntry, ids: string[]) => Promise<void>;
  /** Passes over a column while conflicts keep happening (default 20). */
  maxPasses?: number;
  /** Columns to rotate (default: the whole registry). */
  columns?: EncryptedColumnEntry[];
}

/** Outcome for one column. */
export interface ColumnRotation {
  table: string;
  column: string;
  reencrypted: number;
  /** Rows changed by someone else between read and write (retried in a later pass). */
  conflicts: number;
  /** Values that could not be decrypted (unknown key, tampered, not an envelope): left as they are. */
  failed: number;
  /** Primary keys of the first failed rows (ids only, at most 20). */
  failedIds: string[];
}

export interface RotationSummary {
  activeKeyId: string;
  /** Values not under the active key when the run started. */
  total: number;
  reencrypted: number;
  conflicts: number;
  failed: number;
  /** Values still not under the active key when the run ended. */
  remaining: number;
  aborted: boolean;
  columns: ColumnRotation[];
  durationMs: number;
}

/** How many values of one column each key id protects. */
export interface KeyUsage {
  table: string;
  column: string;
  /** Key id named in the envelope; `"(not an envelope)"` for a malformed value. */
  keyId: string;
  count: number;
}

const NOT_AN_ENVELOPE = "(not an envelope)";
const SQL_TYPE = /^[a-z][a-z0-9 ]*$/;

function idCast(entry: EncryptedColumnEntry): SQL {
  if (!SQL_TYPE.test(entry.idType)) throw new Error(`unsupported key type ${entry.idType}`);
  return sql.raw(entry.idType);
}

function activePrefix(keyring: Keyring): string {
  return `${ENVELOPE_VERSION}:${keyring.activeKeyId}:`;
}

function notActive(entry: EncryptedColumnEntry, prefix: string): SQL {
  const col = sql.identifier(entry.column);
  return sql`${col} IS NOT NULL AND NOT starts_with(${col}, ${prefix})`;
}

/**
 * Count values per key id for every registered encrypted column (`keys status`).
 * @returns one row per (column, key id) with a non-zero count, ordered by table, column, key id
 */
export async function keyUsage(
  db: Database,
  columns: EncryptedColumnEntry[] = encryptedColumns(),
): Promise<KeyUsage[]> {
  const out: KeyUsage[] = [];
  for (const entry of columns) {
    const col = sql.identifier(entry.column);
    const rows = rowsOf<{ key_id: string; n: number | string }>(
      await db.execute(sql`
        SELECT CASE WHEN starts_with(${col}, ${`${ENVELOPE_VERSION}:`})
                    THEN split_part(${col}, ':', 2) ELSE ${NOT_AN_ENVELOPE} END AS key_id,
               count(*)::int AS n
        FROM ${sql.identifier(entry.table)} WHERE ${col} IS NOT NULL
        GROUP BY 1 ORDER BY 1`),
    );
    for (const r of rows) {
      out.push({ table: entry.table, column: entry.column, keyId: r.key_id, count: Number(r.n) });
    }
  }
  return out;
}

/** Values not under the active key, per column. */
export async function pendingRotation(
  db: Database,
  keyring: Keyring,
  columns: EncryptedColumnEntry[] = encryptedColumns(),
): Promise<Map<EncryptedColumnEntry, number>> {
  const prefix = activePrefix(keyring);
  const out = new Map<EncryptedColumnEntry, number>();
  for (const entry of columns) {
    const [row] = rowsOf<{ n: number | string }>(
      await db.execute(
        sql`SELECT count(*)::int AS n FROM ${sql.identifier(entry.table)} WHERE ${notActive(entry, prefix)}`,
      ),
    );
    out.set(entry, Number(row?.n ?? 0));
  }
  return out;
}

/**
 * Re-encrypt every value not under `keyring.activeKeyId` (see the module comment for the
 * guarantees). Values that cannot be decrypted are reported, never overwritten.
 * @returns the summary; `remaining > 0` means some values still need attention (failed, aborted,
 *   or a writer kept rewriting them under an old key)
 * @throws the driver's error when the database fails (the run can simply be started again)
 */
export async function rotateKeys(
  db: Database,
  keyring: Keyring,
  options: RotationOptions = {},
): Promise<RotationSummary> {
  const started = performance.now();
  const batchSize = options.batchSize ?? 500;
  const maxPasses = options.maxPasses ?? 20;
  const columns = options.columns ?? encryptedColumns();
  const prefix = activePrefix(keyring);
  const pending = await pendingRotation(db, keyring, columns);
  const total = [...pending.values()].reduce((a, b) => a + b, 0);
  let done = 0;
  let aborted = false;
  const results: ColumnRotation[] = [];

  for (const entry of columns) {
    const result: ColumnRotation = {
      table: entry.table,
      column: entry.column,
      reencrypted: 0,
      conflicts: 0,
      failed: 0,
      failedIds: [],
    };
    results.push(result);
    if ((pending.get(entry) ?? 0) === 0) continue;
    const failed = new Set<string>();
    const table = sql.identifier(entry.table);
    const col = sql.identifier(entry.column);
    const idCol = sql.identifier(entry.idColumn);
    const cast = idCast(entry);
    for (let pass = 1; pass <= maxPasses && !aborted; pass++) {
      let after: string | null = null;
      let passConflicts = 0;
      for (;;) {
        if (options.signal?.aborted) {
          aborted = true;
          break;
        }
        const rows: { id: string; value: string }[] = rowsOf<{ id: string; value: string }>(
          await db.execute(sql`
            SELECT ${idCol}::text AS id, ${col} AS value FROM ${table}
            WHERE ${notActive(entry, prefix)}
              ${after === null ? sql`` : sql`AND ${idCol} > ${after}::${cast}`}
            ORDER BY ${idCol} LIMIT ${batchSize}`),
        );
        if (rows.length === 0) break;
        after = rows[rows.length - 1]?.id ?? after;
        const items: { id: string; old: string; next: string }[] = [];
        for (const row of rows) {
          if (failed.has(row.id)) continue;
          const ctx = { table: entry.table, column: entry.column, rowId: row.id };
          try {
            const plain = decryptString(keyring, ctx, row.value);
            items.push({ id: row.id, old: row.value, next: encryptString(keyring, ctx, plain) });
          } catch (err) {
            if (!(err instanceof DecryptionError)) throw err;
            failed.add(row.id);
            result.failed++;
            if (result.failedIds.length < 20) result.failedIds.push(row.id);
          }
        }
        if (items.length > 0) {
          await options.beforeUpdate?.(
            entry,
            items.map((i) => i.id),
          );
          const values = sql.join(
            items.map((i) => sql`(${i.id}::${cast}, ${i.old}::text, ${i.next}::text)`),
            sql`, `,
          );
          const updated = rowsOf<{ id: string }>(
            await db.execute(sql`
              UPDATE ${table} AS t SET ${col} = v.next
              FROM (VALUES ${values}) AS v(id, old, next)
              WHERE t.${idCol} = v.id AND t.${col} = v.old
              RETURNING t.${idCol}::text AS id`),
          );
          result.reencrypted += updated.length;
          done += updated.length;
          const missed = items.length - updated.length;
          result.conflicts += missed;
          passConflicts += missed;
          options.onProgress?.({ table: entry.table, column: entry.column, done, total });
        }
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
      if (passConflicts === 0) break;
    }
    if (aborted) break;
  }
  const after = await pendingRotation(db, keyring, columns);
  return {
    activeKeyId: keyring.activeKeyId,
    total,
    reencrypted: results.reduce((a, r) => a + r.reencrypted, 0),
    conflicts: results.reduce((a, r) => a + r.conflicts, 0),
    failed: results.reduce((a, r) => a + r.failed, 0),
    remaining: [...after.values()].reduce((a, b) => a + b, 0),
    aborted,
    columns: results,
    durationMs: performance.now() - started,
  };
}
