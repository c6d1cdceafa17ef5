import { adminBuilt } from "./admin-static.ts";
import { startHaven } from "./app.ts";
import { ConfigError, loadConfig } from "./config.ts";
import { DEMO_LOGINS } from "./demo/seed.ts";
import { startupFailureMessage } from "./startup-errors.ts";

/** ` (CODE)` of an unexpected failure, for the one-line report (never its message: may quote data). */
function codeOf(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === "string" ? ` (${code})` : "";
}

/** `npm start`: validate config, boot Haven, print how to reach it; SIGTERM/SIGINT drain and exit. */
const started = performance.now();
let config: ReturnType<typeof loadConfig>;
try {
  config = loadConfig();
} catch (err) {
  console.error(err instanceof ConfigError ? err.message : "Could not read configuration");
  process.exit(1);
}

try {
  const haven = await startHaven(config);
  const ms = Math.round(performance.now() - started);
  const mode =
    haven.database.kind === "pglite"
      ? `embedded PGlite at ${config.HAVEN_DATA_DIR}/pglite`
      : "PostgreSQL";
  const lines = [
    "",
    `Haven is ready in ${ms} ms (${mode}).`,
    `  API (tRPC):  ${haven.url}/trpc`,
    adminBuilt()
      ? `  Admin panel: ${haven.url}/admin/`
      : "  Admin panel: not built (run `npm run build:admin`, then restart)",
    `  Health:      ${haven.url}/healthz   Readiness: ${haven.url}/readyz   Metrics: ${haven.url}/metrics`,
  ];
  if (haven.keysGenerated) {
    lines.push(
      `  Keys:        generated new PHI and blind-index keys in ${haven.keyFile} (mode 0600).`,
      "               Back this file up: without it the stored PHI cannot be decrypted.",
    );
  }
  if (haven.demo.seeded && haven.demo.importSummary) {
    const s = haven.demo.importSummary;
    const created = Object.values(s.created).reduce((a, b) => a + b, 0);
    lines.push(
      `  Demo data:   imported ${s.files} Synthea bundles (${created} records) in ${Math.round(s.durationMs)} ms.`,
    );
  }
  if (haven.demo.seeded || (config.HAVEN_DEMO !== "false" && haven.database.kind === "pglite")) {
    lines.push("  Demo logins (synthetic data; see README 'Try it'):");
    for (const l of DEMO_LOGINS) {
      lines.push(
        `    ${l.role.padEnd(9)} ${l.email.padEnd(22)} ${l.password.padEnd(26)} ${l.note}`,
      );
      const totp = haven.demo.totp?.find((t) => t.role === l.role);
      if (totp)
        lines.push(
          `${" ".repeat(14)}TOTP secret ${totp.secret}  (code: npm run totp -- ${totp.secret})`,
        );
    }
    lines.push(
      "  Admin, staff and clinician need a TOTP code after the password (auth.mfa.verify).",
      `  Their secrets and otpauth:// URIs: ${config.HAVEN_DATA_DIR}/demo-logins.txt (mode 0600).`,
    );
  }
  console.log(lines.join("\n"));

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    console.log(`\n${signal} received: draining requests and closing the database…`);
    // The drain is bounded (HAVEN_SHUTDOWN_TIMEOUT_MS, then sockets are cut); this is the backstop
    // for a close step after it (database, mail) that hangs.
    const backstopMs = config.HAVEN_SHUTDOWN_TIMEOUT_MS + 2_000;
    setTimeout(() => {
      console.error(`Shutdown took longer than ${backstopMs / 1000} s; exiting.`);
      process.exit(1);
    }, backstopMs).unref();
    await haven.close();
    console.log("Stopped.");
    process.exit(0);
  };
  process.on("SIGTERM", () => void stop("SIGTERM"));
  process.on("SIGINT", () => void stop("SIGINT"));
} catch (err) {
  // One line naming the cause, never a stack; unexpected failures print their class only.
  const line = startupFailureMessage(err);
  console.error(
    line ?? `Haven failed to start: ${err instanceof Error ? err.name : "error"}${codeOf(err)}`,
  );
  process.exit(1);
}
