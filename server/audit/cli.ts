import { parseArgs } from "node:util";
import { type DatabaseHandle, openDatabase } from "../../db/client.ts";
import { parseCommandLine, pickCommand } from "../cli.ts";
import { ConfigError, loadConfig } from "../config.ts";
import { recordAudit, SYSTEM_ACTOR } from "../kernel/audit.ts";
import { databaseOpenFailure } from "../startup-errors.ts";
import { type ChainHead, sealAuditChain, verifyAuditChain } from "./chain.ts";

/**
 * `npm run audit -- <verify|seal>`: check or extend the audit hash chain of DATABASE_URL (or the
 * embedded database). Prints sequence numbers, event ids, counts and hashes only — audit rows hold
 * no PHI and none is printed. Exit codes: 0 intact, 1 error, 2 the chain is broken.
 */

const USAGE = `Usage: npm run audit -- <command> [options]

Commands:
  verify     seal pending events, then recompute the whole hash chain and report the first
             broken link (changed or deleted event, deleted or altered link)
  seal       append chain links for every event not sealed yet (the server does this on its own
             every HAVEN_AUDIT_SEAL_INTERVAL_MS)

Options:
  --anchor <seq>:<hash>  verify: a chain head recorded earlier (the server logs one per seal,
                         "audit chain sealed"); a rewritten or truncated chain no longer holds it
  --no-seal              verify: do not seal first (read-only)
  --json                 print the report as JSON
  -h, --help             show this help`;

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

function parseAnchor(value: string | undefined): ChainHead | undefined {
  if (value === undefined) return undefined;
  const m = /^(\d{1,15}):([0-9a-f]{64})$/.exec(value.trim());
  if (!m) throw new CliError("--anchor must look like <seq>:<64 hex characters>");
  return { seq: Number(m[1]), hash: m[2] as string };
}

async function main(argv: string[]): Promise<number> {
  const parsed = parseCommandLine(() => parseCli(argv), USAGE);
  if (typeof parsed === "number") return parsed;
  const command = pickCommand(parsed.positionals, ["verify", "seal"], USAGE);
  if (typeof command === "number") return command;
  const json = parsed.values.json === true;
  const anchor = parseAnchor(parsed.values.anchor);
  const config = loadConfig();
  let handle: DatabaseHandle | undefined;
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
    const db = handle.db;
    if (command === "seal" || parsed.values["no-seal"] !== true) {
      const sealed = await sealAuditChain(db, { full: true });
      if (command === "seal") {
        const text = sealed.busy
          ? "Another sealer is running; nothing done."
          : `Sealed ${sealed.sealed} events.${sealed.head ? ` Chain head: ${sealed.head.seq}:${sealed.head.hash}` : ""}`;
        console.log(json ? JSON.stringify(sealed, null, 2) : text);
        return 0;
      }
    }
    const report = await verifyAuditChain(db, anchor ? { anchor } : {});
    await recordAudit(
      db,
      SYSTEM_ACTOR,
      {
        action: "audit.verify",
        outcome: report.ok ? "allowed" : "error",
        details: {
          links: report.links,
          problems: report.problemCount,
          firstBrokenSeq: report.firstBroken?.seq ?? null,
          via: "cli",
        },
      },
      new Date(),
    );
    if (json) {
      console.log(JSON.stringify(report, null, 2));
    } else {
      const lines = [
        report.ok
          ? `Audit chain intact: ${report.links} links verified in ${Math.round(report.durationMs)} ms.`
          : `Audit chain BROKEN: ${report.problemCount} problem(s) in ${report.links} links.`,
      ];
      if (report.head) lines.push(`Chain head: ${report.head.seq}:${report.head.hash}`);
      if (report.firstBroken) {
        const f = report.firstBroken;
        lines.push(
          `First broken link: seq ${f.seq} (${f.kind}${f.eventId ? `, event ${f.eventId}` : ""})`,
        );
      }
      for (const p of report.problems) {
        lines.push(`  seq ${String(p.seq).padStart(8)}  ${p.kind.padEnd(16)} ${p.eventId ?? ""}`);
      }
      if (report.problemCount > report.problems.length) {
        lines.push(`  … and ${report.problemCount - report.problems.length} more`);
      }
      if (report.unsealed > 0)
        lines.push(`${report.unsealed} events written meanwhile are not sealed yet.`);
      console.log(lines.join("\n"));
    }
    return report.ok ? 0 : 2;
  } finally {
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
      anchor: { type: "string" },
      "no-seal": { type: "boolean" },
    },
  });
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    if (err instanceof ConfigError || err instanceof CliError) {
      console.error(`audit: ${err.message}`);
    } else {
      const name = err instanceof Error ? err.name : typeof err;
      console.error(`audit failed: ${name}${codeSuffix(err)}`);
    }
    process.exitCode = 1;
  },
);
