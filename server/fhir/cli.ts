import { parseArgs } from "node:util";
import cliProgress from "cli-progress";
import { type DatabaseHandle, openDatabase } from "../../db/client.ts";
import { parseCommandLine } from "../cli.ts";
import { ConfigError, loadConfig } from "../config.ts";
import { assertKeysDecryptData, databaseHoldsEncryptedData } from "../crypto/canary.ts";
import { KeyError } from "../crypto/keyring.ts";
import { loadKeys } from "../crypto/load.ts";
import { PhiCrypto } from "../crypto/phi.ts";
import { operatorName } from "../ops/backup.ts";
import { databaseOpenFailure } from "../startup-errors.ts";
import { FhirImportError } from "./errors.ts";
import { importFiles } from "./importer.ts";
import { describeResult, formatSummary } from "./summary.ts";

/**
 * `npm run import -- <file-or-dir> [more…]`: import FHIR R4 bundles into the configured database.
 * Prints per-file progress and a per-type summary; exits 1 with a one-line reason (no stack, no
 * PHI) on failure. Only counts and the operator's own paths are printed.
 */

const USAGE = `Usage: npm run import -- [options] <file-or-directory> [more…]

Imports FHIR R4 Bundles (batch, transaction or collection). Directories are searched
recursively for *.json; bundles without a Patient (organizations, practitioners) go first.
Each bundle is one transaction; re-importing unchanged input writes nothing.

Options:
  --dry-run   import every bundle, then roll it back (validates the files)
  -h, --help  show this help

Environment: DATABASE_URL (unset: embedded PGlite under HAVEN_DATA_DIR), HAVEN_DATA_DIR,
HAVEN_PHI_KEYS, HAVEN_BLIND_INDEX_KEY, HAVEN_MIGRATE_ON_START.`;

async function main(argv: string[]): Promise<number> {
  const parsed = parseCommandLine(() => parseCli(argv), USAGE);
  if (typeof parsed === "number") return parsed;
  if (parsed.positionals.length === 0) {
    console.error(`No input given.\n\n${USAGE}`);
    return 1;
  }
  const dryRun = parsed.values["dry-run"] === true;

  const config = loadConfig();
  let handle: DatabaseHandle | undefined;
  let bar: cliProgress.SingleBar | undefined;
  try {
    try {
      handle = await openDatabase({
        url: config.DATABASE_URL,
        pgliteDir: `${config.HAVEN_DATA_DIR}/pglite`,
      });
      if (config.HAVEN_MIGRATE_ON_START) await handle.migrate();
    } catch (err) {
      throw new CliError(
        databaseOpenFailure(err, config.DATABASE_URL) ??
          `cannot open or migrate the database${codeSuffix(err)}`,
      );
    }
    // Keys after the database: the lock and the "no fresh keys for existing ciphertext" rule first.
    const opened = handle;
    const keys = await loadKeys(config, {
      databaseHoldsEncryptedData: () => databaseHoldsEncryptedData(opened.db),
    });
    if (keys.generated) {
      console.log(
        `Generated new encryption keys in ${keys.keyFile} (keep this file safe and backed up).`,
      );
    }
    await assertKeysDecryptData(handle.db, keys.keyring);
    const deps = { db: handle.db, crypto: new PhiCrypto(keys.keyring), now: () => new Date() };
    const summary = await importFiles(deps, parsed.positionals, {
      dryRun,
      operator: operatorName(),
      onProgress: (done, total) => {
        if (!bar && total > 3 && process.stdout.isTTY) {
          bar = new cliProgress.SingleBar(
            {
              format: "Importing [{bar}] {value}/{total} files | {duration_formatted}",
              stream: process.stdout,
            },
            cliProgress.Presets.shades_classic,
          );
          bar.start(total, 0);
        }
        bar?.update(done);
      },
      onFile: (file, result) => {
        if (!(process.stdout.isTTY && bar)) console.log(`${file}: ${describeResult(result)}`);
      },
    });
    bar?.stop();
    bar = undefined;
    console.log(`\n${formatSummary(summary, dryRun)}`);
    return 0;
  } finally {
    bar?.stop();
    await handle?.close();
  }
}

/** A failure the CLI reports as one line. */
class CliError extends Error {}

/** ` (ECONNREFUSED)`: the first error code along the cause chain, never a message (may quote data). */
function codeSuffix(err: unknown): string {
  let e: unknown = err;
  for (let depth = 0; depth < 5 && typeof e === "object" && e !== null; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string") return ` (${code})`;
    e = (e as { cause?: unknown }).cause;
  }
  return "";
}

function parseCli(argv: string[]) {
  return parseArgs({
    args: argv,
    allowPositionals: true,
    strict: true,
    options: {
      help: { type: "boolean", short: "h" },
      "dry-run": { type: "boolean" },
    },
  });
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    if (err instanceof FhirImportError) {
      console.error(`Import failed${err.file ? ` in ${err.file}` : ""}: ${err.message}`);
    } else if (err instanceof ConfigError || err instanceof KeyError) {
      console.error(err.message);
    } else if (err instanceof CliError) {
      console.error(`Import failed: ${err.message}`);
    } else {
      // Anything else may quote data (driver messages do): name the error type and code only.
      const name = err instanceof Error ? err.name : typeof err;
      console.error(`Import failed: ${name}${codeSuffix(err)}`);
    }
    process.exitCode = 1;
  },
);
