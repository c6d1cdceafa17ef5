/**
 * Haven as a bench target: `startHaven(loadConfig())` from the environment the orchestrator sets
 * (DATABASE_URL or PGlite in HAVEN_DATA_DIR, PORT=0), then one JSON line on stdout:
 * `{ url, pid, demo: { patientId, totp } }`. SIGTERM closes it (and writes a --cpu-prof profile).
 *
 * `BENCH_MEM_FILE` (optional, a path): every `BENCH_MEM_SAMPLE_MS` ms (default 1000) append one JSON
 * line `{ t, rss, heapTotal, heapUsed, external, arrayBuffers }` (t in ms since the epoch, UTC; sizes
 * in bytes, `process.memoryUsage()`) so bench/rss.ts can split RSS into JS heap and the rest.
 */
import { appendFileSync } from "node:fs";
import { startHaven } from "../../server/app.ts";
import { loadConfig } from "../../server/config.ts";

const haven = await startHaven(loadConfig());
const memFile = process.env.BENCH_MEM_FILE;
if (memFile) {
  const sample = () => {
    const m = process.memoryUsage();
    appendFileSync(
      memFile,
      `${JSON.stringify({ t: Date.now(), rss: m.rss, heapTotal: m.heapTotal, heapUsed: m.heapUsed, external: m.external, arrayBuffers: m.arrayBuffers })}\n`,
    );
  };
  sample();
  setInterval(sample, Number(process.env.BENCH_MEM_SAMPLE_MS ?? 1000)).unref();
}
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
