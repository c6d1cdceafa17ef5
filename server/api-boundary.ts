/**
 * The types the router's TYPE exposes, and so everything `@haven/client`'s published declarations
 * may say about the server (ADR 0008): procedure meta, field issues, and the boundary context.
 * This file imports nothing but role names; keep it that way (the SDK build check fails when a
 * server internal such as drizzle-orm or lucia reaches the declarations).
 */
import type { TRPC_ERROR_CODE_KEY, TRPC_ERROR_CODE_NUMBER } from "@trpc/server/rpc";
import type { ApiKeyScope, Role } from "./kernel/roles.ts";

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
  /**
   * Read-only emergency mode (HAVEN_READ_ONLY, ADR 0013): every mutation is refused with
   * SERVICE_UNAVAILABLE `read_only` (deny by default) unless it says `"allowed"` here. Only
   * sign-in/out, session ending, MFA verification, break-the-glass and its revocation, audit
   * verification, disabling accounts and revoking API keys may say so: they write sessions, grants
   * or audit events, never clinical, scheduling or account-content data.
   */
  readOnlyMode?: "allowed";
}

/** One field-level validation problem, as returned in `error.data.issues`. */
export interface FieldIssue {
  path: string;
  message: string;
}

/**
 * The context as the router's TYPE states it (ADR 0008): the request id and nothing of the
 * server's internals, so `AppRouter` — and the SDK's published declarations — name no database,
 * logger or session-store type. At run time every context is a full `Context` (context.ts), minted by
 * `createContextInner`; the first middleware restores that type (`restoreContext` in trpc.ts).
 */
export interface BoundaryContext {
  readonly requestId: string;
}

/** `error.data` of every Haven error (tRPC), and the `error` object of a REST error answer. */
export interface ErrorData {
  code: TRPC_ERROR_CODE_KEY;
  /** HTTP status of the answer (400, 401, 403, 404, 409, 429, 500, 503). */
  httpStatus: number;
  /** Procedure path, e.g. `appointments.book` (tRPC only). */
  path: string | undefined;
  /** The server's request id; quote it when reporting an internal error. */
  requestId: string | null;
  /** Field problems of a BAD_REQUEST input error; null otherwise. */
  issues: FieldIssue[] | null;
  /** Machine-readable reason (`mfa_required`, `slot_taken`, `stale_version` …); null when none. */
  reason: string | null;
  /** TOO_MANY_REQUESTS: seconds until a retry may succeed (also `Retry-After`); null otherwise. */
  retryAfterSeconds: number | null;
}

/** The error shape of the router (tRPC `errorFormatter`). */
export interface ErrorShape {
  message: string;
  code: TRPC_ERROR_CODE_NUMBER;
  data: ErrorData;
}
