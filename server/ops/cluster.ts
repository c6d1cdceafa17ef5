import { execFile, spawn } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import { chown, mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { createConnection } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

/**
 * Throwaway PostgreSQL clusters on loopback for outage, restore, PITR, plan and scale-out tests
 * (BRIEF: never stop or reconfigure the shared cluster; use a port in your own range and remove the
 * cluster afterwards). `initdb` refuses to run as root, so as root every server-side command runs
 * as the `postgres` OS user through `runuser`, and the data directory is owned by it.
 */

/** Directory of the newest installed PostgreSQL server binaries (override: HAVEN_PG_BIN). */
export function pgBinDir(): string {
  const override = process.env.HAVEN_PG_BIN;
  if (override) return override;
  const root = "/usr/lib/postgresql";
  const versions = existsSync(root)
    ? readdirSync(root)
        .filter((v) => /^\d+$/.test(v) && Number(v) >= 15)
        .sort((a, b) => Number(b) - Number(a))
    : [];
  const newest = versions[0];
  if (!newest) throw new Error("no PostgreSQL >= 15 server binaries under /usr/lib/postgresql");
  return join(root, newest, "bin");
}

const asRoot = process.getuid?.() === 0;

/** argv that runs `cmd` as the cluster's OS user (postgres when we are root). */
export function asClusterUser(cmd: string, args: string[]): [string, string[]] {
  return asRoot ? ["runuser", ["-u", "postgres", "--", cmd, ...args]] : [cmd, args];
}

/** Run a command as the cluster user; resolves with stdout, rejects with stderr in the message. */
export async function runAsClusterUser(
  cmd: string,
  args: string[],
  env: NodeJS.ProcessEnv = {},
): Promise<string> {
  const [c, a] = asClusterUser(cmd, args);
  try {
    const { stdout } = await run(c, a, {
      env: { ...process.env, ...env },
      maxBuffer: 64 * 1024 * 1024,
    });
    return stdout;
  } catch (err) {
    const e = err as { stderr?: string; stdout?: string; message: string };
    throw new Error(`${cmd} ${a.slice(-3).join(" ")} failed: ${e.stderr || e.stdout || e.message}`);
  }
}

/** Is anything accepting TCP connections on 127.0.0.1:port? */
export function portInUse(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createConnection({ host: "127.0.0.1", port });
    s.once("connect", () => {
      s.destroy();
      resolve(true);
    });
    s.once("error", () => resolve(false));
  });
}

export interface ClusterOptions {
  /** Fixed loopback port (from the caller's assigned range). */
  port: number;
  /** Extra postgresql.conf settings (e.g. shared_preload_libraries, archive_command). */
  settings?: Record<string, string>;
}

export interface ThrowawayCluster {
  port: number;
  /** The data directory (owned by the cluster user). */
  dataDir: string;
  /** A directory the cluster user may write (pgBackRest repository, logs). */
  workDir: string;
  /** `postgres://postgres@127.0.0.1:<port>/<db>` (trust authentication). */
  url(database?: string): string;
  start(): Promise<void>;
  /** `pg_ctl stop -m <mode>` (fast: terminate sessions; immediate: crash-like). */
  stop(mode?: "fast" | "immediate"): Promise<void>;
  /** Run psql as postgres on this cluster; @returns its stdout */
  psql(sql: string, database?: string): Promise<string>;
  /** Stop (if running) and delete every file of the cluster. */
  destroy(): Promise<void>;
}

/**
 * initdb a new cluster in a temp directory and start it on `127.0.0.1:<port>` (trust auth for the
 * `postgres` user, unix socket inside the work directory, fsync off: throwaway data).
 * @throws Error when the port is taken (a stale cluster from a killed run: stop it first)
 */
export async function createCluster(options: ClusterOptions): Promise<ThrowawayCluster> {
  const { port } = options;
  if (await portInUse(port)) {
    throw new Error(`port ${port} is in use; a stale throwaway cluster? (stop it, then re-run)`);
  }
  const bin = pgBinDir();
  const workDir = await mkdtemp(join(tmpdir(), `haven-pg-${port}-`));
  const dataDir = join(workDir, "data");
  await mkdir(dataDir, { mode: 0o700 });
  if (asRoot) {
    const { stdout } = await run("id", ["-u", "postgres"]);
    const { stdout: g } = await run("id", ["-g", "postgres"]);
    const uid = Number(stdout.trim());
    const gid = Number(g.trim());
    await chown(workDir, uid, gid);
    await chown(dataDir, uid, gid);
  }
  await runAsClusterUser(join(bin, "initdb"), [
    "-D",
    dataDir,
    "-U",
    "postgres",
    "--auth=trust",
    "--encoding=UTF8",
    "--no-instructions",
  ]);
  const settings: Record<string, string> = {
    listen_addresses: "'127.0.0.1'",
    port: String(port),
    unix_socket_directories: `'${workDir}'`,
    fsync: "off",
    synchronous_commit: "off",
    full_page_writes: "on",
    max_connections: "100",
    shared_buffers: "64MB",
    ...options.settings,
  };
  const conf = Object.entries(settings)
    .map(([k, v]) => `${k} = ${v}`)
    .join("\n");
  await runAsClusterUser("sh", [
    "-c",
    `cat >> '${join(dataDir, "postgresql.conf")}' <<'EOF'\n${conf}\nEOF`,
  ]);
  let running = false;
  const logFile = join(workDir, "postgres.log");
  const cluster: ThrowawayCluster = {
    port,
    dataDir,
    workDir,
    url: (database = "postgres") => `postgres://postgres@127.0.0.1:${port}/${database}`,
    start: async () => {
      await runAsClusterUser(join(bin, "pg_ctl"), ["-D", dataDir, "-l", logFile, "-w", "start"]);
      running = true;
    },
    stop: async (mode = "fast") => {
      await runAsClusterUser(join(bin, "pg_ctl"), ["-D", dataDir, "-m", mode, "-w", "stop"]);
      running = false;
    },
    psql: (sql, database = "postgres") =>
      runAsClusterUser("psql", [
        "-X",
        "-q",
        "-v",
        "ON_ERROR_STOP=1",
        "-h",
        "127.0.0.1",
        "-p",
        String(port),
        "-U",
        "postgres",
        "-d",
        database,
        "-At",
        "-c",
        sql,
      ]),
    destroy: async () => {
      if (running || existsSync(join(dataDir, "postmaster.pid"))) {
        await cluster.stop("immediate").catch(() => {});
      }
      await rm(workDir, { recursive: true, force: true });
    },
  };
  try {
    await cluster.start();
  } catch (err) {
    await rm(workDir, { recursive: true, force: true });
    throw err;
  }
  return cluster;
}

/** Write a file the cluster user can read (config files for pgBackRest, PgBouncer). */
export async function writeClusterFile(path: string, text: string): Promise<void> {
  await writeFile(path, text, { mode: 0o644 });
}

/** Spawn a long-running helper process (PgBouncer, HAProxy) as the cluster user. */
export function spawnAsClusterUser(cmd: string, args: string[]) {
  const [c, a] = asClusterUser(cmd, args);
  return spawn(c, a, { stdio: ["ignore", "pipe", "pipe"] });
}
