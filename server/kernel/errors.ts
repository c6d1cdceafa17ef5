/**
 * Domain errors thrown by services. Services never import tRPC; `server/trpc.ts` maps these to
 * TRPCError codes in one place (`toTRPCError`). Messages are shown to callers, so they must never
 * contain PHI, SQL or internal details.
 */
export class DomainError extends Error {
  /** Machine-readable reason for clients (e.g. "mfa_required"). */
  readonly reason: string | undefined;
  constructor(message: string, reason?: string) {
    super(message);
    this.reason = reason;
  }
}
/** 404: the resource does not exist (or the caller may not learn that it does). */
export class NotFoundError extends DomainError {
  override name = "NotFoundError";
}
/** 403: the caller is known but not allowed. */
export class ForbiddenError extends DomainError {
  override name = "ForbiddenError";
}
/** 401: no valid credentials. */
export class UnauthorizedError extends DomainError {
  override name = "UnauthorizedError";
}
/** 409: the request conflicts with stored state (duplicate, overlap, stale version). */
export class ConflictError extends DomainError {
  override name = "ConflictError";
}
/** 400: input is well-typed but violates a rule. */
export class ValidationError extends DomainError {
  override name = "ValidationError";
}
/** 429: throttled; `retryAfterSeconds` tells the caller when to try again. */
export class TooManyRequestsError extends DomainError {
  override name = "TooManyRequestsError";
  constructor(
    message: string,
    readonly retryAfterSeconds: number,
  ) {
    super(message, "rate_limited");
  }
}

/**
 * 503: Haven runs in read-only emergency mode (HAVEN_READ_ONLY, ADR 0013) and the procedure would
 * change clinical, scheduling or account data. Nothing is wrong with the request: retry after
 * `retryAfterSeconds`, when the mode may have ended.
 */
export class ReadOnlyModeError extends DomainError {
  override name = "ReadOnlyModeError";
  /** Seconds a client should wait before retrying (also sent as `Retry-After`). */
  static readonly RETRY_AFTER_SECONDS = 60;
  readonly retryAfterSeconds = ReadOnlyModeError.RETRY_AFTER_SECONDS;
  constructor() {
    super(
      "Haven is in read-only emergency mode: records can be read, changes are refused; retry later",
      "read_only",
    );
  }
}

/** Postgres SQLSTATE of a driver error, looking through Drizzle's wrapper (`cause`). */
export function sqlState(err: unknown): string | undefined {
  let e: unknown = err;
  for (let depth = 0; depth < 4 && e && typeof e === "object"; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string" && /^[0-9A-Z]{5}$/.test(code)) return code;
    e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}

/**
 * Name of the constraint a Postgres error reports (`constraint_name` from postgres.js,
 * `constraint` from PGlite), looking through Drizzle's wrapper; undefined when none.
 */
export function constraintName(err: unknown): string | undefined {
  let e: unknown = err;
  for (let depth = 0; depth < 4 && e && typeof e === "object"; depth++) {
    const c = e as { constraint_name?: unknown; constraint?: unknown; cause?: unknown };
    const name = c.constraint_name ?? c.constraint;
    if (typeof name === "string" && name.length > 0) return name;
    e = c.cause;
  }
  return undefined;
}
