import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import postgres from "postgres";
import { startMailSink } from "./mail-sink.ts";

const ROOT = join(import.meta.dirname, "..");
export const STATE_FILE = join(ROOT, "e2e", "artifacts", "state.json");

/** What the specs need about the running Haven. */
export interface E2eState {
  url: string;
  databaseUrl: string;
  totp: Record<string, string>;
  emails: Record<string, string>;
  passwords: Record<string, string>;
}

async function run(cmd: string, args: string[]): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const p = spawn(cmd, args, { cwd: ROOT, stdio: "inherit" });
    p.on("exit", (c) =>
      c === 0 ? resolve() : reject(new Error(`${cmd} ${args.join(" ")}: ${c}`)),
    );
  });
}

/**
 * Fresh database `haven_e2e_<run>` on the shared cluster, the panel (re)built if `admin/dist` is
 * missing or older than its sources, then `server/main.ts` with HAVEN_DEMO=true (demo accounts + Synthea import) on the
 * panel's port range. Returns the teardown (stop Haven, drop the database).
 */
export default async function globalSetup(): Promise<() => Promise<void>> {
  const adminUrl = process.env.TEST_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";
  const name = `haven_e2e_${Date.now().toString(36)}_${process.pid}`;
  const admin = postgres(adminUrl, { max: 1, onnotice: () => {} });
  await admin.unsafe(`CREATE DATABASE "${name}"`);
  const dbUrl = new URL(adminUrl);
  dbUrl.pathname = `/${name}`;
  if (!existsSync(join(ROOT, "client-sdk", "dist", "index.js")))
    await run("npm", ["run", "build:sdk"]);
  // The panel under test is built from the current sources (a stale admin/dist would test old code).
  await run(process.execPath, [join(ROOT, "scripts", "ensure-admin-build.mjs")]);
  const dataDir = await mkdtemp(join(tmpdir(), "haven-e2e-"));
  const port = process.env.HAVEN_E2E_PORT ?? "45100";
  const url = `http://127.0.0.1:${port}`;
  // Haven's mail goes over real SMTP to a sink the specs read (invitation links, ...).
  await mkdir(join(ROOT, "e2e", "artifacts"), { recursive: true });
  const mail = await startMailSink(Number(process.env.HAVEN_E2E_SMTP_PORT ?? Number(port) + 1));
  const haven: ChildProcess = spawn(process.execPath, ["--import", "tsx", "server/main.ts"], {
    cwd: ROOT,
    stdio: ["ignore", "pipe", "pipe"],
    env: {
      ...process.env,
      DATABASE_URL: dbUrl.toString(),
      HOST: "127.0.0.1",
      PORT: port,
      HAVEN_DEMO: "true",
      HAVEN_DATA_DIR: dataDir,
      HAVEN_AUDIT_SEAL_INTERVAL_MS: "500",
      HAVEN_SMTP_URL: mail.url,
      // Workforce invitation links open the panel it serves: HAVEN_PUBLIC_URL + /admin.
      HAVEN_PUBLIC_URL: url,
      LOG_LEVEL: "warn",
    },
  });
  let out = "";
  haven.stdout?.on("data", (b: Buffer) => {
    out += b.toString();
  });
  haven.stderr?.on("data", (b: Buffer) => {
    out += b.toString();
  });
  const deadline = Date.now() + 120_000;
  for (;;) {
    if (haven.exitCode !== null) throw new Error(`Haven exited during start:\n${out}`);
    const ok = await fetch(`${url}/readyz`).then(
      (r) => r.ok,
      () => false,
    );
    if (ok && out.includes("Haven is ready")) break;
    if (Date.now() > deadline) throw new Error(`Haven did not become ready:\n${out}`);
    await new Promise((r) => setTimeout(r, 300));
  }
  const logins = await readFile(join(dataDir, "demo-logins.txt"), "utf8");
  const state: E2eState = {
    url,
    databaseUrl: dbUrl.toString(),
    totp: {},
    emails: {},
    passwords: {},
  };
  let role = "";
  for (const line of logins.split("\n")) {
    const m = /^(admin|staff|clinician|patient)\s+(\S+)\s+(\S+)/.exec(line);
    if (m?.[1] && m[2] && m[3]) {
      role = m[1];
      state.emails[role] = m[2];
      state.passwords[role] = m[3];
    }
    const t = /totp secret (\S+)/.exec(line);
    if (t?.[1] && role) state.totp[role] = t[1];
  }
  await writeFile(STATE_FILE, JSON.stringify(state), { mode: 0o600 }).catch(async () => {
    const { mkdir } = await import("node:fs/promises");
    await mkdir(join(ROOT, "e2e", "artifacts"), { recursive: true });
    await writeFile(STATE_FILE, JSON.stringify(state), { mode: 0o600 });
  });
  process.env.HAVEN_E2E_URL = url;
  return async () => {
    haven.kill("SIGTERM");
    await new Promise((r) => haven.once("exit", r));
    await mail.close();
    await admin.unsafe(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
    await admin.end();
    await rm(dataDir, { recursive: true, force: true });
  };
}
