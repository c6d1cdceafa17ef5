import type { Database } from "../db/client.ts";
import type { AuditActor } from "./audit/service.ts";
import type { Actor } from "./auth/roles.ts";
import type { CookieSpec, SessionManager } from "./auth/session.ts";
import type { ServiceDeps } from "./deps.ts";
import type { Logger } from "./logger.ts";

/** Process-wide services shared by every request. */
export interface AppServices {
  deps: ServiceDeps & { db: Database };
  sessions: SessionManager;
  log: Logger;
}

/** Per-request tRPC context. Handlers read the caller from `actor` (null when anonymous). */
export interface Context {
  deps: ServiceDeps & { db: Database };
  sessions: SessionManager;
  log: Logger;
  actor: Actor | null;
  /** Whether the current session has passed MFA (always false until MFA ships, issue 3). */
  mfaVerified: boolean;
  /** The caller as audit records see it (ids only). */
  auditActor: AuditActor;
  requestId: string;
  ip: string | null;
  userAgent: string | null;
  /** Set or clear the session cookie (no-op outside HTTP). */
  setCookie: (cookie: CookieSpec) => void;
}

export interface InnerContextOptions {
  actor?: Actor | null;
  mfaVerified?: boolean;
  requestId?: string;
  ip?: string | null;
  userAgent?: string | null;
  setCookie?: (cookie: CookieSpec) => void;
}

/**
 * The test seam (tRPC convention): build a context without HTTP. Router tests call
 * `createCaller(createContextInner(services, { actor }))`.
 */
export function createContextInner(services: AppServices, opts: InnerContextOptions = {}): Context {
  const actor = opts.actor ?? null;
  const requestId = opts.requestId ?? crypto.randomUUID();
  const ip = opts.ip ?? null;
  return {
    deps: services.deps,
    sessions: services.sessions,
    log: services.log,
    actor,
    mfaVerified: opts.mfaVerified ?? false,
    auditActor: {
      userId: actor?.userId ?? null,
      role: actor?.role ?? null,
      sessionId: actor?.sessionId ?? null,
      organizationId: actor?.organizationId ?? null,
      ip,
      requestId,
    },
    requestId,
    ip,
    userAgent: opts.userAgent ?? null,
    setCookie: opts.setCookie ?? (() => {}),
  };
}
