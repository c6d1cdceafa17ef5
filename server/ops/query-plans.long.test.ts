import { openDatabase } from "../../db/client.ts";
import { createCluster, type ThrowawayCluster } from "./cluster.ts";
import { planSuite } from "./test/plan-suite.ts";
import { FULL_VOLUME } from "./volume.ts";

/**
 * Query plans checked, long mode: the full volume (10k patients, 100k appointments, 1M
 * audit events) on a throwaway cluster (port 47010) with pg_stat_statements preloaded; after the
 * checks, the top statements by total execution time are printed for the report.
 */
const PORT = 47010;
let cluster: ThrowawayCluster | undefined;

planSuite({
  size: FULL_VOLUME,
  open: async () => {
    cluster = await createCluster({
      port: PORT,
      settings: {
        shared_preload_libraries: "'pg_stat_statements'",
        "pg_stat_statements.track": "all",
        shared_buffers: "256MB",
        max_wal_size: "2GB",
      },
    });
    await cluster.psql("CREATE DATABASE haven_plans");
    const url = cluster.url("haven_plans");
    const handle = await openDatabase({ url, maxConnections: 1 });
    await handle.migrate();
    await handle.close();
    await cluster.psql("CREATE EXTENSION pg_stat_statements", "haven_plans");
    return { url, close: async () => cluster?.destroy() ?? undefined };
  },
  after: async (client) => {
    const top = await client<
      { calls: string; total_ms: string; mean_ms: string; rows: string; query: string }[]
    >`
      SELECT calls, round(total_exec_time::numeric, 1) AS total_ms,
             round(mean_exec_time::numeric, 3) AS mean_ms, rows,
             left(regexp_replace(query, '[[:space:]]+', ' ', 'g'), 160) AS query
      FROM pg_stat_statements
      WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
      ORDER BY total_exec_time DESC LIMIT 15`;
    console.log("[plans] pg_stat_statements, top 15 by total execution time:");
    for (const r of top) {
      console.log(
        `  ${r.total_ms} ms total, ${r.calls} calls, ${r.mean_ms} ms mean, ${r.rows} rows: ${r.query}`,
      );
    }
  },
});
