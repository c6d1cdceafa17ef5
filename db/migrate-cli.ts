import { ConfigError, loadConfig } from "../server/config.ts";
import { databaseOpenFailure } from "../server/startup-errors.ts";
import { type DatabaseHandle, openDatabase } from "./client.ts";

/**
 * `npm run db:migrate`: apply committed migrations to DATABASE_URL, or to the embedded PGlite.
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
  await handle.migrate();
  console.log(
    `migrations applied to ${handle.kind} in ${Math.round(performance.now() - started)} ms`,
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
