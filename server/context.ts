import type { Database, DatabaseHandle } from "../db/client.ts";
import type { Logger } from "../lib/logger.ts";
import type { MailTransport } from "../lib/mail.ts";
import { DEFAULT_PRIVACY_SETTINGS, type PrivacySettings } from "./access/settings.ts";
import type { BoundaryContext } from "./api-boundary.ts";
import type { SchedulingSettings } from "./appointments/settings.ts";
import type { CookieSpec, SessionManager } from "./auth/session.ts";
import type { ServiceDeps } from "./deps.ts";
import type { AuditActor } from "./kernel/audit.ts";
import type { Actor } from "./kernel/roles.ts";
import type { Metrics } from "./metrics.ts";
import { DEFAULT_REMINDER_SETTINGS, type ReminderSettings } from "./reminders/settings.ts";

/** Process-wide services shared by every request. */
export interface AppServices {
  deps: ServiceDeps & { db: Database };
  sessions: SessionManager;
  log: Logger;
  /** Outgoing mail (password reset, invitations, reminders); SMTP or the log transport. */
  mail: MailTransport;
  /** Postgres LISTEN/NOTIFY of this instance's database (live appointment changes). */
  pubsub: Pick<DatabaseHandle, "listen" | "notify">;
  /** Configured appointment rules (reminder offsets, patient cancel cutoff). */
  scheduling: SchedulingSettings;
  /** Configured privacy rules (break-the-glass grant length); defaults when absent. */
  privacy?: PrivacySettings;
  /** Reminder queue rules (retry budget, backoff); defaults when absent. */
  reminders?: ReminderSettings;
  /** Prometheus metrics of this server; absent in tests that do not need them. */
  metrics?: Metrics;
  /**
   * Read-only emergency mode (HAVEN_READ_ONLY, ADR 0013): reads are served and audited, mutations
   * refused unless their meta says `readOnlyMode: "allowed"`. Absent = false.
   */
  readOnly?: boolean;
}

/** Per-request tRPC context. Handlers read the caller from `actor` (null when anonymous). */
export interface Context extends BoundaryContext {
  deps: ServiceDeps & { db: Database };
  sessions: SessionManager;
  log: Logger;
  mail: MailTransport;
  pubsub: AppServices["pubsub"];
  scheduling: SchedulingSettings;
  privacy: PrivacySettings;
  reminders: ReminderSettings;
  metrics: Metrics | undefined;
  /** Read-only emergency mode is on (see {@link AppServices.readOnly}). */
  readOnly: boolean;
  actor: Actor | null;
  /** Whether the current session has passed MFA (TOTP or a recovery code). */
  mfaVerified: boolean;
  /** Whether the caller has a confirmed TOTP authenticator (then MFA applies whatever the role). */
  mfaEnrolled: boolean;
  /** The caller as audit records see it (ids only). */
  auditActor: AuditActor;
  requestId: string;
  ip: string | null;
  userAgent: string | null;
  /** Set or clear the session cookie (no-op outside HTTP). */
  setCookie: (cookie: CookieSpec) => void;
}

export type { BoundaryContext };

export interface InnerContextOptions {
  actor?: Actor | null;
  mfaVerified?: boolean;
  mfaEnrolled?: boolean;
  requestId?: string;
  ip?: string | null;
  userAgent?: string | null;
  setCookie?: (cookie: CookieSpec) => void;
}

/** Every context minted by `createContextInner` (and so by HTTP); nothing else passes as one. */
const minted = new WeakSet<object>();

/**
 * True when `value` is a context minted by {@link createContextInner}: how the first middleware
 * turns a {@link BoundaryContext} back into a {@link Context} without an unchecked cast.
 */
export function isServerContext(value: BoundaryContext): value is Context {
  return minted.has(value);
}

/**
 * The test seam (tRPC convention): build a context without HTTP. Router tests call
 * `createCaller(createContextInner(services, { actor }))`.
 */
export function createContextInner(services: AppServices, opts: InnerContextOptions = {}): Context {
  const actor = opts.actor ?? null;
  const requestId = opts.requestId ?? crypto.randomUUID();
  const ip = opts.ip ?? null;
  const ctx: Context = {
    deps: services.deps,
    sessions: services.sessions,
    log: services.log,
    mail: services.mail,
    pubsub: services.pubsub,
    scheduling: services.scheduling,
    privacy: services.privacy ?? DEFAULT_PRIVACY_SETTINGS,
    reminders: services.reminders ?? DEFAULT_REMINDER_SETTINGS,
    metrics: services.metrics,
    readOnly: services.readOnly ?? false,
    actor,
    mfaVerified: opts.mfaVerified ?? false,
    mfaEnrolled: opts.mfaEnrolled ?? false,
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
  minted.add(ctx);
  return ctx;
}
