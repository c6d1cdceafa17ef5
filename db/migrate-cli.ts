import { loadConfig } from "../server/config.ts";
import { openDatabase } from "./client.ts";

/** `npm run db:migrate`: apply committed migrations to DATABASE_URL, or to the embedded PGlite. */
const config = loadConfig();
const handle = await openDatabase({
  url: config.DATABASE_URL,
  pgliteDir: `${config.HAVEN_DATA_DIR}/pglite`,
});
const started = performance.now();
await handle.migrate();
await handle.close();
console.log(
  `migrations applied to ${handle.kind} in ${Math.round(performance.now() - started)} ms`,
);
