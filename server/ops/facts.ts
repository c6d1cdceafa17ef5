import { readFileSync } from "node:fs";
import { join } from "node:path";
import { getTableConfig } from "drizzle-orm/pg-core";
import { MIGRATIONS_FOLDER } from "../../db/client.ts";
import type { ChainHead } from "../audit/chain.ts";
import { ENVELOPE_VERSION } from "../crypto/envelope.ts";
import { BLIND_INDEX_KEY_NAME } from "../crypto/fingerprint.ts";
import { encryptedColumns, schemaTables } from "../crypto/registry.ts";

/**
 * What a backup manifest records about a database, and what a restore checks again afterwards:
 * the migration level, row counts per table, the key ids the ciphertexts name, the blind-index
 * key's public fingerprint (never key material), and the audit chain head. Ids, counts and hashes
 * only: nothing here is PHI.
 */

/** Runs one parameterless SQL statement (identifiers come from the Drizzle schema) → rows. */
export type RawQuery = (text: string) => Promise<Record<string, unknown>[]>;

/** One applied drizzle-kit migration: `created_at` is the journal's `when` (ms since epoch). */
export interface AppliedMigration {
  createdAt: number;
  /** The journal tag this code knows it by (null: a migration this code does not have). */
  tag: string | null;
}

export interface DatabaseFacts {
  migrations: AppliedMigration[];
  /** Rows per table of the Drizzle schema. */
  rowCounts: Record<string, number>;
  keys: {
    /** Every PHI key id named by at least one stored ciphertext, sorted. */
    idsInUse: string[];
    /** Stored fingerprint of the blind-index key (null: none recorded yet). */
    blindIndexFingerprint: string | null;
  };
  auditChainHead: ChainHead | null;
}

/** The migrations this code ships (db/migrations/meta/_journal.json), oldest first. */
export function codeMigrations(): { when: number; tag: string }[] {
  const journal = JSON.parse(
    readFileSync(join(MIGRATIONS_FOLDER, "meta", "_journal.json"), "utf8"),
  ) as { entries: { when: number; tag: string }[] };
  return journal.entries.map((e) => ({ when: e.when, tag: e.tag }));
}

const ident = (name: string) => `"${name.replaceAll('"', '""')}"`;

/**
 * Read the facts in one go through `query` (run it inside one snapshot for a consistent answer).
 * @throws the driver's error (e.g. a database without Haven's schema)
 */
export async function readFacts(query: RawQuery): Promise<DatabaseFacts> {
  const known = new Map(codeMigrations().map((m) => [m.when, m.tag]));
  const hasMigrations = await query(
    `SELECT to_regclass('drizzle.__drizzle_migrations') IS NOT NULL AS present`,
  );
  const migrations = hasMigrations[0]?.present
    ? (await query(`SELECT created_at FROM drizzle.__drizzle_migrations ORDER BY created_at`)).map(
        (r) => {
          const createdAt = Number(r.created_at);
          return { createdAt, tag: known.get(createdAt) ?? null };
        },
      )
    : [];
  const rowCounts: Record<string, number> = {};
  for (const table of schemaTables()) {
    const name = getTableConfig(table).name;
    const [row] = await query(`SELECT count(*)::bigint AS n FROM ${ident(name)}`);
    rowCounts[name] = Number(row?.n ?? 0);
  }
  const ids = new Set<string>();
  for (const entry of encryptedColumns()) {
    const col = ident(entry.column);
    const rows = await query(
      `SELECT DISTINCT split_part(${col}, ':', 2) AS key_id FROM ${ident(entry.table)}
       WHERE ${col} IS NOT NULL AND starts_with(${col}, '${ENVELOPE_VERSION}:')`,
    );
    for (const r of rows) ids.add(String(r.key_id));
  }
  const [fp] = await query(
    `SELECT fingerprint FROM key_metadata WHERE name = '${BLIND_INDEX_KEY_NAME}'`,
  );
  const [head] = await query(`SELECT seq, hash FROM audit_chain ORDER BY seq DESC LIMIT 1`);
  return {
    migrations,
    rowCounts,
    keys: {
      idsInUse: [...ids].sort(),
      blindIndexFingerprint: fp ? String(fp.fingerprint) : null,
    },
    auditChainHead: head ? { seq: Number(head.seq), hash: String(head.hash) } : null,
  };
}

/**
 * Why this code may not restore a database at `migrations`: a migration it does not ship (the
 * backup comes from a newer Haven). @returns null when every applied migration is known
 */
export function migrationRefusal(migrations: AppliedMigration[]): string | null {
  const code = codeMigrations();
  const known = new Set(code.map((m) => m.when));
  const unknown = migrations.filter((m) => !known.has(m.createdAt));
  if (unknown.length === 0) return null;
  const newest = code.at(-1);
  return (
    `the backup was taken at a newer schema: ${unknown.length} applied migration(s) ` +
    `(created_at ${unknown.map((m) => m.createdAt).join(", ")}) are not in this code, whose newest ` +
    `is ${newest?.tag ?? "none"} (${newest?.when ?? "-"}). Restore with the Haven version that took it.`
  );
}
