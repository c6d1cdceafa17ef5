import { drizzle } from "drizzle-orm/postgres-js";
import type postgres from "postgres";
import type { Database } from "../../db/client.ts";
import * as schema from "../../db/schema/index.ts";

/** One statement as the application sent it: Drizzle's SQL text and its bound parameters. */
export interface CapturedQuery {
  sql: string;
  params: unknown[];
}

/** Thrown by a capturing handle to stop the service once the wanted statement was seen. */
export class CaptureComplete extends Error {}

/**
 * A Drizzle handle over `client` that records every statement it issues (through Drizzle's
 * `logger` hook, i.e. the exact text and parameters sent to the server), so a test can run the
 * real service functions and EXPLAIN what they asked for. With `stopAt`, the first statement it
 * matches is recorded and then refused with {@link CaptureComplete} instead of being executed.
 */
export function capturingDatabase(
  client: postgres.Sql,
  stopAt?: (q: CapturedQuery) => boolean,
): {
  db: Database;
  queries: CapturedQuery[];
} {
  const queries: CapturedQuery[] = [];
  const db = drizzle({
    client,
    schema,
    logger: {
      logQuery: (sql, params) => {
        const q = { sql, params: [...params] };
        queries.push(q);
        if (stopAt?.(q)) throw new CaptureComplete(sql);
      },
    },
  }) as unknown as Database;
  return { db, queries };
}

/** One node of a PostgreSQL JSON plan (the fields the checks use; others are kept as-is). */
export interface PlanNode {
  "Node Type": string;
  "Relation Name"?: string;
  "Index Name"?: string;
  "Actual Rows"?: number;
  "Actual Loops"?: number;
  Plans?: PlanNode[];
  [key: string]: unknown;
}

/** The result of `EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON)` for one statement. */
export interface ExplainedPlan {
  root: PlanNode;
  executionMs: number;
  planningMs: number;
}

/**
 * `EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON)` of a captured statement with its parameters, inside a
 * transaction that is always rolled back (ANALYZE executes the statement: a claim's UPDATE must
 * not stick).
 * @throws the driver's error when the statement does not plan or run
 */
export async function explainAnalyze(
  client: postgres.Sql,
  query: CapturedQuery,
): Promise<ExplainedPlan> {
  let result: ExplainedPlan | undefined;
  const rollback = new Error("rollback");
  try {
    await client.begin(async (tx) => {
      const rows = await tx.unsafe(
        `EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) ${query.sql}`,
        query.params as postgres.ParameterOrJSON<never>[],
      );
      const first = rows[0] as Record<string, unknown> | undefined;
      const json = first?.["QUERY PLAN"] as
        | { Plan: PlanNode; "Execution Time": number; "Planning Time": number }[]
        | undefined;
      const top = json?.[0];
      if (!top) throw new Error("EXPLAIN returned no plan");
      result = {
        root: top.Plan,
        executionMs: top["Execution Time"],
        planningMs: top["Planning Time"],
      };
      throw rollback;
    });
  } catch (err) {
    if (err !== rollback) throw err;
  }
  if (!result) throw new Error("EXPLAIN returned no plan");
  return result;
}

/** Every node of a plan tree, depth first. */
export function planNodes(root: PlanNode): PlanNode[] {
  return [root, ...(root.Plans ?? []).flatMap(planNodes)];
}

/** Tables read by a sequential scan anywhere in the plan. */
export function seqScannedTables(root: PlanNode): string[] {
  return planNodes(root)
    .filter((n) => n["Node Type"] === "Seq Scan" && n["Relation Name"])
    .map((n) => n["Relation Name"] as string);
}

/** Indexes used (Index Scan, Index Only Scan, Bitmap Index Scan), in plan order. */
export function indexesUsed(root: PlanNode): string[] {
  return planNodes(root)
    .filter((n) => typeof n["Index Name"] === "string")
    .map((n) => n["Index Name"] as string);
}
