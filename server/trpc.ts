import { initTRPC, TRPCError } from "@trpc/server";
import { getHTTPStatusCodeFromError } from "@trpc/server/http";
import { type TRPC_ERROR_CODE_KEY, TRPC_ERROR_CODES_BY_KEY } from "@trpc/server/rpc";
import { fastSuperjson } from "../lib/fast-superjson.ts";
import type { BoundaryContext, ErrorData, ErrorShape, FieldIssue, Meta } from "./api-boundary.ts";
import { isServerContext } from "./context.ts";
import { DecryptionError } from "./crypto/envelope.ts";
import { auditDenial } from "./kernel/audit.ts";
import {
  ConflictError,
  DomainError,
  ForbiddenError,
  NotFoundError,
  ReadOnlyModeError,
  sqlState,
  TooManyRequestsError,
  UnauthorizedError,
  ValidationError,
} from "./kernel/errors.ts";
import { assertSafeInput } from "./kernel/input-guard.ts";
import { isPrivileged } from "./kernel/roles.ts";
import {
  DatabaseUnavailableError,
  isDatabaseUnavailable,
  UNAVAILABLE_RETRY_AFTER_SECONDS,
} from "./kernel/unavailable.ts";

export type { FieldIssue, Meta };

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
  // The router's type carries only the boundary context (ADR 0008); `restoreContext` below gives
  // every handler the full `Context`.
  .context<BoundaryContext>()
  .meta<Meta>()
  .create({
    // superjson on the wire; outputs are written by a byte-identical single-pass serializer
    // (lib/fast-superjson.ts) that falls back to superjson for anything but JSON + Date.
    transformer: fastSuperjson,
    /**
     * Never a stack trace, SQL or internal message in a response: INTERNAL_SERVER_ERROR becomes a
     * generic text with the request id (ARCHITECTURE §3, OWASP ASVS 7.4.1).
     */
    errorFormatter({ shape, error, ctx }): ErrorShape {
      const { message, data } = describeError(error, ctx?.requestId ?? null);
      return { message, code: shape.code, data: { ...data, path: shape.data.path } };
    },
  });

/**
 * Haven's answer for a failed call, the same over tRPC (the error formatter) and REST (ADR 0010):
 * INTERNAL_SERVER_ERROR becomes a generic text with the request id (never a stack, SQL or internal
 * message: ARCHITECTURE §3, OWASP ASVS 7.4.1); BAD_REQUEST input errors list field issues (at most
 * 50; the first 5 in the message); domain errors add their `reason`, throttling its
 * `retryAfterSeconds`. `httpStatus` is tRPC's mapping of the code (400, 401, 403, 404, 409, 429, 500…).
 */
export function describeError(
  error: TRPCError,
  requestId: string | null,
): { message: string; data: Omit<ErrorData, "path"> } {
  const issues = error.code === "BAD_REQUEST" ? fieldIssues(error.cause) : undefined;
  const cause = error.cause;
  let message = error.message;
  if (error.code === "INTERNAL_SERVER_ERROR") {
    message = `Internal error. Quote request id ${requestId ?? "unknown"} when reporting it.`;
  } else if (
    !issues &&
    !(cause instanceof DomainError) &&
    cause instanceof Error &&
    message === cause.message
  ) {
    // A library exception surfaced as the message (superjson "Trying to deserialize unknown custom
    // value", "Maximum call stack size exceeded" …): internal text, never shown.
    message =
      error.code === "BAD_REQUEST" || error.code === "PARSE_ERROR"
        ? "Malformed request: the input could not be decoded"
        : "The request was refused";
  } else if (issues) {
    message = `Invalid input: ${issues
      .slice(0, 5)
      .map((i) => `${i.path}: ${i.message}`)
      .join("; ")}`;
  }
  return {
    message,
    data: {
      code: error.code,
      httpStatus: getHTTPStatusCodeFromError(error),
      requestId,
      issues: issues ?? null,
      reason: cause instanceof DomainError ? (cause.reason ?? null) : null,
      retryAfterSeconds:
        cause instanceof TooManyRequestsError || cause instanceof ReadOnlyModeError
          ? cause.retryAfterSeconds
          : error.code === "SERVICE_UNAVAILABLE"
            ? UNAVAILABLE_RETRY_AFTER_SECONDS
            : null,
    },
  };
}

/**
 * The body tRPC itself would send for `error` on `url` (`/trpc/<path>[,<path>…][?batch=1…]`), for
 * answers the HTTP edge gives before tRPC runs (the shared rate limiter's 429). `@trpc/client`
 * and the SDK then decode it into a TRPCClientError with `data.code` (e.g. TOO_MANY_REQUESTS) and
 * `data.retryAfterSeconds`, as for any procedure's error, instead of failing with "Unable to
 * transform response from server". Shape: `{ error: superjson(ErrorShape) }`, or for a batch
 * request an array with one such entry per procedure in the path (tRPC v11 HTTP batch link).
 */
export function trpcErrorBody(url: string, error: TRPCError, requestId: string): unknown {
  const [pathPart = "", query = ""] = url.slice(url.indexOf("/trpc/") + 6).split("?");
  const paths = pathPart.split(",").map((p) => {
    try {
      return decodeURIComponent(p);
    } catch {
      return p;
    }
  });
  const { message, data } = describeError(error, requestId);
  const entry = (path: string) => ({
    error: fastSuperjson.serialize({
      message,
      code: TRPC_ERROR_CODES_BY_KEY[error.code],
      data: { ...data, path },
    } satisfies ErrorShape),
  });
  const batch = new URLSearchParams(query).get("batch") === "1";
  return batch ? paths.map(entry) : entry(paths[0] ?? "");
}

const DOMAIN_CODES: [new (...args: never[]) => DomainError, TRPC_ERROR_CODE_KEY][] = [
  [NotFoundError, "NOT_FOUND"],
  [ForbiddenError, "FORBIDDEN"],
  [UnauthorizedError, "UNAUTHORIZED"],
  [ConflictError, "CONFLICT"],
  [ValidationError, "BAD_REQUEST"],
  [TooManyRequestsError, "TOO_MANY_REQUESTS"],
  [ReadOnlyModeError, "SERVICE_UNAVAILABLE"],
];

/**
 * The one place domain and database errors become tRPC errors: domain errors keep their message;
 * unique (23505) and exclusion (23P01) violations become CONFLICT; a bad text representation
 * (22P02), out-of-range value (22003, 22007, 22008), too-long string (22001) or a character the
 * database cannot store (22021 NUL, 22P05) becomes BAD_REQUEST; a database that cannot
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
    case "22021":
    case "22P05":
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

/**
 * First middleware of every procedure: checks that the context was minted by
 * `createContextInner` and hands the rest of the chain its full type.
 * @throws TRPCError INTERNAL_SERVER_ERROR for a context built any other way (a programming error)
 */
const restoreContext = t.middleware(({ ctx, next }) => {
  if (!isServerContext(ctx)) {
    throw new TRPCError({ code: "INTERNAL_SERVER_ERROR", message: "context not minted" });
  }
  return next({ ctx });
});

/** Procedures from here on see the full `Context`. */
const contextual = t.procedure.use(restoreContext);

/** Count and time every call for /metrics (labels: procedure path, type, outcome code; no PHI). */
const measured = contextual.use(async function measure({ ctx, path, type, next }) {
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

/**
 * Base for procedures open to anyone (still declares `roles: "public"`), with the single access
 * middleware: reads `meta.roles`, deny by default.
 */
export const publicProcedure = measured
  .use(mapErrors)
  .use(async function refuseWritesWhenReadOnly({ ctx, meta, type, next }) {
    // Emergency mode (ADR 0013), before any access check or input parsing: a refused mutation does
    // no database work at all. Deny by default: only mutations that declare it may run.
    if (ctx.readOnly && type === "mutation" && meta?.readOnlyMode !== "allowed") {
      throw new ReadOnlyModeError();
    }
    return next();
  })
  .use(async function enforceAccess({ ctx, meta, path, next }) {
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
  })
  .use(async function guardInput({ getRawInput, next }) {
    // NUL bytes, instants past the JS Date limits and absurd nesting are refused before any schema
    // or service sees them (kernel/input-guard.ts), as BAD_REQUEST with the field path.
    assertSafeInput(await getRawInput());
    return next();
  });

export const router = t.router;
export const createCallerFactory = t.createCallerFactory;
export const middleware = t.middleware;

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
