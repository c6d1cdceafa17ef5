import { getTableColumns, getTableName, type SQL, sql } from "drizzle-orm";
import type { PgColumn, PgTable } from "drizzle-orm/pg-core";
import type { Executor } from "./client.ts";

/**
 * A multi-row INSERT whose SQL text does not depend on the number of rows:
 * `INSERT INTO t (c1, …) SELECT * FROM unnest($1::text[]::type1[], …) [suffix]`, one array
 * parameter per column. Against Drizzle's `insert().values(rows)` (one parameter per cell, a new statement text
 * for every row count) it is prepared once per connection and skips building a query per row
 * (bench/results/optimisations.md §10).
 *
 * Column names, SQL types and value mapping (`mapToDriverValue`, e.g. Date → ISO text) come from
 * the Drizzle table, which stays the single source of the schema. Columns not listed get their
 * defaults, as with Drizzle. Works on postgres.js and PGlite (both serialise JS arrays for a
 * parameter the server describes as an array type).
 */
export class UnnestInsert<T extends PgTable, K extends keyof T["$inferInsert"] & string> {
  private readonly columns: PgColumn[];
  private readonly head: SQL;

  /**
   * @param table the Drizzle table
   * @param keys the TypeScript keys of the columns every row supplies (each row must have them;
   *   `undefined` and `null` are written as NULL)
   * @param suffix SQL after the SELECT, e.g. an `ON CONFLICT` clause (use `excluded.` as usual)
   * @throws Error when a key is not a column of `table` (programming error)
   */
  constructor(
    table: T,
    private readonly keys: readonly K[],
    private readonly suffix?: SQL,
  ) {
    const all = getTableColumns(table) as Record<string, PgColumn>;
    this.columns = keys.map((k) => {
      const column = all[k];
      if (!column) throw new Error(`${getTableName(table)} has no column ${k}`);
      return column;
    });
    this.head = sql`insert into ${table} (${sql.join(
      this.columns.map((c) => sql.identifier(c.name)),
      sql`, `,
    )}) select * from unnest(`;
  }

  /**
   * The INSERT statement for `rows` (one statement whatever their number).
   * @param rows at least one row, each holding every key given to the constructor
   */
  query(rows: readonly Pick<T["$inferInsert"], K>[]): SQL {
    const arrays = this.columns.map((column, i) => {
      const key = this.keys[i] as K;
      const out = new Array<unknown>(rows.length);
      for (let r = 0; r < rows.length; r++) {
        const v = (rows[r] as Record<string, unknown>)[key];
        out[r] = v === undefined || v === null ? null : column.mapToDriverValue(v);
      }
      // Sent as text[] and cast in SQL: the drivers serialise text[] natively, while an enum
      // array type is unknown to postgres.js when it was created after the connection opened.
      return sql`${sql.param(out)}::text[]::${sql.raw(column.getSQLType())}[]`;
    });
    const tail = this.suffix ? sql`) ${this.suffix}` : sql`)`;
    return sql`${this.head}${sql.join(arrays, sql`, `)}${tail}`;
  }

  /**
   * Insert `rows` with one statement (nothing is sent for an empty list).
   * @param db the database or the open transaction to write in
   * @param rows the rows, each holding every key given to the constructor
   * @throws the driver's error (constraint violations …); it may quote parameters, callers must
   *   not log it as is
   */
  async run(db: Executor, rows: readonly Pick<T["$inferInsert"], K>[]): Promise<void> {
    if (rows.length === 0) return;
    await db.execute(this.query(rows));
  }
}
