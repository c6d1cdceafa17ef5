import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { PGlite } from "@electric-sql/pglite";
import { btree_gist } from "@electric-sql/pglite/contrib/btree_gist";
import { pgcrypto } from "@electric-sql/pglite/contrib/pgcrypto";
import { sql } from "drizzle-orm";
import postgres from "postgres";
import { type DatabaseHandle, openDatabase } from "../../db/client.ts";
import { lockDataDir } from "../../db/lock.ts";
import { rowsOf } from "../../db/rows.ts";
import { verifyAuditChain } from "../audit/chain.ts";
import { blindIndexFingerprint, checkBlindIndexKey } from "../crypto/fingerprint.ts";
import type { Keyring } from "../crypto/keyring.ts";
import { PhiCrypto } from "../crypto/phi.ts";
import { encryptedColumns } from "../crypto/registry.ts";
import { recordAudit, SYSTEM_ACTOR } from "../kernel/audit.ts";
import {
  type BackupManifest,
  OpsError,
  operatorName,
  type Progress,
  readManifest,
  sha256File,
} from "./backup.ts";
import { migrationRefusal, readFacts } from "./facts.ts";
import { APP_GRANTS_SQL, APP_ROLE_SQL, APPEND_ONLY_CHECK_SQL } from "./roles.ts";

/**
 * `npm run restore`: put a backup back and prove it is whole (HIPAA 45 CFR 164.308(a)(7)(ii)(B)
 * disaster recovery plan, (D) testing). Refuses before touching the target when the backup is
 * corrupt (checksum), from a newer schema, or needs keys this process does not hold (naming the
 * key ids / fingerprint). Recreates the `haven_app` role and its grants, applies this code's newer
 * migrations, then verifies row counts, the audit chain head and chain, a sample of every
 * encrypted column decrypting, the blind-index key, and the append-only grants.
 */

export interface RestoreTarget {
  /** postgres:// URL of the database to create and restore into (must not exist, or be empty). */
  url?: string | undefined;
  /** PGlite data directory (must not exist, or be empty). */
  pgliteDir?: string | undefined;
}

export interface RestoreOptions {
  backupDir: string;
  target: RestoreTarget;
  /** The keys this deployment holds (from HAVEN_PHI_KEYS / the escrowed key file). */
  keyring: Keyring;
  /** Rows per encrypted column decrypted as a sample (default 20). */
  sampleSize?: number;
  pgRestore?: string;
  progress?: Progress;
  now?: () => Date;
}

export interface RestoreVerification {
  rowCounts: { table: string; expected: number; actual: number }[];
  chainHead: BackupManifest["auditChainHead"];
  chainLinksVerified: number;
  decrypted: { table: string; column: string; sampled: number }[];
  blindIndexKey: "match" | "recorded";
  appendOnly: { canInsert: boolean; canUpdate: boolean; canDelete: boolean; triggers: number };
  migrationsApplied: number;
}

export interface RestoreResult {
  manifest: BackupManifest;
  verification: RestoreVerification;
  durationMs: number;
}

/**
 * Everything that makes a backup unrestorable with `keyring`, before anything is written.
 * @returns problems (empty = restorable)
 */
export async function preflight(
  backupDir: string,
  manifest: BackupManifest,
  keyring: Keyring,
): Promise<string[]> {
  const problems: string[] = [];
  const payload = join(backupDir, manifest.payload.file);
  if (!existsSync(payload)) problems.push(`payload ${manifest.payload.file} is missing`);
  else if ((await sha256File(payload)) !== manifest.payload.sha256) {
    problems.push(
      `payload ${manifest.payload.file} does not match the manifest's SHA-256 (corrupt or altered)`,
    );
  }
  const refusal = migrationRefusal(manifest.migrations);
  if (refusal) problems.push(refusal);
  const held = new Set(keyring.keyIds());
  const missing = manifest.keys.idsInUse.filter((id) => !held.has(id));
  if (missing.length > 0) {
    problems.push(
      `PHI key id(s) ${missing.map((id) => `"${id}"`).join(", ")} are needed to decrypt this backup ` +
        `but not loaded (held: ${[...held].join(", ")}); fetch them from key escrow (docs/operations.md)`,
    );
  }
  const fp = manifest.keys.blindIndexFingerprint;
  if (fp !== null && fp !== blindIndexFingerprint(keyring)) {
    problems.push(
      `the blind-index key differs from the one the backup's indexes were built with (fingerprint ${fp}); ` +
        "load that key from escrow (HAVEN_BLIND_INDEX_KEY)",
    );
  }
  return problems;
}

function runTool(cmd: string, args: string[], onLine: (l: string) => void): Promise<void> {
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
        if (/error|fatal/i.test(l)) tail = `${tail}\n${l}`.slice(-2000);
      }
    });
    child.once("error", (err) => reject(new OpsError(`cannot run ${cmd}: ${err.message}`)));
    child.once("close", (code) =>
      code === 0 ? resolve() : reject(new OpsError(`${cmd} exited with ${code}:${tail}`)),
    );
  });
}

async function preparePostgresTarget(url: string, progress: Progress): Promise<void> {
  const target = new URL(url);
  const name = decodeURIComponent(target.pathname.slice(1));
  if (!/^[A-Za-z0-9_-]{1,63}$/.test(name))
    throw new OpsError("target database name must be [A-Za-z0-9_-]");
  const adminUrl = new URL(url);
  adminUrl.pathname = "/postgres";
  const admin = postgres(adminUrl.toString(), { max: 1, onnotice: () => {}, connect_timeout: 10 });
  try {
    const exists = await admin`SELECT 1 FROM pg_database WHERE datname = ${name}`;
    if (exists.length === 0) {
      progress({ step: `creating database ${name}` });
      await admin.unsafe(`CREATE DATABASE "${name}"`);
    } else {
      const db = postgres(url, { max: 1, onnotice: () => {}, connect_timeout: 10 });
      try {
        const [row] = await db<{ n: number }[]>`
          SELECT count(*)::int AS n FROM pg_class c JOIN pg_namespace s ON s.oid = c.relnamespace
          WHERE c.relkind = 'r' AND s.nspname NOT IN ('pg_catalog', 'information_schema')`;
        if ((row?.n ?? 0) > 0) {
          throw new OpsError(
            `target database ${name} is not empty (${row?.n} tables); restore into a new one`,
          );
        }
      } finally {
        await db.end({ timeout: 5 });
      }
    }
    progress({ step: "recreating role haven_app" });
    await admin.unsafe(APP_ROLE_SQL);
  } finally {
    await admin.end({ timeout: 5 });
  }
}

async function restorePayload(
  options: RestoreOptions,
  manifest: BackupManifest,
  progress: Progress,
): Promise<DatabaseHandle> {
  const payload = join(options.backupDir, manifest.payload.file);
  if (manifest.payload.format === "pg_dump-custom") {
    const url = options.target.url;
    if (!url) throw new OpsError("a pg_dump backup restores into PostgreSQL: give a target URL");
    await preparePostgresTarget(url, progress);
    const total = Object.keys(manifest.rowCounts).length;
    let done = 0;
    progress({ step: "pg_restore", done, total });
    await runTool(
      options.pgRestore ??
        (process.env.HAVEN_PG_BIN ? join(process.env.HAVEN_PG_BIN, "pg_restore") : "pg_restore"),
      [
        "--no-owner",
        "--no-privileges",
        "--exit-on-error",
        "--single-transaction",
        "--verbose",
        `--dbname=${url}`,
        payload,
      ],
      (line) => {
        if (/processing data for table "public\./.test(line)) {
          done++;
          progress({ step: "pg_restore", done: Math.min(done, total), total });
        }
      },
    );
    const handle = await openDatabase({ url, maxConnections: 2 });
    progress({ step: "granting haven_app" });
    await handle.db.execute(sql.raw(APP_GRANTS_SQL));
    return handle;
  }
  const dir = options.target.pgliteDir;
  if (!dir) throw new OpsError("a PGlite backup restores into a data directory: give one");
  if (existsSync(dir) && (await readdir(dir)).length > 0) {
    throw new OpsError(`target data directory ${dir} is not empty; restore into a new one`);
  }
  progress({ step: "unpacking the PGlite data directory" });
  const blob = new Blob([await readFile(payload)]);
  // Unpacking is a PGlite open too: under the data-directory lock (db/lock.ts).
  const lock = await lockDataDir(dir);
  try {
    const loaded = await PGlite.create(dir, {
      loadDataDir: blob,
      extensions: { btree_gist, pgcrypto },
    });
    await loaded.close();
  } finally {
    await lock.release();
  }
  // From here on through the normal open path (and its data-directory lock).
  return await openDatabase({ pgliteDir: dir });
}

/**
 * Restore a backup and verify it. The target must be new (or empty).
 * @throws OpsError listing every preflight problem, or the first failed verification
 */
export async function restoreBackup(options: RestoreOptions): Promise<RestoreResult> {
  const started = performance.now();
  const progress = options.progress ?? (() => {});
  const now = options.now ?? (() => new Date());
  progress({ step: "checking the manifest, checksum, schema level and keys" });
  const manifest = await readManifest(options.backupDir);
  const problems = await preflight(options.backupDir, manifest, options.keyring);
  if (problems.length > 0) {
    throw new OpsError(`refusing to restore ${options.backupDir}:\n  - ${problems.join("\n  - ")}`);
  }
  const handle = await restorePayload(options, manifest, progress);
  try {
    progress({ step: "applying newer migrations" });
    const before = manifest.migrations.length;
    await handle.migrate();
    progress({ step: "verifying row counts and the audit chain head" });
    const facts = await readFacts(async (text) => rowsOf(await handle.db.execute(sql.raw(text))));
    const rowCounts = Object.entries(manifest.rowCounts).map(([table, expected]) => ({
      table,
      expected,
      actual: facts.rowCounts[table] ?? -1,
    }));
    const wrong = rowCounts.filter((r) => r.expected !== r.actual);
    if (wrong.length > 0) {
      throw new OpsError(
        `row counts differ after restore: ${wrong.map((r) => `${r.table} ${r.actual}/${r.expected}`).join(", ")}`,
      );
    }
    const head = manifest.auditChainHead;
    if (JSON.stringify(facts.auditChainHead) !== JSON.stringify(head)) {
      throw new OpsError(
        `audit chain head after restore is ${facts.auditChainHead?.seq ?? "none"}, the backup's is ${head?.seq ?? "none"}`,
      );
    }
    progress({ step: "verifying the audit hash chain" });
    const chain = await verifyAuditChain(handle.db, head ? { anchor: head } : {});
    if (!chain.ok) {
      throw new OpsError(
        `audit chain broken after restore: ${chain.problemCount} problem(s), first at seq ${chain.firstBroken?.seq}`,
      );
    }
    progress({ step: "decrypting a sample of every encrypted column" });
    const crypto = new PhiCrypto(options.keyring);
    const sampleSize = options.sampleSize ?? 20;
    const decrypted: RestoreVerification["decrypted"] = [];
    for (const entry of encryptedColumns()) {
      const rows = rowsOf<{ id: string; v: string }>(
        await handle.db.execute(
          sql`SELECT ${sql.identifier(entry.idColumn)}::text AS id, ${sql.identifier(entry.column)} AS v
              FROM ${sql.identifier(entry.table)} WHERE ${sql.identifier(entry.column)} IS NOT NULL
              ORDER BY random() LIMIT ${sampleSize}`,
        ),
      );
      for (const r of rows) {
        try {
          crypto.open(entry.table, entry.column, r.id, r.v);
        } catch {
          throw new OpsError(
            `${entry.table}.${entry.column} row ${r.id} does not decrypt after restore`,
          );
        }
      }
      decrypted.push({ table: entry.table, column: entry.column, sampled: rows.length });
    }
    const blindIndexKey = await checkBlindIndexKey(handle.db, crypto, now());
    let appendOnly: RestoreVerification["appendOnly"];
    if (handle.kind === "postgres") {
      progress({ step: "checking audit append-only grants" });
      const [g] = rowsOf<{
        can_insert: boolean;
        can_update: boolean;
        can_delete: boolean;
        triggers: number;
      }>(await handle.db.execute(sql.raw(APPEND_ONLY_CHECK_SQL)));
      appendOnly = {
        canInsert: Boolean(g?.can_insert),
        canUpdate: Boolean(g?.can_update),
        canDelete: Boolean(g?.can_delete),
        triggers: Number(g?.triggers ?? 0),
      };
      if (
        !appendOnly.canInsert ||
        appendOnly.canUpdate ||
        appendOnly.canDelete ||
        appendOnly.triggers !== 4
      ) {
        throw new OpsError(
          `audit append-only protection incomplete after restore: ${JSON.stringify(appendOnly)}`,
        );
      }
    } else {
      // PGlite has one role; the triggers are the protection.
      const [t] = rowsOf<{ n: number }>(
        await handle.db.execute(
          sql`SELECT count(*)::int AS n FROM pg_trigger WHERE tgname LIKE 'audit_%' AND NOT tgisinternal`,
        ),
      );
      appendOnly = {
        canInsert: true,
        canUpdate: false,
        canDelete: false,
        triggers: Number(t?.n ?? 0),
      };
    }
    const verification: RestoreVerification = {
      rowCounts,
      chainHead: head,
      chainLinksVerified: chain.links,
      decrypted,
      blindIndexKey,
      appendOnly,
      migrationsApplied: facts.migrations.length - before,
    };
    await recordAudit(
      handle.db,
      SYSTEM_ACTOR,
      {
        action: "ops.restore",
        outcome: "allowed",
        resourceType: "Backup",
        resourceId: manifest.payload.sha256,
        details: {
          via: "cli",
          operator: operatorName(),
          backupCreatedAt: manifest.createdAt,
          rows: rowCounts.reduce((a, r) => a + r.actual, 0),
          chainHeadSeq: head?.seq ?? null,
          sampledValues: decrypted.reduce((a, d) => a + d.sampled, 0),
        },
      },
      now(),
    );
    return { manifest, verification, durationMs: performance.now() - started };
  } finally {
    await handle.close();
  }
}
