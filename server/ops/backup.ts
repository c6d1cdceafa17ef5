import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { mkdir, readFile, stat, writeFile } from "node:fs/promises";
import { hostname, userInfo } from "node:os";
import { join } from "node:path";
import { sql } from "drizzle-orm";
import postgres from "postgres";
import type { DatabaseHandle } from "../../db/client.ts";
import { rowsOf } from "../../db/rows.ts";
import { sealAuditChain } from "../audit/chain.ts";
import { recordAudit, SYSTEM_ACTOR } from "../kernel/audit.ts";
import { type DatabaseFacts, readFacts } from "./facts.ts";

/**
 * `npm run backup`: a logical, consistent backup plus a manifest (HIPAA 45 CFR 164.308(a)(7)(ii)(A)
 * data backup plan). PostgreSQL: `pg_dump -Fc` of an exported snapshot, so the dump, the row
 * counts and the audit chain head in the manifest describe the same instant. Embedded PGlite: the
 * data directory's tarball (`dumpDataDir`) taken through the normal open path, i.e. while this
 * process holds the database. Keys are never written: the manifest names key ids and the
 * blind-index key fingerprint so a restore can say which escrowed keys it needs.
 */

export const MANIFEST_FILE = "manifest.json";
export const MANIFEST_FORMAT = "haven-backup/1";

export interface BackupManifest extends DatabaseFacts {
  format: typeof MANIFEST_FORMAT;
  /** ISO-8601 UTC time the snapshot was taken. */
  createdAt: string;
  source: {
    kind: "postgres" | "pglite";
    /** Database name (Postgres) or data directory (PGlite); never credentials. */
    name: string;
    serverVersion: string;
  };
  payload: {
    file: string;
    format: "pg_dump-custom" | "pglite-datadir-tgz";
    bytes: number;
    /** Hex SHA-256 of the payload file. */
    sha256: string;
  };
}

/** A step of a long operation, for the CLI's progress display. */
export type Progress = (event: { step: string; done?: number; total?: number }) => void;

/** Refusals and failures of backup and restore; messages name ids, files and counts, never PHI. */
export class OpsError extends Error {
  override name = "OpsError";
}

/** Hex SHA-256 of a file, streamed. */
export async function sha256File(path: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest("hex");
}

/** Read and shape-check a backup directory's manifest. @throws OpsError */
export async function readManifest(dir: string): Promise<BackupManifest> {
  let parsed: BackupManifest;
  try {
    parsed = JSON.parse(await readFile(join(dir, MANIFEST_FILE), "utf8")) as BackupManifest;
  } catch {
    throw new OpsError(`no readable ${MANIFEST_FILE} in ${dir}`);
  }
  if (parsed.format !== MANIFEST_FORMAT) {
    throw new OpsError(`${dir}: unknown backup format ${String(parsed.format)}`);
  }
  return parsed;
}

/** Directory name for a backup taken at `at`: `haven-<UTC timestamp>`. */
export function backupDirName(at: Date): string {
  return `haven-${at
    .toISOString()
    .replaceAll(":", "")
    .replace(/\.\d+Z$/, "Z")}`;
}

function runPgTool(cmd: string, args: string[], onLine: (line: string) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ["ignore", "ignore", "pipe"] });
    let tail = "";
    let buffer = "";
    child.stderr.setEncoding("utf8");
    child.stderr.on("data", (chunk: string) => {
      buffer += chunk;
      const lines = buffer.split("\n");
      buffer = lines.pop() ?? "";
      for (const l of lines) {
        onLine(l);
        if (
          !/^pg_(dump|restore): (dumping|processing|creating|restoring|reading|executing|saving|last|finished|connecting|implied|launching)/.test(
            l,
          )
        ) {
          tail = `${tail}\n${l}`.slice(-2000);
        }
      }
    });
    child.once("error", (err) => reject(new OpsError(`cannot run ${cmd}: ${err.message}`)));
    child.once("close", (code) => {
      if (code === 0) resolve();
      else reject(new OpsError(`${cmd} exited with ${code}:${tail || " (no message)"}`));
    });
  });
}

export interface BackupOptions {
  /** The open database (normal open path: on PGlite this holds the data directory). */
  handle: DatabaseHandle;
  /** postgres:// URL of the same database (Postgres only; pg_dump connects with it). */
  url?: string | undefined;
  /** Parent directory; the backup goes into `<outDir>/haven-<timestamp>/`. */
  outDir: string;
  /** pg_dump binary (default `pg_dump` on PATH; HAVEN_PG_BIN/pg_dump when set). */
  pgDump?: string;
  progress?: Progress;
  now?: () => Date;
}

export interface BackupResult {
  dir: string;
  manifest: BackupManifest;
  durationMs: number;
}

/**
 * Take a backup. Seals the audit chain first (so the head covers every event so far), then takes
 * the snapshot, writes payload + manifest, and records `ops.backup` in the audit trail.
 * @throws OpsError when pg_dump fails or the database cannot be read
 */
export async function takeBackup(options: BackupOptions): Promise<BackupResult> {
  const started = performance.now();
  const now = options.now ?? (() => new Date());
  const progress = options.progress ?? (() => {});
  const { handle } = options;
  progress({ step: "sealing the audit chain" });
  await sealAuditChain(handle.db, { full: true });
  const at = now();
  const dir = join(options.outDir, backupDirName(at));
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const [version] = rowsOf<{ v: string }>(
    await handle.db.execute(sql`SELECT current_setting('server_version') AS v`),
  );
  const serverVersion = version?.v ?? "unknown";
  let facts: DatabaseFacts;
  let payload: BackupManifest["payload"];
  let name: string;

  if (handle.kind === "postgres") {
    if (!options.url) throw new OpsError("a PostgreSQL backup needs the database URL");
    name = new URL(options.url).pathname.slice(1);
    const file = "haven.dump";
    // One REPEATABLE READ transaction exports its snapshot; pg_dump reads exactly that snapshot,
    // and the manifest's facts are read in it too.
    const snap = postgres(options.url, { max: 1, onnotice: () => {}, connect_timeout: 10 });
    try {
      const conn = await snap.reserve();
      try {
        await conn.unsafe("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
        const [row] = await conn.unsafe<{ id: string }[]>("SELECT pg_export_snapshot() AS id");
        progress({ step: "reading row counts, key ids and the chain head" });
        facts = await readFacts((text) => conn.unsafe(text) as Promise<Record<string, unknown>[]>);
        const tables = Object.keys(facts.rowCounts).length;
        let dumped = 0;
        progress({ step: "pg_dump", done: 0, total: tables });
        await runPgTool(
          options.pgDump ??
            (process.env.HAVEN_PG_BIN ? join(process.env.HAVEN_PG_BIN, "pg_dump") : "pg_dump"),
          [
            "--format=custom",
            "--no-owner",
            "--no-privileges",
            "--verbose",
            `--snapshot=${row?.id}`,
            `--file=${join(dir, file)}`,
            `--dbname=${options.url}`,
          ],
          (line) => {
            if (/dumping contents of table "public\./.test(line)) {
              dumped++;
              progress({ step: "pg_dump", done: Math.min(dumped, tables), total: tables });
            }
          },
        );
        await conn.unsafe("COMMIT");
      } finally {
        conn.release();
      }
    } finally {
      await snap.end({ timeout: 5 });
    }
    payload = { file, format: "pg_dump-custom", bytes: 0, sha256: "" };
  } else {
    if (!handle.dumpDataDir)
      throw new OpsError("this database handle cannot dump its data directory");
    name = "pglite";
    const file = "haven-pglite.tar.gz";
    // PGlite is one connection held by this process: nothing else writes while we read.
    progress({ step: "reading row counts, key ids and the chain head" });
    facts = await readFacts(async (text) => rowsOf(await handle.db.execute(sql.raw(text))));
    progress({ step: "dumping the PGlite data directory" });
    const blob = await handle.dumpDataDir();
    await writeFile(join(dir, file), Buffer.from(await blob.arrayBuffer()), { mode: 0o600 });
    payload = { file, format: "pglite-datadir-tgz", bytes: 0, sha256: "" };
  }
  progress({ step: "checksumming" });
  payload.bytes = (await stat(join(dir, payload.file))).size;
  payload.sha256 = await sha256File(join(dir, payload.file));
  const manifest: BackupManifest = {
    format: MANIFEST_FORMAT,
    createdAt: at.toISOString(),
    source: { kind: handle.kind, name, serverVersion },
    payload,
    ...facts,
  };
  await writeFile(join(dir, MANIFEST_FILE), `${JSON.stringify(manifest, null, 2)}\n`, {
    mode: 0o600,
  });
  // Operator action, audited (45 CFR 164.312(b)); after the snapshot, so not inside the backup.
  await recordAudit(
    handle.db,
    SYSTEM_ACTOR,
    {
      action: "ops.backup",
      outcome: "allowed",
      resourceType: "Backup",
      resourceId: payload.sha256,
      details: {
        via: "cli",
        operator: operatorName(),
        kind: handle.kind,
        bytes: payload.bytes,
        chainHeadSeq: facts.auditChainHead?.seq ?? null,
      },
    },
    now(),
  );
  return { dir, manifest, durationMs: performance.now() - started };
}

/** OS account and host running an operator CLI (no PHI; who did it, for the audit trail). */
export function operatorName(): string {
  let user = "unknown";
  try {
    user = userInfo().username;
  } catch {}
  return `${user}@${hostname()}`.slice(0, 128);
}
