import { initTRPC, TRPCError } from "@trpc/server";
import type { TRPC_ERROR_CODE_KEY } from "@trpc/server/rpc";
import superjson from "superjson";
import type { Context } from "./context.ts";
import { DecryptionError } from "./crypto/envelope.ts";
import { auditDenial } from "./kernel/audit.ts";
import {
  ConflictError,
  DomainError,
  ForbiddenError,
  NotFoundError,
  sqlState,
  TooManyRequestsError,
  UnauthorizedError,
  ValidationError,
} from "./kernel/errors.ts";
import { type ApiKeyScope, isPrivileged, type Role } from "./kernel/roles.ts";
import {
  DatabaseUnavailableError,
  isDatabaseUnavailable,
  UNAVAILABLE_RETRY_AFTER_SECONDS,
} from "./unavailable.ts";

/**
 * Who may call a procedure. Every procedure declares it (`.meta({ roles, phi })`); the one access
 * middleware enforces it, and `assertEveryProcedureDeclaresAccess` fails startup when one doesn't.
 * `"public"` means no session needed (login, health).
 */
export interface Meta {
  roles: "public" | readonly Role[];
  /**
   * Does the procedure read or write PHI? Must be stated explicitly (startup guard). On PHI
   * procedures a clinician/staff/admin session (or any account with an authenticator) that has not
   * passed MFA gets FORBIDDEN with `data.reason = "mfa_required"` (45 CFR 164.312(d), ASVS 2.7/4.3.1).
   */
  phi: boolean;
  /** Require MFA (as for PHI) although the procedure touches no PHI: account and key administration. */
  mfa?: boolean;
  /**
   * The API-key scope a `service` caller needs. Procedures whose roles include `service` must declare
   * one (startup guard); an API key may call only procedures whose scope it holds (deny by default).
   */
  scope?: ApiKeyScope;
}

/** One field-level validation problem, as returned in `error.data.issues`. */
export interface FieldIssue {
  path: string;
  message: string;
}

interface RawIssue {
  path?: PropertyKey[];
  message?: string;
  code?: string;
  errors?: RawIssue[][];
}

function flattenIssues(issues: RawIssue[], prefix: PropertyKey[], out: FieldIssue[]): void {
  for (const i of issues) {
    const path = [...prefix, ...(i.path ?? [])];
    out.push({
      path: path.map((p) => String(p)).join(".") || "(root)",
      message: String(i.message ?? "invalid"),
    });
    // A union failure hides its branches' field errors; surface them so callers see the fields.
    if (i.code === "invalid_union" && Array.isArray(i.errors)) {
      for (const branch of i.errors) flattenIssues(branch, path, out);
    }
  }
}

function fieldIssues(cause: unknown): FieldIssue[] | undefined {
  const issues = (cause as { issues?: unknown } | undefined)?.issues;
  if (!Array.isArray(issues)) return undefined;
  const out: FieldIssue[] = [];
  flattenIssues(issues as RawIssue[], [], out);
  const seen = new Set<string>();
  return out
    .filter((i) => {
      const k = `${i.path}\u0000${i.message}`;
      if (seen.has(k)) return false;
      seen.add(k);
      return true;
    })
    .slice(0, 50);
}

const t = initTRPC
  .context<Context>()
  .meta<Meta>()
  .create({
    transformer: superjson,
    /**
     * Never a stack trace, SQL or internal message in a response: INTERNAL_SERVER_ERROR becomes a
     * generic text with the request id (ARCHITECTURE §3, OWASP ASVS 7.4.1).
     */
    errorFormatter({ shape, error, ctx }) {
      const requestId = ctx?.requestId ?? null;
      const issues = error.code === "BAD_REQUEST" ? fieldIssues(error.cause) : undefined;
      const cause = error.cause;
      let message = shape.message;
      if (error.code === "INTERNAL_SERVER_ERROR") {
        message = `Internal error. Quote request id ${requestId ?? "unknown"} when reporting it.`;
      } else if (issues) {
        message = `Invalid input: ${issues
          .slice(0, 5)
          .map((i) => `${i.path}: ${i.message}`)
          .join("; ")}`;
      }
      return {
        message,
        code: shape.code,
        data: {
          code: shape.data.code,
          httpStatus: shape.data.httpStatus,
          path: shape.data.path,
          requestId,
          issues: issues ?? null,
          reason: cause instanceof DomainError ? (cause.reason ?? null) : null,
          retryAfterSeconds:
            cause instanceof TooManyRequestsError
              ? cause.retryAfterSeconds
              : error.code === "SERVICE_UNAVAILABLE"
                ? UNAVAILABLE_RETRY_AFTER_SECONDS
                : null,
        },
      };
    },
  });

const DOMAIN_CODES: [new (...args: never[]) => DomainError, TRPC_ERROR_CODE_KEY][] = [
  [NotFoundError, "NOT_FOUND"],
  [ForbiddenError, "FORBIDDEN"],
  [UnauthorizedError, "UNAUTHORIZED"],
  [ConflictError, "CONFLICT"],
  [ValidationError, "BAD_REQUEST"],
  [TooManyRequestsError, "TOO_MANY_REQUESTS"],
];

/**
 * The one place domain and database errors become tRPC errors: domain errors keep their message;
 * unique (23505) and exclusion (23P01) violations become CONFLICT; a bad text representation
 * (22P02) or out-of-range value (22003, 22007, 22008) becomes BAD_REQUEST; a database that cannot
 * be reached or dropped the connection becomes SERVICE_UNAVAILABLE (HTTP 503 + Retry-After, see
 * `unavailable.ts`); anything else stays INTERNAL_SERVER_ERROR (message replaced by the formatter).
 */
export function toTRPCError(err: unknown): TRPCError {
  if (err instanceof TRPCError) {
    if (err.code !== "INTERNAL_SERVER_ERROR" || !err.cause) return err;
    return toTRPCError(err.cause);
  }
  // Before the domain errors: a fail-closed refusal caused by an outage (the login throttle's
  // ThrottleUnavailableError) is an outage too, answered with the outage's short Retry-After.
  if (isDatabaseUnavailable(err)) {
    const unavailable = new DatabaseUnavailableError(err);
    return new TRPCError({
      code: "SERVICE_UNAVAILABLE",
      message: unavailable.message,
      cause: unavailable,
    });
  }
  for (const [cls, code] of DOMAIN_CODES) {
    if (err instanceof cls) return new TRPCError({ code, message: err.message, cause: err });
  }
  if (err instanceof DecryptionError) {
    return new TRPCError({
      code: "INTERNAL_SERVER_ERROR",
      message: "decryption failed",
      cause: err,
    });
  }
  switch (sqlState(err)) {
    case "23505":
    case "23P01":
      return new TRPCError({
        code: "CONFLICT",
        message: "This conflicts with an existing record",
        cause: err as Error,
      });
    case "22P02":
    case "22003":
    case "22007":
    case "22008":
    case "22001":
      return new TRPCError({
        code: "BAD_REQUEST",
        message: "A value is out of range or malformed",
        cause: err as Error,
      });
    default:
      return new TRPCError({
        code: "INTERNAL_SERVER_ERROR",
        cause: err instanceof Error ? err : undefined,
      });
  }
}

/** Count and time every call for /metrics (labels: procedure path, type, outcome code; no PHI). */
const measure = t.middleware(async ({ ctx, path, type, next }) => {
  const started = performance.now();
  const result = await next();
  ctx.metrics?.observe(
    path,
    type,
    result.ok ? "OK" : result.error.code,
    (performance.now() - started) / 1000,
  );
  return result;
});

const mapErrors = t.middleware(async ({ next }) => {
  const result = await next();
  if (!result.ok) throw toTRPCError(result.error);
  return result;
});

/** The single access middleware: reads `meta.roles`, deny by default. */
const enforceAccess = t.middleware(async ({ ctx, meta, path, next }) => {
  const roles = meta?.roles;
  if (!roles) {
    throw new TRPCError({ code: "FORBIDDEN", message: "This procedure declares no access rule" });
  }
  if (roles === "public") return next();
  if (!ctx.actor) {
    throw new TRPCError({ code: "UNAUTHORIZED", message: "Sign in required" });
  }
  const deny = <E extends Error>(rule: string, error: E): Promise<E> =>
    auditDenial(
      ctx.deps.db,
      ctx.auditActor,
      { action: "access.denied", resourceType: "Procedure", resourceId: path, details: { rule } },
      error,
      ctx.deps.now(),
    );
  if (!roles.includes(ctx.actor.role)) {
    throw await deny(
      "role",
      new TRPCError({ code: "FORBIDDEN", message: "Your role may not call this procedure" }),
    );
  }
  const scope = meta?.scope;
  if (ctx.actor.apiKeyId && (!scope || !(ctx.actor.scopes ?? []).includes(scope))) {
    throw await deny(
      "api_key_scope",
      new ForbiddenError("This API key's scopes do not cover this procedure", "api_key_scope"),
    );
  }
  // Deny by default: a procedure that did not say `phi: false` is treated as touching PHI.
  const needsMfa = meta?.phi !== false || meta?.mfa === true;
  if (
    needsMfa &&
    !ctx.actor.apiKeyId &&
    (isPrivileged(ctx.actor.role) || ctx.mfaEnrolled) &&
    !ctx.mfaVerified
  ) {
    throw await deny(
      "mfa",
      new ForbiddenError(
        "Complete multi-factor authentication (auth.mfa.verify) before this procedure",
        "mfa_required",
      ),
    );
  }
  return next();
});

export const router = t.router;
export const createCallerFactory = t.createCallerFactory;
export const middleware = t.middleware;

/** Base for procedures open to anyone (still declares `roles: "public"`). */
export const publicProcedure = t.procedure.use(measure).use(mapErrors).use(enforceAccess);

/** Base for procedures that need a signed-in caller: `ctx.actor` is non-null inside. */
export const protectedProcedure = publicProcedure.use(({ ctx, next }) => {
  if (!ctx.actor) throw new TRPCError({ code: "UNAUTHORIZED", message: "Sign in required" });
  return next({ ctx: { ...ctx, actor: ctx.actor } });
});

/**
 * Startup guard: every procedure in the router must declare `meta.roles` (non-empty or "public")
 * and `meta.phi` (true or false, explicitly), and one callable by `service` must declare
 * `meta.scope`. @throws Error naming each offending procedure path
 */
export function assertEveryProcedureDeclaresAccess(appRouter: {
  _def: { procedures: object };
}): void {
  const missing: string[] = [];
  const noPhi: string[] = [];
  const noScope: string[] = [];
  for (const [path, proc] of Object.entries(
    appRouter._def.procedures as Record<string, { _def: { meta?: Partial<Meta> } }>,
  )) {
    const meta = proc._def.meta;
    const roles = meta?.roles;
    if (roles !== "public" && (!Array.isArray(roles) || roles.length === 0)) missing.push(path);
    if (typeof meta?.phi !== "boolean") noPhi.push(path);
    if (Array.isArray(roles) && roles.includes("service") && !meta?.scope) noScope.push(path);
  }
  if (missing.length > 0) {
    throw new Error(`Procedures without meta({ roles }): ${missing.join(", ")}`);
  }
  if (noPhi.length > 0) {
    throw new Error(
      `Procedures without an explicit meta({ phi: true | false }): ${noPhi.join(", ")}`,
    );
  }
  if (noScope.length > 0) {
    throw new Error(
      `Procedures callable by "service" without meta({ scope }): ${noScope.join(", ")}`,
    );
  }
}
