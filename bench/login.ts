/**
 * Login latency and throughput at Haven's argon2id parameters, over HTTP (`auth.login` through the
 * client SDK) against a local server, with the raw argon2 verification measured in the same run as
 * the baseline. Uses a throw-away database on PostgreSQL (`BENCH_DATABASE_URL`, default the test
 * server postgres://postgres@127.0.0.1:5432/postgres; dropped at the end) or, with `--pglite`, the
 * embedded PGlite in a temporary directory. The server is the real one (`startHaven`).
 *
 * Usage: `npx tsx bench/login.ts [--pglite] [sequential=60] [concurrentTotal=120]`
 */
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";
import { hash, verify } from "@node-rs/argon2";
import postgres from "postgres";
import { v7 as uuidv7 } from "uuid";
import { createHavenClient } from "../client-sdk/index.ts";
import { organizations } from "../db/schema/index.ts";
import { startHaven } from "../server/app.ts";
import { createUser } from "../server/auth/login.ts";
import { ARGON2_PARAMS } from "../server/auth/password-hashing.ts";
import { loadConfig } from "../server/config.ts";

const args = process.argv.slice(2);
const usePglite = args.includes("--pglite");
const nums = args.filter((a) => /^\d+$/.test(a)).map(Number);
const SEQUENTIAL = nums[0] ?? 60;
const CONCURRENT_TOTAL = nums[1] ?? 120;
const CONCURRENCY = [1, 2, 4, 8];

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? 0;
};
const ms = (x: number) => `${x.toFixed(1)} ms`;

async function timed<T>(f: () => Promise<T>): Promise<number> {
  const t = performance.now();
  await f();
  return performance.now() - t;
}

/** `total` calls of `f` spread over `workers` concurrent loops; returns calls per second. */
async function throughput(workers: number, total: number, f: (i: number) => Promise<unknown>) {
  let next = 0;
  const t = performance.now();
  await Promise.all(
    Array.from({ length: workers }, async () => {
      for (let i = next++; i < total; i = next++) await f(i);
    }),
  );
  return total / ((performance.now() - t) / 1000);
}

const key = () => randomBytes(32).toString("base64");
let admin: ReturnType<typeof postgres> | undefined;
let dbName: string | undefined;
let databaseUrl: string | undefined;
if (!usePglite) {
  const adminUrl = process.env.BENCH_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";
  admin = postgres(adminUrl, { max: 1, onnotice: () => {} });
  dbName = `haven_bench_login_${randomBytes(4).toString("hex")}`;
  await admin.unsafe(`CREATE DATABASE "${dbName}"`);
  const u = new URL(adminUrl);
  u.pathname = `/${dbName}`;
  databaseUrl = u.toString();
}
const dataDir = await mkdtemp(join(tmpdir(), "haven-bench-login-"));
// The real server, as `npm start` builds it (keys from the environment, no demo data).
const haven = await startHaven(
  loadConfig({
    NODE_ENV: "production",
    HOST: "127.0.0.1",
    PORT: "0",
    LOG_LEVEL: "silent",
    HAVEN_DEMO: "false",
    HAVEN_DATA_DIR: dataDir,
    HAVEN_PHI_KEYS: `bench:${key()}`,
    HAVEN_BLIND_INDEX_KEY: key(),
    ...(databaseUrl ? { DATABASE_URL: databaseUrl } : {}),
  }),
);

try {
  const { url, database } = haven;
  const deps = haven.services.deps;
  const orgId = uuidv7();
  await database.db.insert(organizations).values({ id: orgId, name: "Bench clinic" });
  const users = await Promise.all(
    Array.from({ length: 16 }, async (_, i) => {
      const email = `bench-${i}@haven.test`;
      const password = `bench passphrase number ${i} ${randomBytes(3).toString("hex")}`;
      await createUser(deps, { email, password, role: "patient", organizationId: orgId });
      return { email, password };
    }),
  );
  const anon = createHavenClient({ url });
  const login = (i: number) =>
    anon.auth.login.mutate(users[i % users.length] as { email: string; password: string });

  // warm-up (JIT, connection pool, argon2 thread pool)
  for (let i = 0; i < 5; i++) await login(i);

  const phc = await hash("a bench passphrase for the baseline", ARGON2_PARAMS);
  const raw: number[] = [];
  for (let i = 0; i < SEQUENTIAL; i++)
    raw.push(await timed(() => verify(phc, "a bench passphrase for the baseline")));
  const http: number[] = [];
  for (let i = 0; i < SEQUENTIAL; i++) http.push(await timed(() => login(i)));

  console.log(
    `argon2id m=${ARGON2_PARAMS.memoryCost} KiB, t=${ARGON2_PARAMS.timeCost}, p=${ARGON2_PARAMS.parallelism}; ` +
      `${usePglite ? "PGlite (in memory)" : "PostgreSQL"}; UV_THREADPOOL_SIZE=${process.env.UV_THREADPOOL_SIZE ?? 4}; ` +
      `${availableParallelism()} CPUs`,
  );
  console.log(`\nsequential, ${SEQUENTIAL} each:`);
  console.log(
    `  raw argon2 verify     p50 ${ms(pct(raw, 50))}  p95 ${ms(pct(raw, 95))}  (baseline)`,
  );
  console.log(
    `  HTTP auth.login       p50 ${ms(pct(http, 50))}  p95 ${ms(pct(http, 95))}  ` +
      `(${(pct(http, 50) / pct(raw, 50)).toFixed(2)}× baseline p50; overhead ${ms(pct(http, 50) - pct(raw, 50))})`,
  );
  console.log(`\nthroughput, ${CONCURRENT_TOTAL} logins per row:`);
  for (const c of CONCURRENCY) {
    const rawRate = await throughput(c, CONCURRENT_TOTAL, () =>
      verify(phc, "a bench passphrase for the baseline"),
    );
    const httpRate = await throughput(c, CONCURRENT_TOTAL, (i) => login(i));
    console.log(
      `  concurrency ${String(c).padStart(2)}:  raw verify ${rawRate.toFixed(1).padStart(6)}/s   ` +
        `HTTP logins ${httpRate.toFixed(1).padStart(6)}/s   (${(httpRate / rawRate).toFixed(2)}× baseline)`,
    );
  }
} finally {
  await haven.close();
  await rm(dataDir, { recursive: true, force: true });
  if (admin && dbName) {
    await admin.unsafe(`DROP DATABASE IF EXISTS "${dbName}" WITH (FORCE)`);
    await admin.end();
  }
}
