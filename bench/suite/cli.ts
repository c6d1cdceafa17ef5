/**
 * `npm run bench [-- <name>…] [--quick] [--reps N] [--duration S] [--cpu-prof] [--dated]`
 *
 * One side-by-side suite: Haven on a fresh PostgreSQL database (Synthea demo + generated 10k
 * patients / 100k appointments, timed) against the floor (bench/suite/floor.ts), load from
 * autocannon in a separate process, scenarios interleaved floor/Haven and repeated (medians).
 * Writes bench/results/latest.json and latest.md (gitignored); `--dated` also writes
 * bench/results/YYYY-MM-DD.md (the committed summary). Names: patients.get, patients.get.small,
 * batch, healthz, auth.login, login-flood, appointments.day, appointments.slots, appointments.book,
 * pglite, pgbench.
 *
 * `login-flood`: `patients.get` (full record) at a fixed rate (`--flood-rate`, default 50% of
 * Haven's own `patients.get` maximum from this run) idle, then at the same rate while a second
 * autocannon process floods `auth.login` with valid credentials (`--flood-connections`, default 4,
 * rotating over the four demo accounts); reported: p50/p99 of both and the ratio flood p99 / idle
 * p99 (issue 14's target: ≤ 2×). The login throttle counts failures (a successful attempt withdraws
 * its reservation), so valid logins never reach it; spreading them over several accounts keeps the
 * in-flight reservations per account below its limit of 5. Non-2xx logins mark the run invalid.
 */
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { Command } from "commander";
import { DEMO_LOGINS } from "../../server/demo/seed.ts";
import type { LoadSpec } from "./loader.ts";
import {
  batchUrl,
  type Child,
  procStats,
  queryUrl,
  type RunResult,
  runLoad,
  SUITE_DIR,
  signIn,
  startChild,
} from "./procs.ts";
import {
  createBenchDatabase,
  dropBenchDatabase,
  freshKeys,
  type SeededData,
  seedBenchDatabase,
} from "./setup.ts";

const ALL = [
  "patients.get",
  "patients.get.small",
  "batch",
  "healthz",
  "auth.login",
  "login-flood",
  "appointments.day",
  "appointments.slots",
  "appointments.book",
  "pglite",
  "pgbench",
] as const;
type Name = (typeof ALL)[number];
/** Scenarios with a floor: max-rate ratio plus p50/p99 at 50% and 80% of the floor's max. */
const PAIRED = new Set<Name>([
  "patients.get",
  "patients.get.small",
  "batch",
  "healthz",
  "auth.login",
]);

/**
 * The V8 flags `npm start` and `npm run start:prod` give Haven (package.json; keep in step), so the
 * bench measures what runs: a 16 MB young-generation semi-space (V8's default grows it to 64 MB
 * during start-up and never gives it back: ~130 MB of idle RSS) and no Liftoff tier for
 * PGlite's WebAssembly (only the optimised code is kept: ~110 MB less). bench/results/optimisations.md §5.
 * A 1 GB old-generation limit: below V8's "large heap" threshold its heap controller lets the old
 * generation grow to ~1.3–2× the live heap between full GCs instead of 4× (RSS under load
 * 350 → 215 MB on Postgres, live heap ~60–70 MB). bench/results/optimisations.md §9.
 */
const HAVEN_NODE_FLAGS = ["--max-semi-space-size=16", "--max-old-space-size=1024", "--no-liftoff"];

const program = new Command()
  .name("bench")
  .argument("[names...]", `scenarios (default all): ${ALL.join(", ")}`)
  .option("--quick", "short runs for development (2 s each, smaller data)")
  .option("--reps <n>", "repetitions (medians are reported)", "3")
  .option("--duration <s>", "seconds per load run (default 8, quick 2)")
  .option("--patients <n>", "generated patients", "10000")
  .option("--appointments <n>", "generated appointments", "100000")
  .option("--cpu-prof", "write V8 CPU profiles of Haven to bench/results/prof")
  .option("--no-fixed", "skip the fixed-rate (50%/80%) latency runs")
  .option("--dated", "also write the dated summary bench/results/YYYY-MM-DD.md")
  .option(
    "--flood-rate <n>",
    "login-flood: fixed patients.get rate, req/s (default 50% of Haven's patients.get max)",
  )
  .option("--flood-connections <n>", "login-flood: auth.login connections of the flood", "4")
  .option(
    "--haven-flags <flags>",
    "Node flags of the Haven processes (default: those of `npm start`, package.json)",
    HAVEN_NODE_FLAGS.join(" "),
  )
  .parse();
const opts = program.opts<{
  quick?: boolean;
  reps: string;
  duration?: string;
  patients: string;
  appointments: string;
  cpuProf?: boolean;
  fixed: boolean;
  dated?: boolean;
  floodRate?: string;
  floodConnections: string;
  havenFlags: string;
}>();
const names = (program.args.length > 0 ? program.args : [...ALL]) as Name[];
for (const n of names) {
  if (!(ALL as readonly string[]).includes(n)) program.error(`unknown scenario ${n}`);
}
const reps = Number(opts.reps);
const durationS = Number(opts.duration ?? (opts.quick ? 2 : 8));
const adminUrl =
  process.env.BENCH_DATABASE_URL ??
  process.env.TEST_DATABASE_URL ??
  "postgres://postgres@127.0.0.1:5432/postgres";
const RESULTS = resolve(SUITE_DIR, "../results");
mkdirSync(RESULTS, { recursive: true });
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0
    ? 0
    : s.length % 2
      ? (s[(s.length - 1) / 2] ?? 0)
      : ((s[s.length / 2 - 1] ?? 0) + (s[s.length / 2] ?? 0)) / 2;
};
const log = (s: string) => process.stderr.write(`${s}\n`);

const keys = freshKeys();
const db = await createBenchDatabase(adminUrl);
const children: Child<unknown>[] = [];
const report: Record<string, unknown> = {
  startedAt: new Date().toISOString(),
  machine: { cpus: cpus().length, load1AtStart: loadavg()[0] },
  options: { names, reps, durationS, quick: !!opts.quick },
};
let pgliteDir: string | undefined;
try {
  log(`database ${db.name}: migrate, Synthea demo, generate…`);
  const seeded: SeededData = await seedBenchDatabase(db.url, db.name, keys, {
    patients: Number(opts.quick ? Math.min(Number(opts.patients), 2000) : opts.patients),
    appointments: Number(
      opts.quick ? Math.min(Number(opts.appointments), 20000) : opts.appointments,
    ),
  });
  report.setup = seeded.timings;
  log(
    `seeded: demo ${Math.round(seeded.timings.seedDemoMs)} ms, generated ${seeded.timings.patients} patients + ${seeded.timings.appointments} appointments in ${Math.round(seeded.timings.generateMs)} ms`,
  );

  const havenEnv = {
    DATABASE_URL: db.url,
    HAVEN_PHI_KEYS: keys.phiKeys,
    HAVEN_BLIND_INDEX_KEY: keys.blindIndexKey,
    HAVEN_DEMO: "false",
    PORT: "0",
    LOG_LEVEL: process.env.LOG_LEVEL ?? "warn",
    NODE_ENV: "production",
    HAVEN_AUDIT_SEAL_INTERVAL_MS: "5000",
    // The limiter stays on (its counter writes are part of what a request costs) but with a budget
    // the load cannot exhaust: at the default 600 requests/min per session, every run after the
    // first few hundred requests measured 429s (non-2xx), e.g. patients.get.small at "0/s".
    HAVEN_RATE_LIMIT_SESSION: "1000000",
    HAVEN_RATE_LIMIT_IP: "1000000",
  };
  const profDir = join(RESULTS, "prof");
  const havenFlags = [
    ...opts.havenFlags.split(/\s+/).filter(Boolean),
    ...(opts.cpuProf ? ["--cpu-prof", `--cpu-prof-dir=${profDir}`] : []),
  ];
  const haven = await startChild<Record<string, never>>(
    resolve(SUITE_DIR, "haven-child.ts"),
    havenEnv,
    havenFlags,
  );
  children.push(haven);
  const floor = await startChild<Record<string, never>>(resolve(SUITE_DIR, "floor.ts"), {
    DATABASE_URL: db.url,
    HAVEN_PHI_KEYS: keys.phiKeys,
    HAVEN_BLIND_INDEX_KEY: keys.blindIndexKey,
  });
  children.push(floor);
  const H = haven.info.url;
  const F = floor.info.url;
  const idle = { haven: procStats(haven.info.pid).rssMb, floor: procStats(floor.info.pid).rssMb };

  const secret = (role: string) => seeded.totp.find((t) => t.role === role)?.secret;
  const login = (role: string) => DEMO_LOGINS.find((l) => l.role === role) ?? DEMO_LOGINS[0];
  const clin = login("clinician");
  const staff = login("staff");
  const pat = login("patient");
  if (!clin || !staff || !pat) throw new Error("demo logins missing");
  const clinToken = await signIn(H, clin.email, clin.password, secret("clinician"));
  const staffToken = await signIn(H, staff.email, staff.password, secret("staff"));
  const auth = (t: string) => ({ authorization: `Bearer ${t}` });

  const full = { patientId: seeded.demoPatientId };
  const small = { patientId: seeded.demoPatientId, entryLimit: 10 };
  // Byte-identical check: the same request to both, compared as bytes.
  const identical: Record<string, { identical: boolean; bytes: number; floorBytes: number }> = {};
  for (const [label, h, f] of [
    ["patients.get", queryUrl(H, "patients.get", full), queryUrl(F, "patients.get", full)],
    ["patients.get.small", queryUrl(H, "patients.get", small), queryUrl(F, "patients.get", small)],
    ["batch", batchUrl(H, "patients.get", small, 10), batchUrl(F, "patients.get", small, 10)],
  ] as const) {
    const [a, b] = await Promise.all(
      [h, f].map(async (u) =>
        Buffer.from(await (await fetch(u, { headers: auth(clinToken) })).arrayBuffer()),
      ),
    );
    if (!a || !b) throw new Error("no response");
    identical[label] = { identical: a.equals(b), bytes: a.length, floorBytes: b.length };
    if (!a.equals(b)) {
      writeFileSync(join(RESULTS, `mismatch-${label}-haven.json`), a);
      writeFileSync(join(RESULTS, `mismatch-${label}-floor.json`), b);
    }
    log(
      `${label}: ${a.length} B (Haven) vs ${b.length} B (floor): ${a.equals(b) ? "byte-identical" : "DIFFERENT"}`,
    );
  }
  report.identical = identical;

  const specs = (name: Name): { haven: LoadSpec; floor?: LoadSpec; calls: number } | null => {
    const base = { connections: 10, durationS };
    switch (name) {
      case "patients.get":
        return {
          haven: { ...base, url: queryUrl(H, "patients.get", full), headers: auth(clinToken) },
          floor: { ...base, url: queryUrl(F, "patients.get", full), headers: auth(clinToken) },
          calls: 1,
        };
      case "patients.get.small":
        return {
          haven: { ...base, url: queryUrl(H, "patients.get", small), headers: auth(clinToken) },
          floor: { ...base, url: queryUrl(F, "patients.get", small), headers: auth(clinToken) },
          calls: 1,
        };
      case "batch":
        return {
          haven: { ...base, url: batchUrl(H, "patients.get", small, 10), headers: auth(clinToken) },
          floor: { ...base, url: batchUrl(F, "patients.get", small, 10), headers: auth(clinToken) },
          calls: 10,
        };
      case "healthz":
        return {
          haven: { ...base, url: `${H}/healthz` },
          floor: { ...base, url: `${F}/hello` },
          calls: 1,
        };
      case "auth.login": {
        const body = JSON.stringify({ email: pat.email, password: pat.password });
        const headers = { "content-type": "application/json" };
        return {
          haven: {
            ...base,
            connections: 4,
            url: `${H}/trpc/auth.login`,
            method: "POST",
            headers,
            body: JSON.stringify({ json: JSON.parse(body) }),
          },
          floor: { ...base, connections: 4, url: `${F}/login`, method: "POST", headers, body },
          calls: 1,
        };
      }
      case "appointments.day":
        return {
          haven: {
            ...base,
            url: queryUrl(H, "appointments.day", {
              organizationId: seeded.organizationId,
              date: seeded.busyDate,
            }),
            headers: auth(staffToken),
          },
          calls: 1,
        };
      case "appointments.slots": {
        const from = new Date("2027-01-04T00:00:00Z");
        const to = new Date(from.getTime() + 7 * 86_400_000);
        const input = {
          json: {
            practitionerId: seeded.demoPractitionerId,
            from: from.toISOString(),
            to: to.toISOString(),
          },
          meta: { values: { from: ["Date"], to: ["Date"] }, v: 1 },
        };
        return {
          haven: {
            ...base,
            url: `${H}/trpc/appointments.slots?input=${encodeURIComponent(JSON.stringify(input))}`,
            headers: auth(staffToken),
          },
          calls: 1,
        };
      }
      case "appointments.book":
        return {
          haven: {
            ...base,
            url: `${H}/trpc/appointments.book`,
            method: "POST",
            headers: { ...auth(staffToken), "content-type": "application/json" },
            book: {
              practitionerIds: seeded.bookingPractitionerIds,
              patientIds: seeded.bookingPatientIds,
              startMs: Date.UTC(2027, 1, 1, 0, 0, 0),
              stepMs: 15 * 60_000,
              offset: 0,
            },
          },
          calls: 1,
        };
      default:
        return null;
    }
  };

  // PGlite Haven: its own demo seed in a temp directory.
  let pglite:
    | Child<{ demo: { patientId: string | null; totp: { role: string; secret: string }[] } }>
    | undefined;
  let pgliteToken = "";
  if (names.includes("pglite")) {
    pgliteDir = mkdtempSync(join(tmpdir(), "haven-bench-pglite-"));
    pglite = await startChild(
      resolve(SUITE_DIR, "haven-child.ts"),
      {
        ...havenEnv,
        DATABASE_URL: undefined,
        HAVEN_DATA_DIR: pgliteDir,
        HAVEN_DEMO: "true",
      },
      havenFlags,
    );
    children.push(pglite as Child<unknown>);
    const s = pglite.info.demo.totp.find((t) => t.role === "clinician")?.secret;
    pgliteToken = await signIn(pglite.info.url, clin.email, clin.password, s);
    report.pgliteIdleRssMb = procStats(pglite.info.pid).rssMb;
  }

  type Row = { name: string; rep: number; side: string; rate?: string } & RunResult;
  const rows: Row[] = [];
  let bookOffset = 0;
  // login-flood: the fixed patients.get rate (fixed at the first repetition), the flood's spec.
  let floodRate = opts.floodRate ? Number(opts.floodRate) : 0;
  let floodRateFrom = opts.floodRate ? "--flood-rate" : "";
  const floodConnections = Number(opts.floodConnections);
  const floodAccounts = DEMO_LOGINS.map((l) => l.email);
  const floodSpec: LoadSpec = {
    connections: floodConnections,
    // Started first and outlasting the measured run (loader start-up is ~1–2 s under load).
    durationS: durationS + 5,
    url: `${H}/trpc/auth.login`,
    method: "POST",
    headers: { "content-type": "application/json" },
    bodies: DEMO_LOGINS.map((l) =>
      JSON.stringify({ json: { email: l.email, password: l.password } }),
    ),
  };
  for (let rep = 1; rep <= reps; rep++) {
    for (const name of names) {
      if (name === "pgbench") continue;
      if (name === "login-flood") {
        const target: LoadSpec = {
          connections: 10,
          durationS,
          url: queryUrl(H, "patients.get", full),
          headers: auth(clinToken),
        };
        if (floodRate === 0) {
          const maxRuns = rows.filter(
            (r) => r.name === "patients.get" && r.side === "haven" && r.rate === undefined,
          );
          let max = median(maxRuns.map((r) => r.rps));
          floodRateFrom = "50% of Haven's patients.get max in this run";
          if (maxRuns.length === 0) {
            const m = await runLoad(target, haven.info.pid);
            rows.push({ name, rep, side: "haven-max", ...m });
            max = m.rps;
            floodRateFrom = "50% of Haven's patients.get max (calibration run)";
          }
          floodRate = Math.max(1, Math.round(max / 2));
        }
        const rate = `${floodRate}/s`;
        const idleRun = await runLoad({ ...target, rate: floodRate }, haven.info.pid);
        rows.push({ name, rep, side: "idle", rate, ...idleRun });
        const flooding = runLoad(floodSpec, haven.info.pid);
        await new Promise((r) => setTimeout(r, 2000));
        const during = await runLoad({ ...target, rate: floodRate }, haven.info.pid);
        const logins = await flooding;
        rows.push({ name, rep, side: "flood", rate, ...during });
        rows.push({ name, rep, side: "flood-logins", ...logins });
        log(
          `[${rep}] login-flood: patients.get @${rate} p99 idle ${idleRun.p99} ms, during flood ${during.p99} ms (${(during.p99 / (idleRun.p99 || 1)).toFixed(2)}×); flood ${logins.rps.toFixed(0)} logins/s (non-2xx ${logins.non2xx}, patients.get non-2xx ${idleRun.non2xx}/${during.non2xx})`,
        );
        continue;
      }
      if (name === "pglite") {
        if (!pglite) continue;
        const base = { connections: 10, durationS };
        const pg = await runLoad(
          { ...base, url: queryUrl(H, "patients.get", full), headers: auth(clinToken) },
          haven.info.pid,
        );
        rows.push({ name, rep, side: "postgres", ...pg });
        const pl = await runLoad(
          {
            ...base,
            url: queryUrl(pglite.info.url, "patients.get", {
              patientId: pglite.info.demo.patientId,
            }),
            headers: auth(pgliteToken),
          },
          pglite.info.pid,
        );
        rows.push({ name, rep, side: "pglite", ...pl });
        log(`[${rep}] pglite ${pl.rps.toFixed(0)}/s vs postgres ${pg.rps.toFixed(0)}/s`);
        continue;
      }
      const s = specs(name);
      if (!s) continue;
      if (s.haven.book) {
        s.haven.book.offset = bookOffset;
        bookOffset += 1_000_000;
      }
      let floorMax = 0;
      if (s.floor) {
        const f = await runLoad(s.floor, floor.info.pid, s.calls);
        rows.push({ name, rep, side: "floor", ...f });
        floorMax = f.rps / s.calls;
      }
      const h = await runLoad(s.haven, haven.info.pid, s.calls);
      rows.push({ name, rep, side: "haven", ...h });
      log(
        `[${rep}] ${name}: haven ${h.rps.toFixed(0)}/s${s.floor ? ` vs floor ${(floorMax * s.calls).toFixed(0)}/s` : ""} (p99 ${h.p99} ms, ${h.cpuMsPerCall.toFixed(2)} CPU ms/call, non-2xx ${h.non2xx})`,
      );
      if (s.floor && opts.fixed && PAIRED.has(name) && floorMax > 0) {
        for (const pct of [50, 80]) {
          const rate = Math.max(1, Math.round((floorMax * pct) / 100));
          for (const side of ["floor", "haven"] as const) {
            const spec = side === "floor" ? s.floor : s.haven;
            const r = await runLoad(
              { ...spec, rate },
              side === "floor" ? floor.info.pid : haven.info.pid,
              s.calls,
            );
            rows.push({ name, rep, side, rate: `${pct}%`, ...r });
          }
        }
      }
    }
  }

  // pgbench -S -M prepared: the database's own read ceiling on this machine.
  if (names.includes("pgbench")) {
    const has = spawnSync("pgbench", ["--version"]).status === 0;
    if (!has) report.pgbench = { skipped: "pgbench not installed (postgresql-contrib)" };
    else {
      const pgb = await createBenchDatabase(adminUrl);
      try {
        const u = new URL(pgb.url);
        const conn = [
          "-h",
          u.hostname,
          "-p",
          u.port || "5432",
          "-U",
          u.username || "postgres",
          pgb.name,
        ];
        spawnSync("pgbench", ["-i", "-s", "1", "-q", ...conn], { stdio: "ignore" });
        const tps: number[] = [];
        for (let rep = 1; rep <= reps; rep++) {
          const r = spawnSync(
            "pgbench",
            ["-S", "-M", "prepared", "-c", "10", "-j", "2", "-T", String(durationS), ...conn],
            { encoding: "utf8" },
          );
          const m = /tps = ([\d.]+)/.exec(r.stdout);
          if (m) tps.push(Number(m[1]));
        }
        report.pgbench = { tps, median: median(tps) };
        log(`pgbench -S -M prepared: ${median(tps).toFixed(0)} tps`);
      } finally {
        await dropBenchDatabase(adminUrl, pgb.name);
      }
    }
  }

  // Medians and ratios.
  const pick = (name: string, side: string, rate?: string) =>
    rows.filter((r) => r.name === name && r.side === side && r.rate === rate);
  const med = (rs: Row[], k: keyof RunResult) => median(rs.map((r) => r[k] as number));
  const summary: Record<string, unknown>[] = [];
  for (const name of names) {
    if (name === "pgbench" || name === "login-flood") continue;
    const sides =
      name === "pglite" ? (["postgres", "pglite"] as const) : (["floor", "haven"] as const);
    const [refSide, subjSide] = sides;
    const ref = pick(name, refSide);
    const subj = pick(name, subjSide);
    if (subj.length === 0) continue;
    const entry: Record<string, unknown> = {
      name,
      [subjSide]: {
        rps: med(subj, "rps"),
        p50: med(subj, "p50"),
        p99: med(subj, "p99"),
        cpuMsPerCall: med(subj, "cpuMsPerCall"),
        rssMb: Math.max(...subj.map((r) => r.rssMb)),
        non2xx: med(subj, "non2xx"),
      },
      load1: med([...ref, ...subj], "load1"),
    };
    if (ref.length > 0) {
      entry[refSide] = {
        rps: med(ref, "rps"),
        p50: med(ref, "p50"),
        p99: med(ref, "p99"),
        cpuMsPerCall: med(ref, "cpuMsPerCall"),
        rssMb: Math.max(...ref.map((r) => r.rssMb)),
      };
      entry.ratio = med(subj, "rps") / (med(ref, "rps") || 1);
      entry.ratioPerRep = subj.map((r, i) => r.rps / (ref[i]?.rps || 1));
    }
    for (const pct of ["50%", "80%"]) {
      const f = pick(name, "floor", pct);
      const h = pick(name, "haven", pct);
      if (h.length > 0)
        entry[`at${pct}`] = {
          floor: { p50: med(f, "p50"), p99: med(f, "p99") },
          haven: { p50: med(h, "p50"), p99: med(h, "p99"), rps: med(h, "rps") },
        };
    }
    summary.push(entry);
  }
  if (names.includes("login-flood")) {
    const idleRuns = pick("login-flood", "idle", `${floodRate}/s`);
    const floodRuns = pick("login-flood", "flood", `${floodRate}/s`);
    const loginRuns = pick("login-flood", "flood-logins");
    const stats = (rs: Row[]) => ({
      rps: med(rs, "rps"),
      p50: med(rs, "p50"),
      p99: med(rs, "p99"),
      non2xx: rs.reduce((a, r) => a + r.non2xx, 0),
    });
    const ratioP99 = med(floodRuns, "p99") / (med(idleRuns, "p99") || 1);
    report.loginFlood = {
      rate: floodRate,
      rateFrom: floodRateFrom,
      floodConnections,
      floodAccounts: floodAccounts.length,
      uvThreadpoolSize: process.env.UV_THREADPOOL_SIZE ?? "4 (libuv default)",
      idle: stats(idleRuns),
      flood: stats(floodRuns),
      logins: { ...stats(loginRuns), rssMb: Math.max(0, ...loginRuns.map((r) => r.rssMb)) },
      ratioP99,
      ratioP99PerRep: floodRuns.map((r, i) => r.p99 / (idleRuns[i]?.p99 || 1)),
      ratioP50: med(floodRuns, "p50") / (med(idleRuns, "p50") || 1),
      target: "flood p99 / idle p99 ≤ 2",
      met: ratioP99 <= 2,
      load1: med([...idleRuns, ...floodRuns], "load1"),
    };
  }
  report.idleRssMb = idle;
  report.summary = summary;
  report.runs = rows;
  report.machine = { ...(report.machine as object), load1AtEnd: loadavg()[0] };
  writeFileSync(join(RESULTS, "latest.json"), `${JSON.stringify(report, null, 2)}\n`);
  const md = markdown(report, summary);
  writeFileSync(join(RESULTS, "latest.md"), md);
  if (opts.dated) writeFileSync(join(RESULTS, `${new Date().toISOString().slice(0, 10)}.md`), md);
  process.stdout.write(md);
} finally {
  for (const c of children.reverse()) await c.stop();
  if (pgliteDir) rmSync(pgliteDir, { recursive: true, force: true });
  await dropBenchDatabase(adminUrl, db.name);
}

/** `report.loginFlood`: the login-flood scenario's medians (ms, req/s) and its p99 ratio. */
interface LoginFlood {
  rate: number;
  rateFrom: string;
  floodConnections: number;
  floodAccounts: number;
  uvThreadpoolSize: string;
  idle: { rps: number; p50: number; p99: number; non2xx: number };
  flood: { rps: number; p50: number; p99: number; non2xx: number };
  logins: { rps: number; p50: number; p99: number; non2xx: number; rssMb: number };
  ratioP99: number;
  ratioP99PerRep: number[];
  ratioP50: number;
  met: boolean;
  load1: number;
}

function fmt(n: unknown, digits = 0): string {
  return typeof n === "number" ? n.toFixed(digits) : "–";
}

/** The Markdown report: one ratio per line (`name … 0.62×`), then the full table. */
function markdown(r: Record<string, unknown>, summary: Record<string, unknown>[]): string {
  const m = r.machine as { cpus: number; load1AtStart: number; load1AtEnd: number };
  const o = r.options as { reps: number; durationS: number; quick: boolean };
  const setup = r.setup as SeededData["timings"];
  const lines = [
    `# Haven bench, ${String(r.startedAt).slice(0, 16)}Z`,
    "",
    `${m.cpus} cores, 1-minute load average ${fmt(m.load1AtStart, 2)} at start, ${fmt(m.load1AtEnd, 2)} at end (machine shared with other agents: absolute numbers are noisy; ratios are from interleaved runs). ${o.reps} repetitions × ${o.durationS} s per run${o.quick ? " (--quick)" : ""}, medians. Load: autocannon in a separate process.`,
    "",
    `Setup: Synthea demo seed ${fmt(setup.seedDemoMs)} ms; generated ${setup.patients} patients + ${setup.appointments} appointments (sealed, batched INSERTs of 1,000) in ${fmt(setup.generateMs)} ms.`,
    "",
    "## Ratios (Haven / floor, req/s)",
    "",
  ];
  for (const s of summary) {
    if (typeof s.ratio === "number") lines.push(`- ${s.name} … ${s.ratio.toFixed(2)}×`);
  }
  const lf = r.loginFlood as LoginFlood | undefined;
  if (lf)
    lines.push(
      `- login-flood: patients.get p99 during an auth.login flood / idle p99 … ${lf.ratioP99.toFixed(2)}× (target ≤ 2×: ${lf.met ? "met" : "short"})`,
    );
  const pgb = r.pgbench as { median?: number; skipped?: string } | undefined;
  if (pgb)
    lines.push(
      `- pgbench -S -M prepared (DB ceiling) … ${pgb.median ? `${pgb.median.toFixed(0)} tps` : pgb.skipped}`,
    );
  const ident = r.identical as Record<string, { identical: boolean; bytes: number }>;
  lines.push(
    "",
    "Byte-identical responses: " +
      Object.entries(ident)
        .map(([k, v]) => `${k} ${v.identical ? "yes" : "NO"} (${v.bytes} B)`)
        .join(", "),
    "",
  );
  // Only 2xx responses count as throughput: a run with refusals (429, 5xx) measured the refusals.
  const refused = ((r.runs ?? []) as { name: string; side: string; rep: number; non2xx: number }[])
    .filter((x) => x.non2xx > 0)
    .map((x) => `${x.name} ${x.side} rep ${x.rep}: ${x.non2xx}`);
  if (refused.length > 0) {
    lines.push(`**Non-2xx responses (these runs are not valid):** ${refused.join("; ")}`, "");
  }
  lines.push(
    "| scenario | ref req/s | Haven req/s | ratio | Haven p50 / p99 ms | ref p50 / p99 | CPU ms/call Haven / ref | RSS MB Haven / ref | p99 @50% H / F | p99 @80% H / F | load1 |",
    "|---|---|---|---|---|---|---|---|---|---|---|",
  );
  for (const s of summary) {
    const subj = (s.haven ?? s.pglite) as Record<string, number>;
    const ref = (s.floor ?? s.postgres) as Record<string, number> | undefined;
    const a50 = s["at50%"] as { floor: { p99: number }; haven: { p99: number } } | undefined;
    const a80 = s["at80%"] as { floor: { p99: number }; haven: { p99: number } } | undefined;
    lines.push(
      `| ${s.name}${s.pglite ? " (PGlite vs Postgres)" : ""} | ${fmt(ref?.rps)} | ${fmt(subj.rps)} | ${typeof s.ratio === "number" ? `${s.ratio.toFixed(2)}×` : "–"} | ${fmt(subj.p50)} / ${fmt(subj.p99)} | ${fmt(ref?.p50)} / ${fmt(ref?.p99)} | ${fmt(subj.cpuMsPerCall, 2)} / ${fmt(ref?.cpuMsPerCall, 2)} | ${fmt(subj.rssMb)} / ${fmt(ref?.rssMb)} | ${a50 ? `${fmt(a50.haven.p99)} / ${fmt(a50.floor.p99)}` : "–"} | ${a80 ? `${fmt(a80.haven.p99)} / ${fmt(a80.floor.p99)}` : "–"} | ${fmt(s.load1, 2)} |`,
    );
  }
  if (lf) {
    lines.push(
      "",
      `## Login flood (patients.get at ${lf.rate} req/s fixed, ${lf.rateFrom})`,
      "",
      `Flood: a separate autocannon process, auth.login with valid credentials, c=${lf.floodConnections}, rotating over ${lf.floodAccounts} accounts; Haven's UV_THREADPOOL_SIZE=${lf.uvThreadpoolSize} (@node-rs/argon2 verifies on the libuv thread pool).`,
      "",
      "| | patients.get req/s | p50 ms | p99 ms | non-2xx |",
      "|---|---|---|---|---|",
      `| idle | ${fmt(lf.idle.rps, 1)} | ${fmt(lf.idle.p50)} | ${fmt(lf.idle.p99)} | ${lf.idle.non2xx} |`,
      `| during the login flood | ${fmt(lf.flood.rps, 1)} | ${fmt(lf.flood.p50)} | ${fmt(lf.flood.p99)} | ${lf.flood.non2xx} |`,
      "",
      `Ratio flood / idle: p99 ${lf.ratioP99.toFixed(2)}× (per repetition: ${lf.ratioP99PerRep.map((x) => `${x.toFixed(2)}×`).join(", ")}), p50 ${lf.ratioP50.toFixed(2)}×. The flood itself: ${fmt(lf.logins.rps, 1)} logins/s (p50 ${fmt(lf.logins.p50)} / p99 ${fmt(lf.logins.p99)} ms, non-2xx ${lf.logins.non2xx}); Haven RSS after it ${fmt(lf.logins.rssMb)} MB; load1 ${fmt(lf.load1, 2)}.`,
    );
  }
  const idle = r.idleRssMb as { haven: number; floor: number };
  lines.push(
    "",
    `Idle RSS: Haven on Postgres ${fmt(idle.haven)} MB, floor ${fmt(idle.floor)} MB${typeof r.pgliteIdleRssMb === "number" ? `, Haven on PGlite ${fmt(r.pgliteIdleRssMb)} MB` : ""}.`,
    "",
  );
  return `${lines.join("\n")}\n`;
}
