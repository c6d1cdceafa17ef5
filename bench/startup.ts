/**
 * Time from `npm start` to a 200 on /readyz on the embedded default (PGlite), cold (fresh data
 * directory: key generation, migrations, demo import) and warm (same directory again).
 * Usage: `npx tsx bench/startup.ts [runs=3]`. Prints milliseconds per run and the median.
 */
import { spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      const port = typeof addr === "object" && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
    srv.on("error", reject);
  });
}

async function timeToReady(dataDir: string): Promise<number> {
  const port = await freePort();
  const started = performance.now();
  const child = spawn("npm", ["start", "--silent"], {
    env: { ...process.env, HAVEN_DATA_DIR: dataDir, PORT: String(port), LOG_LEVEL: "warn" },
    stdio: "ignore",
    detached: true,
  });
  try {
    for (;;) {
      if (performance.now() - started > 120_000) throw new Error("not ready after 120 s");
      try {
        const res = await fetch(`http://127.0.0.1:${port}/readyz`);
        if (res.status === 200) return performance.now() - started;
      } catch {
        // not listening yet
      }
      await new Promise((r) => setTimeout(r, 25));
    }
  } finally {
    if (child.pid) process.kill(-child.pid, "SIGTERM");
    await new Promise((r) => child.once("exit", r));
  }
}

const runs = Number(process.argv[2] ?? 3);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;
const cold: number[] = [];
const warm: number[] = [];
for (let i = 0; i < runs; i++) {
  const dir = await mkdtemp(join(tmpdir(), "haven-bench-"));
  try {
    cold.push(await timeToReady(dir));
    warm.push(await timeToReady(dir));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
console.log(
  `cold start → /readyz (fresh dir, keys + migrations + demo import): ${cold.map(Math.round).join(", ")} ms; median ${Math.round(median(cold))} ms`,
);
console.log(
  `warm start → /readyz (existing dir):                                ${warm.map(Math.round).join(", ")} ms; median ${Math.round(median(warm))} ms`,
);
console.log(`ratio cold/warm: ${(median(cold) / median(warm)).toFixed(2)}`);
