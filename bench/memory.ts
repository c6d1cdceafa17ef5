/**
 * Where an idle Haven's memory goes: boots one Haven in this process (PGlite in a temp data
 * directory, or PostgreSQL on a fresh database with `--postgres`), waits for it to settle, and
 * prints `process.memoryUsage()` split into V8 heap, external/ArrayBuffers (PGlite's WASM memory
 * lives there) and the rest of RSS (code, module graph's compiled functions, native allocations),
 * plus the largest heap-snapshot groups by retained-by-type self size (`--snapshot` writes a
 * `.heapsnapshot` for DevTools too).
 *
 * Usage: `node --import tsx bench/memory.ts [--postgres] [--snapshot] [--port N]`
 * Needs PostgreSQL at TEST_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/postgres) for
 * `--postgres`; it creates and drops its own database.
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";
import { writeHeapSnapshot } from "node:v8";
import postgres from "postgres";
import { startHaven } from "../server/app.ts";
import { loadConfig } from "../server/config.ts";

const args = new Set(process.argv.slice(2));
const portArg = process.argv[process.argv.indexOf("--port") + 1];
const usePostgres = args.has("--postgres");
const adminUrl = process.env.TEST_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";
const dataDir = mkdtempSync(join(tmpdir(), "haven-mem-"));
const dbName = `haven_bench_mem_${randomBytes(4).toString("hex")}`;
const admin = usePostgres ? postgres(adminUrl, { max: 1, onnotice: () => {} }) : null;
let url: string | undefined;
if (admin) {
  await admin.unsafe(`CREATE DATABASE "${dbName}"`);
  const u = new URL(adminUrl);
  u.pathname = `/${dbName}`;
  url = u.toString();
}

const mb = (n: number) => `${(n / 1024 / 1024).toFixed(0)} MB`;
function report(label: string): void {
  const m = process.memoryUsage();
  console.log(
    `${label}: rss ${mb(m.rss)} = heapTotal ${mb(m.heapTotal)} (used ${mb(m.heapUsed)}) + ` +
      `external ${mb(m.external)} (ArrayBuffers ${mb(m.arrayBuffers)}) + other ${mb(
        m.rss - m.heapTotal - m.external,
      )}`,
  );
}

/** Self size per node type/name in a V8 heap snapshot, largest first. */
function summarise(file: string, top = 15): void {
  const snap = JSON.parse(readFileSync(file, "utf8")) as {
    snapshot: { meta: { node_fields: string[]; node_types: [string[]] } };
    nodes: number[];
    strings: string[];
  };
  const fields = snap.snapshot.meta.node_fields;
  const types = snap.snapshot.meta.node_types[0];
  const [t, n, s] = ["type", "name", "self_size"].map((f) => fields.indexOf(f)) as [
    number,
    number,
    number,
  ];
  const groups = new Map<string, { size: number; count: number }>();
  for (let i = 0; i < snap.nodes.length; i += fields.length) {
    const type = types[snap.nodes[i + t] as number] ?? "?";
    const name =
      type === "object" || type === "native" ? snap.strings[snap.nodes[i + n] as number] : "";
    const key = `${type}${name ? ` ${name}` : ""}`;
    const g = groups.get(key) ?? { size: 0, count: 0 };
    g.size += snap.nodes[i + s] as number;
    g.count++;
    groups.set(key, g);
  }
  const sorted = [...groups.entries()].sort((a, b) => b[1].size - a[1].size).slice(0, top);
  for (const [key, g] of sorted) console.log(`  ${mb(g.size).padStart(7)}  ${g.count} × ${key}`);
}

report("before boot");
const haven = await startHaven(
  loadConfig({
    ...(url ? { DATABASE_URL: url } : {}),
    HAVEN_DATA_DIR: dataDir,
    PORT: portArg && portArg !== process.argv[1] ? portArg : "0",
    HAVEN_DEMO: "true",
    HAVEN_PHI_KEYS: `bench:${randomBytes(32).toString("base64")}`,
    HAVEN_BLIND_INDEX_KEY: randomBytes(32).toString("base64"),
    HAVEN_MIGRATE_ON_START: "true",
    LOG_LEVEL: "warn",
  }),
  { logDestination: new Writable({ write: (_c, _e, cb) => cb() }) },
);
try {
  await sleep(3000);
  globalThis.gc?.();
  report(`idle on ${usePostgres ? "PostgreSQL" : "PGlite"}`);
  if (args.has("--snapshot")) {
    const file = writeHeapSnapshot(
      join(tmpdir(), `haven-${usePostgres ? "pg" : "pglite"}.heapsnapshot`),
    );
    console.log(`heap snapshot: ${file}`);
    summarise(file);
  }
} finally {
  await haven.close();
  if (admin) {
    await admin.unsafe(`DROP DATABASE IF EXISTS "${dbName}" WITH (FORCE)`);
    await admin.end();
  }
  rmSync(dataDir, { recursive: true, force: true });
}
