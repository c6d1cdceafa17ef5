/**
 * Telling "the database is down" apart from every other failure, so callers get 503 + Retry-After
 * (retry later, nothing is wrong with the request) instead of 500 (BRIEF: 503 when a dependency is
 * down; HIPAA 45 CFR 164.308(a)(7)(ii)(C) emergency-mode operation starts with failing cleanly).
 */

/** Seconds a client should wait before retrying while the database is unavailable. */
export const UNAVAILABLE_RETRY_AFTER_SECONDS = 2;

/** Socket-level and postgres.js connection error codes that mean "no usable database connection". */
const CONNECTION_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ETIMEDOUT",
  "EPIPE",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENOTFOUND",
  "EAI_AGAIN",
  "CONNECT_TIMEOUT",
  "CONNECTION_CLOSED",
  "CONNECTION_DESTROYED",
  "CONNECTION_ENDED",
]);

/**
 * SQLSTATEs of a server that is shutting down, starting up, out of connection slots or gone:
 * class 08 (connection exception), 57P01–57P03 (admin/crash shutdown, cannot connect now),
 * 53300 (too many connections), and PgBouncer's 08P01 answers when its server is down.
 */
function isUnavailableState(code: string): boolean {
  return (
    code.startsWith("08") ||
    code === "57P01" ||
    code === "57P02" ||
    code === "57P03" ||
    code === "53300"
  );
}

/**
 * True when `err` (or a cause up to 5 levels down: Drizzle wraps driver errors) says the database
 * could not be reached or dropped the connection. Never true for a query's own error (constraint,
 * syntax, permission).
 */
export function isDatabaseUnavailable(err: unknown): boolean {
  let e: unknown = err;
  for (let depth = 0; depth < 6 && e && typeof e === "object"; depth++) {
    if (e instanceof DatabaseUnavailableError) return true;
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string" && (CONNECTION_CODES.has(code) || isUnavailableState(code))) {
      return true;
    }
    e = (e as { cause?: unknown }).cause;
  }
  return false;
}

/** Thrown (or mapped to) when the database is unreachable: HTTP 503 with `Retry-After`. */
export class DatabaseUnavailableError extends Error {
  override name = "DatabaseUnavailableError";
  readonly retryAfterSeconds = UNAVAILABLE_RETRY_AFTER_SECONDS;
  constructor(cause?: unknown) {
    super("The database is temporarily unavailable; retry shortly", { cause });
  }
}
