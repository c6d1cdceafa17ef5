import { createServer } from "node:net";
import { DataDirLockedError } from "../db/lock.ts";
import { ConfigError } from "./config.ts";
import { KeyError } from "./crypto/keyring.ts";

/**
 * Startup failures an operator can fix, each described in ONE line naming the cause:
 * PostgreSQL unreachable / database missing / authentication refused, the port in use, the data
 * directory held by another process. Never a stack, never a password.
 */

/** A startup failure whose message is the whole, one-line explanation. */
export class StartupError extends Error {
  override name = "StartupError";
}

function errorCode(err: unknown): string | undefined {
  let e: unknown = err;
  for (let depth = 0; depth < 5 && typeof e === "object" && e !== null; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string") return code;
    e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}

/**
 * One line for a failure to reach or enter PostgreSQL at `url`, or null when `err` is something
 * else. Names host:port, database and user; never the password.
 * SQLSTATE codes: 3D000 invalid_catalog_name, 28P01 invalid_password, 28000
 * invalid_authorization_specification (PostgreSQL Appendix A).
 */
export function describeDatabaseError(err: unknown, url: string): string | null {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return null;
  }
  const where = `${u.hostname || "localhost"}:${u.port || "5432"}`;
  const database =
    decodeURIComponent(u.pathname.replace(/^\//, "")) ||
    decodeURIComponent(u.username) ||
    "postgres";
  const user = decodeURIComponent(u.username) || "(default user)";
  const code = errorCode(err);
  switch (code) {
    case "ECONNREFUSED":
      return `PostgreSQL is unreachable at ${where}: connection refused (is it running? check DATABASE_URL).`;
    case "ENOTFOUND":
    case "EAI_AGAIN":
      return `PostgreSQL is unreachable at ${where}: host name not found (check DATABASE_URL).`;
    case "CONNECT_TIMEOUT":
    case "ETIMEDOUT":
    case "EHOSTUNREACH":
    case "ENETUNREACH":
      return `PostgreSQL is unreachable at ${where}: no answer in time (check DATABASE_URL and the network).`;
    case "3D000":
      return `PostgreSQL at ${where} has no database "${database}" (create it: createdb ${database}; or fix DATABASE_URL).`;
    case "28P01":
    case "28000":
      return `PostgreSQL at ${where} refused authentication for user "${user}" on database "${database}" (check the user and password in DATABASE_URL, and pg_hba.conf).`;
    default:
      return null;
  }
}

/**
 * Fail fast when HOST:PORT cannot be bound (before migrations or seeding). PORT 0 always passes.
 * The probe is closed again at once; the real listen still reports a race with {@link describeListenError}.
 * @throws StartupError naming the port
 */
export async function assertPortFree(host: string, port: number): Promise<void> {
  if (port === 0) return;
  await new Promise<void>((resolve, reject) => {
    const probe = createServer();
    probe.once("error", (err) => {
      reject(
        new StartupError(
          describeListenError(err, host, port) ?? `cannot listen on ${host}:${port}`,
        ),
      );
    });
    probe.listen({ host, port, exclusive: true }, () => probe.close(() => resolve()));
  });
}

/** One line for a listen failure (EADDRINUSE, EACCES, EADDRNOTAVAIL), or null. */
export function describeListenError(err: unknown, host: string, port: number): string | null {
  switch (errorCode(err)) {
    case "EADDRINUSE":
      return `Port ${port} on ${host} is already in use (another Haven, or another program): stop it or set PORT to a free port.`;
    case "EACCES":
      return `Not allowed to listen on port ${port} on ${host}: use a port above 1023 (PORT).`;
    case "EADDRNOTAVAIL":
      return `Cannot listen on ${host}: no such local address (check HOST).`;
    default:
      return null;
  }
}

/**
 * The one-line message for a failure `npm start` or a CLI should print without a stack, or null
 * when the failure is unexpected (the caller then prints its class name only).
 */
export function startupFailureMessage(err: unknown): string | null {
  if (
    err instanceof StartupError ||
    err instanceof DataDirLockedError ||
    err instanceof ConfigError ||
    err instanceof KeyError
  ) {
    return err.message;
  }
  return null;
}

/**
 * For a CLI whose database open (or first query) failed: the one-line cause, or null when the
 * failure is not one of the known startup causes.
 */
export function databaseOpenFailure(err: unknown, url: string | undefined): string | null {
  return startupFailureMessage(err) ?? (url ? describeDatabaseError(err, url) : null);
}
