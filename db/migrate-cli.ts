import { sql } from "drizzle-orm";
import { ConfigError, loadConfig } from "../server/config.ts";
import { databaseOpenFailure } from "../server/startup-errors.ts";
import { type DatabaseHandle, openDatabase } from "./client.ts";
import { rowsOf } from "./rows.ts";

/** Migrations recorded as applied in drizzle's journal table (0 before the first migration). */
async function appliedCount(h: DatabaseHandle): Promise<number> {
  try {
    const rows = rowsOf<{ n: number | string }>(
      await h.db.execute(sql`SELECT count(*) AS n FROM drizzle.__drizzle_migrations`),
    );
    return Number(rows[0]?.n ?? 0);
  } catch {
    return 0;
  }
}

/**
 * `npm run db:migrate`: apply committed migrations to DATABASE_URL, or to the embedded PGlite;
 * says "up to date" when nothing was pending.
 * A known startup failure (data directory in use, PostgreSQL unreachable …) is one line, exit 1.
 */
let handle: DatabaseHandle | undefined;
try {
  const config = loadConfig();
  handle = await openDatabase({
    url: config.DATABASE_URL,
    pgliteDir: `${config.HAVEN_DATA_DIR}/pglite`,
  });
  const started = performance.now();
  const before = await appliedCount(handle);
  await handle.migrate();
  const applied = (await appliedCount(handle)) - before;
  const ms = Math.round(performance.now() - started);
  console.log(
    applied === 0
      ? `${handle.kind}: up to date (no pending migrations)`
      : `${handle.kind}: applied ${applied} migration${applied === 1 ? "" : "s"} in ${ms} ms`,
  );
} catch (err) {
  const line =
    databaseOpenFailure(err, process.env.DATABASE_URL) ??
    (err instanceof ConfigError ? err.message : null);
  console.error(`db:migrate: ${line ?? `failed: ${err instanceof Error ? err.name : "error"}`}`);
  process.exitCode = 1;
} finally {
  await handle?.close();
}
