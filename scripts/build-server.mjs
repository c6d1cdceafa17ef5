// `npm run build:server`: emit Haven's server, CLIs and workers as plain JavaScript into dist/
// (same layout as the sources, so paths resolved from import.meta.url keep working), then copy the
// SQL migrations and the demo Synthea bundles beside the code. Type errors are `npm run typecheck`'s
// job; the emit runs with --noCheck so a build takes seconds.
import { execFileSync } from "node:child_process";
import { cpSync, rmSync } from "node:fs";

// TypeScript 7 (the native compiler); `.bin/tsc` in this repo is the TS 6 shim used for typecheck.
const TSC = "node_modules/typescript/bin/tsc";
rmSync("dist", { recursive: true, force: true });
execFileSync(process.execPath, [TSC, "-p", "tsconfig.build.json"], {
  stdio: "inherit",
});
cpSync("db/migrations", "dist/db/migrations", { recursive: true });
cpSync("db/seed", "dist/db/seed", { recursive: true });
process.stdout.write("built dist/ (node dist/server/main.js)\n");
