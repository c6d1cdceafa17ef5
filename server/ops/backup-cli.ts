import { parseArgs } from "node:util";
import { type DatabaseHandle, openDatabase } from "../../db/client.ts";
import { parseCommandLine } from "../cli.ts";
import { ConfigError, loadConfig } from "../config.ts";
import { databaseOpenFailure } from "../startup-errors.ts";
import { OpsError, takeBackup } from "./backup.ts";
import { stderrProgress } from "./progress.ts";

/**
 * `npm run backup -- [--out <dir>] [--json]`: back up DATABASE_URL (pg_dump -Fc of one snapshot)
 * or the embedded database (PGlite data directory, through the normal open path) into
 * `<out>/haven-<UTC time>/` with a manifest. Prints ids, counts and hashes only. Exit 0 done, 1 error.
 */
const USAGE = `Usage: npm run backup -- [options]

Backs up DATABASE_URL, or the embedded database under HAVEN_DATA_DIR when it is unset, into
<out>/haven-<UTC time>/: the payload (pg_dump custom format, or the PGlite data directory) and
manifest.json (migration level, PHI key ids, blind-index key fingerprint, row counts, audit chain
head, SHA-256). Keys are never written: escrow them separately (docs/operations.md).

Options:
  --out <dir>   parent directory for the backup (default ./backups)
  --json        print the manifest as JSON
  -h, --help    show this help`;

async function main(argv: string[]): Promise<number> {
  const parsed = parseCommandLine(
    () =>
      parseArgs({
        args: argv,
        strict: true,
        options: {
          help: { type: "boolean", short: "h" },
          json: { type: "boolean" },
          out: { type: "string" },
        },
      }),
    USAGE,
  );
  if (typeof parsed === "number") return parsed;
  const config = loadConfig();
  const progress = stderrProgress();
  let handle: DatabaseHandle | undefined;
  try {
    handle = await openDatabase({
      url: config.DATABASE_URL,
      directUrl: config.DATABASE_DIRECT_URL,
      pgliteDir: `${config.HAVEN_DATA_DIR}/pglite`,
      maxConnections: 2,
    });
    const result = await takeBackup({
      handle,
      url: config.DATABASE_DIRECT_URL ?? config.DATABASE_URL,
      outDir: parsed.values.out ?? "backups",
      progress,
    });
    progress.finish();
    const m = result.manifest;
    if (parsed.values.json) {
      console.log(JSON.stringify({ dir: result.dir, ...m }, null, 2));
      return 0;
    }
    const rows = Object.values(m.rowCounts).reduce((a, b) => a + b, 0);
    console.log(
      [
        `Backup written to ${result.dir} in ${Math.round(result.durationMs)} ms.`,
        `  source:        ${m.source.kind} ${m.source.name} (PostgreSQL ${m.source.serverVersion})`,
        `  payload:       ${m.payload.file}, ${m.payload.bytes} bytes, sha256 ${m.payload.sha256}`,
        `  schema:        ${m.migrations.length} migrations, newest ${m.migrations.at(-1)?.tag ?? "none"}`,
        `  rows:          ${rows} in ${Object.keys(m.rowCounts).length} tables (patients ${m.rowCounts.patients ?? 0}, appointments ${m.rowCounts.appointments ?? 0}, audit_events ${m.rowCounts.audit_events ?? 0})`,
        `  audit head:    ${m.auditChainHead ? `${m.auditChainHead.seq}:${m.auditChainHead.hash}` : "none"}`,
        `  keys needed:   PHI key ids ${m.keys.idsInUse.join(", ") || "(none in use)"}; blind-index fingerprint ${m.keys.blindIndexFingerprint ?? "(none)"}`,
        "  The backup holds ciphertext only; it restores only with those keys from escrow.",
      ].join("\n"),
    );
    return 0;
  } finally {
    progress.finish();
    await handle?.close();
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    const line = databaseOpenFailure(err, process.env.DATABASE_URL);
    if (line) console.error(`backup: ${line}`);
    else if (err instanceof ConfigError || err instanceof OpsError)
      console.error(`backup: ${err.message}`);
    else
      console.error(`backup failed: ${err instanceof Error ? err.name : typeof err}${codeOf(err)}`);
    process.exitCode = 1;
  },
);

function codeOf(err: unknown): string {
  const code =
    (err as { code?: unknown; cause?: { code?: unknown } })?.code ??
    (err as { cause?: { code?: unknown } })?.cause?.code;
  return typeof code === "string" ? ` (${code})` : "";
}
