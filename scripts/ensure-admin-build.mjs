// Build the admin panel (admin/dist) when it is missing or older than its sources (admin/ and the
// SDK it imports), so `npm start` and the browser suite never serve a stale panel after a pull or
// an edit. Exits with the build's status; prints one line when the build is current.
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";

const root = join(import.meta.dirname, "..");
const built = join(root, "admin", "dist", "index.html");
const sources = ["admin/src", "admin/index.html", "admin/vite.config.ts", "client-sdk/index.ts"];

/** Newest modification time (ms) under `path`, skipping build output and dependencies. */
function newest(path) {
  if (!existsSync(path)) return 0;
  const st = statSync(path);
  if (!st.isDirectory()) return st.mtimeMs;
  let max = 0;
  for (const name of readdirSync(path)) {
    if (name === "node_modules" || name === "dist") continue;
    max = Math.max(max, newest(join(path, name)));
  }
  return max;
}

const builtAt = existsSync(built) ? statSync(built).mtimeMs : 0;
const sourcesAt = Math.max(...sources.map((s) => newest(join(root, s))));
if (builtAt >= sourcesAt) {
  process.stdout.write("admin panel build is current (admin/dist)\n");
  process.exit(0);
}
process.stdout.write(
  builtAt === 0
    ? "building the admin panel (admin/dist is missing)\n"
    : "rebuilding the admin panel (sources changed)\n",
);
const r = spawnSync("npm", ["run", "build:admin"], { cwd: root, stdio: "inherit" });
process.exit(r.status ?? 1);
