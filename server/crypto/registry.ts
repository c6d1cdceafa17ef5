import { is } from "drizzle-orm";
import { getTableConfig, type PgColumn, PgTable } from "drizzle-orm/pg-core";
import { isBlindIndexColumn, isEncryptedColumn } from "../../db/schema/columns.ts";
import * as schema from "../../db/schema/index.ts";

/**
 * Registry of every encrypted and blind-index column, derived from the Drizzle schema itself:
 * columns declared with `encrypted()` / `blindIndexColumn()` (db/schema/columns.ts) carry a mark,
 * so a column someone adds later is rotated by `keys rotate` and counted by `keys status` without
 * anyone remembering to list it here.
 *
 * Convention the registry relies on (and `registry.test.ts` checks against real data): a value in
 * `table.column` is sealed with associated data `(<SQL table>, <SQL column>, <primary key value>)`.
 */

/** One encrypted column: SQL names plus the Drizzle objects to query it. */
export interface EncryptedColumnEntry {
  /** SQL table name, e.g. `patients` (the AAD table). */
  table: string;
  /** SQL column name, e.g. `demographics` (the AAD column). */
  column: string;
  /** SQL name of the single-column primary key whose value is the AAD row id. */
  idColumn: string;
  /** SQL type of the primary key (`uuid`, `text`, …), for casts in batch updates. */
  idType: string;
  tableRef: PgTable;
  columnRef: PgColumn;
  idRef: PgColumn;
}

/** One blind-index column (HMAC under the blind-index key). */
export interface BlindIndexColumnEntry {
  table: string;
  column: string;
  tableRef: PgTable;
  columnRef: PgColumn;
}

/** Thrown when the schema breaks the registry's convention (e.g. no single-column primary key). */
export class RegistryError extends Error {
  override name = "RegistryError";
}

/** Every Drizzle table exported from `db/schema/index.ts`. */
export function schemaTables(source: Record<string, unknown> = schema): PgTable[] {
  const seen = new Set<PgTable>();
  for (const value of Object.values(source)) if (is(value, PgTable)) seen.add(value);
  return [...seen].sort((a, b) => getTableConfig(a).name.localeCompare(getTableConfig(b).name));
}

function primaryKeyOf(table: PgTable): PgColumn {
  const config = getTableConfig(table);
  const flagged = config.columns.filter((c) => c.primary);
  const composite = config.primaryKeys.flatMap((pk) => pk.columns);
  const all = [...flagged, ...composite];
  const only = all[0];
  if (all.length !== 1 || !only) {
    throw new RegistryError(
      `table ${config.name} has encrypted columns but no single-column primary key to bind them to`,
    );
  }
  return only;
}

/**
 * Every encrypted column in the schema, ordered by table then column.
 * @param source module namespace holding the tables (default: the application schema)
 * @throws RegistryError when a table with encrypted columns lacks a single-column primary key
 */
export function encryptedColumns(source: Record<string, unknown> = schema): EncryptedColumnEntry[] {
  const out: EncryptedColumnEntry[] = [];
  for (const tableRef of schemaTables(source)) {
    const config = getTableConfig(tableRef);
    const columns = config.columns.filter((c) => isEncryptedColumn(c));
    if (columns.length === 0) continue;
    const idRef = primaryKeyOf(tableRef);
    for (const columnRef of columns.sort((a, b) => a.name.localeCompare(b.name))) {
      out.push({
        table: config.name,
        column: columnRef.name,
        idColumn: idRef.name,
        idType: idRef.getSQLType(),
        tableRef,
        columnRef,
        idRef,
      });
    }
  }
  return out;
}

/** Every blind-index column in the schema, ordered by table then column. */
export function blindIndexColumns(
  source: Record<string, unknown> = schema,
): BlindIndexColumnEntry[] {
  const out: BlindIndexColumnEntry[] = [];
  for (const tableRef of schemaTables(source)) {
    const config = getTableConfig(tableRef);
    for (const columnRef of config.columns.filter((c) => isBlindIndexColumn(c))) {
      out.push({ table: config.name, column: columnRef.name, tableRef, columnRef });
    }
  }
  return out.sort((a, b) => `${a.table}.${a.column}`.localeCompare(`${b.table}.${b.column}`));
}

/** `table.column` labels of {@link encryptedColumns}, for messages and tests. */
export function encryptedColumnNames(source: Record<string, unknown> = schema): string[] {
  return encryptedColumns(source).map((c) => `${c.table}.${c.column}`);
}
