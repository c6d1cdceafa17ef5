import { existsSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { parseCommandLine } from "../cli.ts";
import { ConfigError, loadConfig } from "../config.ts";
import { KeyError } from "../crypto/keyring.ts";
import { loadKeys } from "../crypto/load.ts";
import { databaseOpenFailure } from "../startup-errors.ts";
import { OpsError, readManifest } from "./backup.ts";
import { stderrProgress } from "./progress.ts";
import { restoreBackup } from "./restore.ts";

/**
 * `npm run restore -- <backup dir> [--target <postgres URL>]`: restore a backup made by
 * `npm run backup` into a NEW database (default DATABASE_URL; created when missing, refused when
 * not empty) or, for an embedded backup, into HAVEN_DATA_DIR/pglite (must be new). Keys come from
 * HAVEN_PHI_KEYS/HAVEN_BLIND_INDEX_KEY or HAVEN_DATA_DIR/keys.json; the restore never generates
 * keys. Exit 0 restored and verified, 1 refused or failed.
 */
const USAGE = `Usage: npm run restore -- <backup dir> [options]

Refuses a backup whose checksum fails, whose schema is newer than this code, or whose keys are not
loaded (naming the missing key ids). Then restores, recreates the haven_app role and its grants,
applies newer migrations, and verifies row counts, the audit chain head and chain, a decrypted
sample of every encrypted column, the blind-index key and the audit append-only grants.

Options:
  --target <url>   postgres:// URL of the new database (default DATABASE_URL)
  --sample <n>     values decrypted per encrypted column (default 20)
  --json           print the verification as JSON
  -h, --help       show this help`;

async function main(argv: string[]): Promise<number> {
  const parsed = parseCommandLine(
    () =>
      parseArgs({
        args: argv,
        strict: true,
        allowPositionals: true,
        options: {
          help: { type: "boolean", short: "h" },
          json: { type: "boolean" },
          target: { type: "string" },
          sample: { type: "string" },
        },
      }),
    USAGE,
  );
  if (typeof parsed === "number") return parsed;
  const [backupDir, ...extra] = parsed.positionals;
  if (!backupDir || extra.length > 0) {
    console.error(`Give exactly one backup directory.\n\n${USAGE}`);
    return 1;
  }
  const config = loadConfig();
  const manifest = await readManifest(backupDir);
  // Never let the embedded key provider mint fresh keys: that would "succeed" into garbage.
  const keyFile = join(config.HAVEN_DATA_DIR, "keys.json");
  if (!config.HAVEN_PHI_KEYS && !existsSync(keyFile)) {
    throw new OpsError(
      `no keys: set HAVEN_PHI_KEYS and HAVEN_BLIND_INDEX_KEY or put the escrowed key file at ${keyFile}. ` +
        `This backup needs PHI key id(s) ${manifest.keys.idsInUse.join(", ") || "(none)"} and the blind-index ` +
        `key with fingerprint ${manifest.keys.blindIndexFingerprint ?? "(none recorded)"}.`,
    );
  }
  const { keyring } = await loadKeys(config);
  const sample = parsed.values.sample === undefined ? undefined : Number(parsed.values.sample);
  if (sample !== undefined && (!Number.isInteger(sample) || sample < 1 || sample > 10_000)) {
    throw new OpsError("--sample must be an integer from 1 to 10000");
  }
  const progress = stderrProgress();
  try {
    const result = await restoreBackup({
      backupDir,
      keyring,
      target: {
        url: parsed.values.target ?? config.DATABASE_DIRECT_URL ?? config.DATABASE_URL,
        pgliteDir: `${config.HAVEN_DATA_DIR}/pglite`,
      },
      progress,
      ...(sample ? { sampleSize: sample } : {}),
    });
    progress.finish();
    const v = result.verification;
    if (parsed.values.json) {
      console.log(JSON.stringify(v, null, 2));
      return 0;
    }
    const rows = v.rowCounts.reduce((a, r) => a + r.actual, 0);
    console.log(
      [
        `Restored ${backupDir} (taken ${result.manifest.createdAt}) in ${Math.round(result.durationMs)} ms and verified:`,
        `  row counts:    ${v.rowCounts.length} tables, ${rows} rows, all equal to the manifest`,
        `  audit chain:   head ${v.chainHead ? `${v.chainHead.seq}:${v.chainHead.hash}` : "none"} matches; ${v.chainLinksVerified} links verified`,
        `  decryption:    ${v.decrypted.reduce((a, d) => a + d.sampled, 0)} sampled values in ${v.decrypted.length} encrypted columns decrypt`,
        `  blind indexes: key ${v.blindIndexKey === "match" ? "matches" : "recorded"}`,
        `  append-only:   haven_app INSERT ${v.appendOnly.canInsert ? "yes" : "no"}, UPDATE ${v.appendOnly.canUpdate ? "yes" : "no"}, DELETE ${v.appendOnly.canDelete ? "yes" : "no"}; ${v.appendOnly.triggers} audit triggers`,
        `  migrations:    ${v.migrationsApplied} newer migration(s) applied`,
      ].join("\n"),
    );
    return 0;
  } finally {
    progress.finish();
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    const line = databaseOpenFailure(err, process.env.DATABASE_URL);
    if (line) {
      console.error(`restore: ${line}`);
    } else if (err instanceof ConfigError || err instanceof OpsError || err instanceof KeyError) {
      console.error(`restore: ${err.message}`);
    } else {
      console.error(`restore failed: ${err instanceof Error ? err.name : typeof err}`);
    }
    process.exitCode = 1;
  },
);
