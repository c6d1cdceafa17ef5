/**
 * Throughput of the reminder queue: claim + complete, in reminders per second, through the real
 * cron processes (`workers/reminders/cli.ts`, log transport: no SMTP) against one Haven server
 * on PostgreSQL. Measures 1 worker, then 4 workers at once, in the same run and on the same
 * database, and prints the ratio, plus how busy the (single) Haven server process was: when its event
 * loop is saturated, more workers cannot help and more app instances would. A run's time is the cron's own `elapsedMs` (first claim to last
 * report; process start-up excluded); for 4 workers, the slowest worker's.
 *
 * Usage: `npx tsx bench/reminders.ts [reminders=4000] [rounds=2]`; the workers' claim size and send
 * lanes default to 50 and 8 (`BENCH_REMINDER_BATCH_SIZE`, `BENCH_REMINDER_CONCURRENCY`).
 * Needs PostgreSQL at TEST_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/postgres); it
 * creates and drops its own database.
 */
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { performance } from "node:perf_hooks";
import { Writable } from "node:stream";
import postgres from "postgres";
import { openDatabase } from "../db/client.ts";
import { createApiKey } from "../server/accounts/api-keys.ts";
import { startHaven } from "../server/app.ts";
import { loadConfig } from "../server/config.ts";
import { seedDueReminders } from "../server/reminders/test/fixtures.ts";
import { makeOrganization } from "../server/test/factory.ts";
import { type CronSummary, killAll, spawnCron } from "../workers/reminders/test/processes.ts";

const total = Number(process.argv[2] ?? 4000);
const rounds = Number(process.argv[3] ?? 2);
const adminUrl = process.env.TEST_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";
const dbName = `${process.env.BENCH_DB_PREFIX ?? "haven_bench_"}reminders_${randomBytes(4).toString("hex")}`;
const admin = postgres(adminUrl, { max: 1, onnotice: () => {} });
await admin.unsafe(`CREATE DATABASE "${dbName}"`);
const url = new URL(adminUrl);
url.pathname = `/${dbName}`;

const key32 = () => randomBytes(32).toString("base64");
const silent = new Writable({ write: (_c, _e, cb) => cb() });
const database = await openDatabase({ url: url.toString(), maxConnections: 20 });
const haven = await startHaven(
  loadConfig({
    DATABASE_URL: url.toString(),
    PORT: process.env.BENCH_PORT ?? "0",
    HAVEN_DEMO: "false",
    HAVEN_PHI_KEYS: `bench:${key32()}`,
    HAVEN_BLIND_INDEX_KEY: key32(),
    LOG_LEVEL: "warn",
  }),
  { logDestination: silent, database },
);

const TICK_MS = 10; // USER_HZ = 100 on Linux

/** utime+stime (ms) of a /proc stat line, and of its waited-for children (cutime+cstime). */
function procCpuMs(pid: number | "self"): { own: number; children: number } | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // fields after ")": state(3) … utime(14) stime(15) cutime(16) cstime(17), 0-based from state
    return {
      own: (Number(f[11]) + Number(f[12])) * TICK_MS,
      children: (Number(f[13]) + Number(f[14])) * TICK_MS,
    };
  } catch {
    return null; // not Linux, or the process is gone
  }
}

/** CPU ms of every Postgres backend serving the bench database (only on the same machine). */
async function postgresCpu(): Promise<Map<number, number>> {
  const rows = await admin<{ pid: number }[]>`
    select pid from pg_stat_activity where datname = ${dbName}`;
  const out = new Map<number, number>();
  for (const { pid } of rows) {
    const c = procCpuMs(pid);
    if (c) out.set(pid, c.own);
  }
  return out;
}

async function measure(workers: number, orgId: string, key: string): Promise<number> {
  const deps = haven.services.deps;
  await seedDueReminders(deps, { organizationId: orgId, count: total, now: deps.now() });
  const env = {
    HAVEN_REMINDER_CONCURRENCY: process.env.BENCH_REMINDER_CONCURRENCY ?? "8",
    HAVEN_REMINDER_BATCH_SIZE: process.env.BENCH_REMINDER_BATCH_SIZE ?? "50",
    LOG_LEVEL: "info",
  };
  const pgBefore = await postgresCpu();
  const childrenBefore = procCpuMs("self")?.children ?? Number.NaN;
  const elu = performance.eventLoopUtilization();
  const cpu = process.cpuUsage();
  const wall = performance.now();
  const procs = Array.from({ length: workers }, () =>
    spawnCron({ url: haven.url, apiKey: key, env }),
  );
  const codes = await Promise.all(procs.map((p) => p.exit));
  const busy = performance.eventLoopUtilization(elu).utilization;
  const used = process.cpuUsage(cpu);
  const workersMs = (procCpuMs("self")?.children ?? Number.NaN) - childrenBefore;
  let pgMs = 0;
  for (const [pid, ms] of await postgresCpu()) pgMs += ms - (pgBefore.get(pid) ?? 0);
  const cpuShare = (used.user + used.system) / 1000 / (performance.now() - wall);
  if (codes.some((c) => c !== 0)) {
    throw new Error(`a worker failed: ${procs.map((p) => p.stderr()).join("\n")}`);
  }
  const summaries = procs.map((p) => p.summaries().at(-1) as CronSummary);
  const sent = summaries.reduce((n, s) => n + s.sent, 0);
  if (sent !== total) throw new Error(`expected ${total} sent, got ${sent}`);
  const ms = Math.max(...summaries.map((s) => s.elapsedMs));
  const rate = (total / ms) * 1000;
  // CPU time is far less sensitive to a shared machine's load than the rate: compare this first.
  const cpuMsPerReminder = (used.user + used.system) / 1000 / total;
  console.log(
    `${workers} worker(s): ${total} reminders in ${ms} ms = ${rate.toFixed(0)} reminders/s ` +
      `(per worker: ${summaries.map((s) => s.sent).join(", ")}); Haven server: event loop ` +
      `${(busy * 100).toFixed(0)}% busy, ${(cpuShare * 100).toFixed(0)}% of a core (incl. worker start-up), ` +
      `${cpuMsPerReminder.toFixed(3)} ms CPU per reminder; Postgres backends ` +
      `${(pgMs / total).toFixed(3)} ms, cron processes ${(workersMs / total).toFixed(3)} ms ` +
      `(incl. their start-up) per reminder`,
  );
  return rate;
}

try {
  console.log(
    `reminder queue throughput, claim+complete over HTTP, log transport, ${total} reminders per run`,
  );
  const results: { one: number; four: number }[] = [];
  for (let r = 0; r < rounds; r++) {
    const org = await makeOrganization(haven.services.deps);
    const { key } = await createApiKey(
      haven.services.deps,
      { organizationId: org, name: "bench", scopes: ["reminders"], createdBy: null },
      null,
    );
    const one = await measure(1, org, key);
    const four = await measure(4, org, key);
    results.push({ one, four });
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;
  const one = median(results.map((r) => r.one));
  const four = median(results.map((r) => r.four));
  console.log(
    `median: 1 worker ${one.toFixed(0)}/s, 4 workers ${four.toFixed(0)}/s, ratio ${(four / one).toFixed(2)}x`,
  );
} finally {
  await killAll();
  await haven.close();
  await database.close();
  await admin.unsafe(`DROP DATABASE IF EXISTS "${dbName}" WITH (FORCE)`);
  await admin.end();
}
