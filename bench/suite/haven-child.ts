/**
 * Haven as a bench target: `startHaven(loadConfig())` from the environment the orchestrator sets
 * (DATABASE_URL or PGlite in HAVEN_DATA_DIR, PORT=0), then one JSON line on stdout:
 * `{ url, pid, demo: { patientId, totp } }`. SIGTERM closes it (and writes a --cpu-prof profile).
 */
import { startHaven } from "../../server/app.ts";
import { loadConfig } from "../../server/config.ts";

const haven = await startHaven(loadConfig());
process.stdout.write(
  `${JSON.stringify({
    url: haven.url,
    pid: process.pid,
    demo: { patientId: haven.demo.patientId ?? null, totp: haven.demo.totp ?? [] },
  })}\n`,
);
const stop = async () => {
  await haven.close();
  process.exit(0);
};
process.on("SIGTERM", () => void stop());
process.on("SIGINT", () => void stop());
