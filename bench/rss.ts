/**
 * RSS under load, over time: one Haven child started as the bench starts it (bench/suite/haven-child.ts,
 * `npm start`'s Node flags unless `--flags`), then `--cycles` rounds of patients.get (full record,
 * 10 connections), a 10-call patients.get batch (entryLimit 10, 10 connections) and auth.login
 * (4 connections, demo accounts in turn), each `--duration` s. During every run the process's
 * /proc status + smaps_rollup and the child's `process.memoryUsage()` (BENCH_MEM_FILE) are sampled;
 * one line per run prints the peak and end RSS, anonymous RSS, V8 heap used/total, external and
 * ArrayBuffers (MB), the req/s and the 1-minute load average.
 *
 * Usage: `node --import tsx bench/rss.ts [--pglite] [--cycles N] [--duration S] [--flags "…"]
 *   [--env K=V]… [--snapshots] [--port P] [--patients N] [--appointments N]`
 * `--snapshots` adds `--heapsnapshot-signal=SIGUSR2` and writes a heap snapshot after the first and
 * after the last cycle to bench/results/heap/ (diff them with bench/heap-diff.ts).
 * PostgreSQL from BENCH_DATABASE_URL / TEST_DATABASE_URL; database name prefix BENCH_DB_PREFIX.
 * Prints a JSON summary as the last line.
 */
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { Command } from "commander";
import postgres from "postgres";
import { DEMO_LOGINS } from "../server/demo/seed.ts";
import type { LoadSpec } from "./suite/loader.ts";
import {
  batchUrl,
  type Child,
  procStats,
  queryUrl,
  runLoad,
  SUITE_DIR,
  signIn,
  startChild,
} from "./suite/procs.ts";
import {
  createBenchDatabase,
  dropBenchDatabase,
  freshKeys,
  seedBenchDatabase,
} from "./suite/setup.ts";

const program = new Command()
  .option("--pglite", "Haven on PGlite (demo seed in a temp data directory)")
  .option("--cycles <n>", "rounds of patients.get + batch + auth.login", "4")
  .option("--duration <s>", "seconds per load run", "5")
  .option(
    "--flags <flags>",
    "Node flags of the child",
    "--max-semi-space-size=16 --max-old-space-size=1024 --no-liftoff",
  )
  .option("--env <kv...>", "extra environment of the child (K=V)")
  .option("--snapshots", "heap snapshots after the first and the last cycle")
  .option("--port <p>", "Haven's port", "43100")
  .option("--patients <n>", "generated patients (Postgres)", "300")
  .option("--appointments <n>", "generated appointments (Postgres)", "1000")
  .option("--scenarios <list>", "comma-separated subset of get,batch,login", "get,batch,login")
  .parse();
const o = program.opts<{
  pglite?: boolean;
  cycles: string;
  duration: string;
  flags: string;
  env?: string[];
  snapshots?: boolean;
  port: string;
  patients: string;
  appointments: string;
  scenarios: string;
}>();
const adminUrl =
  process.env.BENCH_DATABASE_URL ??
  process.env.TEST_DATABASE_URL ??
  "postgres://postgres@127.0.0.1:5432/postgres";
const log = (s: string) => process.stderr.write(`${s}\n`);
const MB = 1024 * 1024;
const extraEnv = Object.fromEntries(
  (o.env ?? []).map((kv) => [kv.slice(0, kv.indexOf("=")), kv.slice(kv.indexOf("=") + 1)]),
);

/** Anonymous and file-backed RSS (MB) from /proc/PID/smaps_rollup. */
function rollup(pid: number): { anonMb: number; fileMb: number } {
  const s = readFileSync(`/proc/${pid}/smaps_rollup`, "utf8");
  const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, "m").exec(s)?.[1] ?? 0);
  return { anonMb: kb("Anonymous") / 1024, fileMb: (kb("Rss") - kb("Anonymous")) / 1024 };
}

const keys = freshKeys();
const workDir = mkdtempSync(join(tmpdir(), "haven-rss-"));
const memFile = join(workDir, "mem.jsonl");
let dbName: string | undefined;
let child:
  | Child<{ demo: { patientId: string | null; totp: { role: string; secret: string }[] } }>
  | undefined;
const env: Record<string, string | undefined> = {
  HAVEN_PHI_KEYS: keys.phiKeys,
  HAVEN_BLIND_INDEX_KEY: keys.blindIndexKey,
  PORT: o.port,
  LOG_LEVEL: "warn",
  NODE_ENV: "production",
  HAVEN_AUDIT_SEAL_INTERVAL_MS: "5000",
  HAVEN_RATE_LIMIT_SESSION: "1000000",
  HAVEN_RATE_LIMIT_IP: "1000000",
  BENCH_MEM_FILE: memFile,
  BENCH_MEM_SAMPLE_MS: "500",
  ...extraEnv,
};
let patientId = "";
let totp: { role: string; secret: string }[] = [];
if (o.pglite) {
  env.DATABASE_URL = undefined;
  env.HAVEN_DATA_DIR = join(workDir, "pglite");
  env.HAVEN_DEMO = "true";
} else {
  const db = await createBenchDatabase(adminUrl);
  dbName = db.name;
  const seeded = await seedBenchDatabase(db.url, db.name, keys, {
    patients: Number(o.patients),
    appointments: Number(o.appointments),
  });
  env.DATABASE_URL = db.url;
  env.HAVEN_DEMO = "false";
  patientId = seeded.demoPatientId;
  totp = seeded.totp;
}
const flags = o.flags.split(/\s+/).filter(Boolean);
if (o.snapshots) flags.push("--heapsnapshot-signal=SIGUSR2", `--diagnostic-dir=${workDir}`);
const snapDir = resolve(SUITE_DIR, "../results/heap");
const rows: Record<string, unknown>[] = [];
try {
  child = await startChild(resolve(SUITE_DIR, "haven-child.ts"), env, flags);
  const pid = child.info.pid;
  if (o.pglite) {
    patientId = child.info.demo.patientId ?? "";
    totp = child.info.demo.totp;
  }
  const H = child.info.url;
  const clin = DEMO_LOGINS.find((l) => l.role === "clinician");
  if (!clin) throw new Error("no clinician demo login");
  const token = await signIn(
    H,
    clin.email,
    clin.password,
    totp.find((t) => t.role === "clinician")?.secret,
  );
  const auth = { authorization: `Bearer ${token}` };
  const durationS = Number(o.duration);
  const full = { patientId };
  const small = { ...full, entryLimit: 10 };
  const specs: Record<string, LoadSpec> = {
    get: { connections: 10, durationS, url: queryUrl(H, "patients.get", full), headers: auth },
    batch: {
      connections: 10,
      durationS,
      url: batchUrl(H, "patients.get", small, 10),
      headers: auth,
    },
    login: {
      connections: 4,
      durationS,
      url: `${H}/trpc/auth.login`,
      method: "POST",
      headers: { "content-type": "application/json" },
      bodies: DEMO_LOGINS.map((l) =>
        JSON.stringify({ json: { email: l.email, password: l.password } }),
      ),
    },
  };
  const lastMem = () => {
    const lines = readFileSync(memFile, "utf8").trim().split("\n");
    const m = JSON.parse(lines[lines.length - 1] ?? "{}") as Partial<Record<string, number>>;
    return {
      heapUsed: m.heapUsed ?? 0,
      heapTotal: m.heapTotal ?? 0,
      external: m.external ?? 0,
      arrayBuffers: m.arrayBuffers ?? 0,
    };
  };
  const snapshot = async (label: string) => {
    const before = new Set(readdirSync(workDir));
    process.kill(pid, "SIGUSR2");
    for (let i = 0; i < 600; i++) {
      await sleep(500);
      const f = readdirSync(workDir).find((n) => n.endsWith(".heapsnapshot") && !before.has(n));
      if (f) {
        // Written when the size stops changing.
        let size = -1;
        for (;;) {
          await sleep(1000);
          const s = readFileSync(join(workDir, f)).length;
          if (s === size) break;
          size = s;
        }
        mkdirSync(snapDir, { recursive: true });
        const dest = join(snapDir, `${o.pglite ? "pglite" : "pg"}-${label}.heapsnapshot`);
        renameSync(join(workDir, f), dest);
        log(`heap snapshot ${dest}`);
        return;
      }
    }
    throw new Error("no heap snapshot");
  };
  const idle = { ...procStats(pid), ...rollup(pid), mem: lastMem() };
  log(
    `idle: rss ${idle.rssMb.toFixed(0)} MB (anon ${idle.anonMb.toFixed(0)}, file ${idle.fileMb.toFixed(0)}), heapUsed ${(idle.mem.heapUsed / MB).toFixed(0)}, load1 ${loadavg()[0]?.toFixed(2)}`,
  );
  rows.push({
    cycle: 0,
    scenario: "idle",
    rssMb: idle.rssMb,
    anonMb: idle.anonMb,
    heapUsedMb: idle.mem.heapUsed / MB,
  });
  const scen = o.scenarios.split(",");
  for (let c = 1; c <= Number(o.cycles); c++) {
    for (const s of scen) {
      const spec = specs[s];
      if (!spec) throw new Error(`unknown scenario ${s}`);
      let peak = 0;
      let peakAnon = 0;
      const sampler = setInterval(() => {
        try {
          const r = procStats(pid).rssMb;
          if (r > peak) peak = r;
          const a = rollup(pid).anonMb;
          if (a > peakAnon) peakAnon = a;
        } catch {}
      }, 250);
      const r = await runLoad(spec, pid, s === "batch" ? 10 : 1);
      clearInterval(sampler);
      const end = { ...procStats(pid), ...rollup(pid) };
      const m = lastMem();
      const row = {
        cycle: c,
        scenario: s,
        rps: Math.round(r.rps),
        non2xx: r.non2xx,
        cpuMsPerCall: Number(r.cpuMsPerCall.toFixed(2)),
        peakRssMb: Math.round(Math.max(peak, end.rssMb)),
        endRssMb: Math.round(end.rssMb),
        peakAnonMb: Math.round(Math.max(peakAnon, end.anonMb)),
        endAnonMb: Math.round(end.anonMb),
        heapUsedMb: Math.round(m.heapUsed / MB),
        heapTotalMb: Math.round(m.heapTotal / MB),
        externalMb: Math.round(m.external / MB),
        arrayBuffersMb: Math.round(m.arrayBuffers / MB),
        load1: Number(r.load1.toFixed(2)),
      };
      rows.push(row);
      log(
        `[${c}] ${s.padEnd(5)} ${String(row.rps).padStart(5)} req/s non2xx ${row.non2xx} cpu ${row.cpuMsPerCall} ms/call | rss peak ${row.peakRssMb} end ${row.endRssMb} | anon ${row.endAnonMb} | heap ${row.heapUsedMb}/${row.heapTotalMb} ext ${row.externalMb} ab ${row.arrayBuffersMb} | load1 ${row.load1}`,
      );
    }
    if (o.snapshots && (c === 1 || c === Number(o.cycles))) await snapshot(`c${c}`);
  }
  // Settle: 5 s idle after the load.
  await sleep(5000);
  const after = { ...procStats(pid), ...rollup(pid), mem: lastMem() };
  rows.push({
    cycle: Number(o.cycles) + 1,
    scenario: "settled",
    rssMb: after.rssMb,
    anonMb: after.anonMb,
    heapUsedMb: after.mem.heapUsed / MB,
  });
  log(
    `settled: rss ${after.rssMb.toFixed(0)} MB (anon ${after.anonMb.toFixed(0)}), heapUsed ${(after.mem.heapUsed / MB).toFixed(0)} ext ${(after.mem.external / MB).toFixed(0)}`,
  );
  if (!o.pglite && dbName) {
    const u = new URL(adminUrl);
    u.pathname = `/${dbName}`;
    const sql = postgres(u.toString(), { max: 1, onnotice: () => {} });
    // Per-backend prepared statements are visible only to their own backend; count backends instead.
    const [b] =
      await sql`SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = ${dbName}`;
    log(`backends on ${dbName}: ${b?.n}`);
    await sql.end();
  }
} finally {
  await child?.stop();
  if (dbName) await dropBenchDatabase(adminUrl, dbName);
  rmSync(workDir, { recursive: true, force: true });
}
process.stdout.write(`${JSON.stringify({ options: o, rows })}\n`);
