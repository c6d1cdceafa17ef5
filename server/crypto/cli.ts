import { parseArgs } from "node:util";
import cliProgress from "cli-progress";
import { type DatabaseHandle, openDatabase } from "../../db/client.ts";
import { parseCommandLine, pickCommand } from "../cli.ts";
import { ConfigError, loadConfig } from "../config.ts";
import { recordAudit, SYSTEM_ACTOR } from "../kernel/audit.ts";
import { databaseOpenFailure } from "../startup-errors.ts";
import { databaseHoldsEncryptedData } from "./canary.ts";
import { blindIndexFingerprint, storedBlindIndexFingerprint } from "./fingerprint.ts";
import { describeServer, liveServersLacking } from "./instances.ts";
import { FileKeyProvider } from "./key-file.ts";
import { KeyError } from "./keyring.ts";
import { loadKeys } from "./load.ts";
import { PhiCrypto } from "./phi.ts";
import { reindexBlindIndexes } from "./reindex.ts";
import { keyUsage, rotateKeys } from "./rotation.ts";

/**
 * `npm run keys -- <status|rotate|reindex|add-key>`: operate Haven's encryption keys against
 * DATABASE_URL (or the embedded database). Prints key ids, table/column names, counts and row ids
 * only — never key material or PHI. Exit codes: 0 done, 1 error, 3 incomplete (failures, or
 * interrupted: run the same command again to resume).
 */

const USAGE = `Usage: npm run keys -- <command> [options]

Commands:
  status     how many values each key id protects, per encrypted column; blind-index key state
  rotate     re-encrypt every value that is not under the active PHI key (online, in batches,
             resumable: after an interruption run it again)
  reindex    rebuild every blind index and FHIR source MAC under the current blind-index key,
             then record that key as the one the indexes use
  add-key    (embedded key file only) add a new random PHI key and make it the active one

Options:
  --batch-size <n>  rows per batch (default 500)
  --delay-ms <n>    pause between batches, to spare a busy database (default 0)
  --id <keyId>      add-key: the new key's id (default k<YYYYMMDD>)
  --json            print the summary as JSON
  -h, --help        show this help

Keys come from HAVEN_PHI_KEYS / HAVEN_BLIND_INDEX_KEY, else from HAVEN_DATA_DIR/keys.json.
To rotate with env keys: put the new key first in HAVEN_PHI_KEYS and keep the old ones after it
(HAVEN_PHI_KEYS=new:…,old:…), restart the servers, run \`npm run keys -- rotate\`, check
\`npm run keys -- status\`, then drop the old key. See docs/key-management.md.`;

/** A failure reported as one line. */
class CliError extends Error {}

function codeSuffix(err: unknown): string {
  let e: unknown = err;
  for (let depth = 0; depth < 5 && typeof e === "object" && e !== null; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string") return ` (${code})`;
    e = (e as { cause?: unknown }).cause;
  }
  return "";
}

function positiveInt(value: string | undefined, name: string, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || (name === "--batch-size" && n === 0) || n > 1_000_000) {
    throw new CliError(
      `${name} must be a whole number${name === "--batch-size" ? " ≥ 1" : " ≥ 0"}`,
    );
  }
  return n;
}

function progressReporter(label: string, json: boolean) {
  let bar: cliProgress.SingleBar | undefined;
  let lastLine = 0;
  return {
    update(done: number, total: number, detail: string) {
      if (process.stderr.isTTY && !json) {
        if (!bar) {
          bar = new cliProgress.SingleBar(
            {
              format: `${label} [{bar}] {percentage}% | {value}/{total} values | {detail} | ETA {eta_formatted}`,
              stream: process.stderr,
            },
            cliProgress.Presets.shades_classic,
          );
          bar.start(Math.max(total, 1), 0, { detail });
        }
        bar.update(done, { detail });
      } else if (Date.now() - lastLine > 1000 || done === total) {
        lastLine = Date.now();
        process.stderr.write(`${label}: ${done}/${total} (${detail})\n`);
      }
    },
    stop() {
      bar?.stop();
      bar = undefined;
    },
  };
}

async function main(argv: string[]): Promise<number> {
  const parsed = parseCommandLine(() => parseCli(argv), USAGE);
  if (typeof parsed === "number") return parsed;
  const command = pickCommand(
    parsed.positionals,
    ["status", "rotate", "reindex", "add-key"],
    USAGE,
  );
  if (typeof command === "number") return command;
  const json = parsed.values.json === true;
  const batchSize = positiveInt(parsed.values["batch-size"], "--batch-size", 500);
  const delayMs = positiveInt(parsed.values["delay-ms"], "--delay-ms", 0);

  const config = loadConfig();
  if (command === "add-key") {
    const keys = await loadKeys(config);
    if (!(keys.provider instanceof FileKeyProvider)) {
      throw new CliError(
        "add-key works on the embedded key file only; with env keys put the new key first in HAVEN_PHI_KEYS",
      );
    }
    const id = await keys.provider.addPhiKey(parsed.values.id);
    console.log(
      `Added PHI key "${id}" to ${keys.keyFile} and made it active; the older keys still decrypt.\n` +
        "Restart the servers, then run `npm run keys -- rotate`.",
    );
    return 0;
  }

  let handle: DatabaseHandle | undefined;
  const controller = new AbortController();
  const onSignal = () => {
    if (!controller.signal.aborted) {
      process.stderr.write(
        "\nStopping after the current batch… (run the command again to resume)\n",
      );
      controller.abort();
    }
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  const progress = progressReporter(command === "rotate" ? "Rotating" : "Reindexing", json);
  try {
    try {
      // The database first: on the embedded default this takes the data-directory lock, so a CLI
      // beside a running server stops here, before anything (even a key file) is written.
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
    const db = handle.db;
    const opened = handle;
    const keys = await loadKeys(config, {
      databaseHoldsEncryptedData: () => databaseHoldsEncryptedData(opened.db),
    });
    const keyring = keys.keyring;

    if (command === "status") {
      const usage = await keyUsage(db);
      const stored = await storedBlindIndexFingerprint(db);
      const mine = blindIndexFingerprint(keyring);
      const indexState = stored === null ? "not recorded" : stored === mine ? "matches" : "DIFFERS";
      if (json) {
        console.log(
          JSON.stringify(
            {
              activeKeyId: keyring.activeKeyId,
              loadedKeyIds: keyring.keyIds(),
              usage,
              blindIndexKey: indexState,
            },
            null,
            2,
          ),
        );
        return 0;
      }
      const perKey = new Map<string, number>();
      for (const u of usage) perKey.set(u.keyId, (perKey.get(u.keyId) ?? 0) + u.count);
      for (const id of keyring.keyIds()) if (!perKey.has(id)) perKey.set(id, 0);
      const lines = [`Active PHI key: ${keyring.activeKeyId}`, "", "Values per key:"];
      for (const [id, n] of [...perKey].sort()) {
        const flags = [
          id === keyring.activeKeyId ? "active" : null,
          keyring.keyIds().includes(id) ? null : "NOT LOADED: these values cannot be decrypted",
          id !== keyring.activeKeyId && n === 0 && keyring.keyIds().includes(id)
            ? "protects nothing: may be removed"
            : null,
        ].filter(Boolean);
        lines.push(
          `  ${id.padEnd(34)} ${String(n).padStart(9)}${flags.length ? `  (${flags.join("; ")})` : ""}`,
        );
      }
      lines.push("", "Per column:");
      for (const u of usage) {
        lines.push(
          `  ${`${u.table}.${u.column}`.padEnd(40)} ${u.keyId.padEnd(34)} ${String(u.count).padStart(9)}`,
        );
      }
      lines.push(
        "",
        indexState === "matches"
          ? "Blind-index key: matches the key the stored indexes were built with."
          : indexState === "DIFFERS"
            ? "Blind-index key: DIFFERS from the key the stored indexes were built with; run `npm run keys -- reindex`."
            : "Blind-index key: not recorded yet (a server records it at start, `keys reindex` when done).",
      );
      console.log(lines.join("\n"));
      return 0;
    }

    if (command === "rotate") {
      // Never re-encrypt under a key some live server lacks: it could no longer read the rows.
      const lacking = await liveServersLacking(db, keyring);
      if (lacking.length > 0) {
        throw new CliError(
          `refusing to rotate to key "${keyring.activeKeyId}": ${lacking.length} live server(s) do not hold it: ` +
            `${lacking.map(describeServer).join("; ")}. Restart them with the new key ` +
            `(HAVEN_PHI_KEYS=${keyring.activeKeyId}:…,<old keys>), then run rotate again.`,
        );
      }
      const summary = await rotateKeys(db, keyring, {
        batchSize,
        delayMs,
        signal: controller.signal,
        onProgress: (p) => progress.update(p.done, p.total, `${p.table}.${p.column}`),
      });
      progress.stop();
      await recordAudit(
        db,
        SYSTEM_ACTOR,
        {
          action: "keys.rotate",
          outcome: summary.remaining === 0 ? "allowed" : "error",
          details: {
            activeKeyId: summary.activeKeyId,
            reencrypted: summary.reencrypted,
            conflicts: summary.conflicts,
            failed: summary.failed,
            remaining: summary.remaining,
            aborted: summary.aborted,
          },
        },
        new Date(),
      );
      if (json) {
        console.log(JSON.stringify(summary, null, 2));
      } else {
        const lines = [
          `Rotation to key "${summary.activeKeyId}": ${summary.reencrypted} of ${summary.total} values re-encrypted in ${Math.round(summary.durationMs)} ms` +
            (summary.conflicts ? `, ${summary.conflicts} concurrent edits retried` : "") +
            ".",
        ];
        for (const c of summary.columns) {
          if (c.reencrypted || c.conflicts || c.failed) {
            lines.push(
              `  ${`${c.table}.${c.column}`.padEnd(40)} ${String(c.reencrypted).padStart(8)} re-encrypted` +
                (c.conflicts ? `, ${c.conflicts} retried` : "") +
                (c.failed ? `, ${c.failed} FAILED (ids: ${c.failedIds.join(", ")})` : ""),
            );
          }
        }
        if (summary.aborted)
          lines.push("Interrupted: run `npm run keys -- rotate` again to finish.");
        lines.push(
          summary.remaining === 0
            ? "Every encrypted value is now under the active key; older keys may be retired (`npm run keys -- status`)."
            : `${summary.remaining} values are still under older keys.`,
        );
        console.log(lines.join("\n"));
      }
      return summary.remaining === 0 ? 0 : 3;
    }

    // reindex
    const summary = await reindexBlindIndexes(db, new PhiCrypto(keyring), {
      batchSize,
      delayMs,
      signal: controller.signal,
      onProgress: (p) => progress.update(p.done, p.total, "blind indexes"),
    });
    progress.stop();
    await recordAudit(
      db,
      SYSTEM_ACTOR,
      {
        action: "keys.reindex",
        outcome: summary.complete ? "allowed" : "error",
        details: {
          scanned: summary.scanned,
          updated: summary.updated,
          conflicts: summary.conflicts,
          failed: summary.failed,
          complete: summary.complete,
        },
      },
      new Date(),
    );
    if (json) {
      console.log(JSON.stringify(summary, null, 2));
    } else {
      const lines = [
        `Reindex: ${summary.scanned} rows read, ${summary.updated} updated in ${Math.round(summary.durationMs)} ms.`,
      ];
      for (const r of summary.rules) {
        lines.push(
          `  ${`${r.table}.${r.source} → ${r.targets.join(", ")}`.padEnd(70)} ${String(r.updated).padStart(8)} updated` +
            (r.failed ? `, ${r.failed} FAILED (ids: ${r.failedIds.join(", ")})` : ""),
        );
      }
      lines.push(
        summary.complete
          ? "Done: the current blind-index key is recorded; servers with it may start."
          : "Incomplete: run `npm run keys -- reindex` again (failed rows need attention first).",
      );
      console.log(lines.join("\n"));
    }
    return summary.complete ? 0 : 3;
  } finally {
    progress.stop();
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
    await handle?.close();
  }
}

function parseCli(argv: string[]) {
  return parseArgs({
    args: argv,
    allowPositionals: true,
    strict: true,
    options: {
      help: { type: "boolean", short: "h" },
      json: { type: "boolean" },
      "batch-size": { type: "string" },
      "delay-ms": { type: "string" },
      id: { type: "string" },
    },
  });
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    if (err instanceof ConfigError || err instanceof KeyError || err instanceof CliError) {
      console.error(`keys: ${err.message}`);
    } else {
      const name = err instanceof Error ? err.name : typeof err;
      console.error(`keys failed: ${name}${codeSuffix(err)}`);
    }
    process.exitCode = 1;
  },
);
