import { randomBytes } from "node:crypto";
import { and, eq, lt, ne, sql } from "drizzle-orm";
import { type Adapter, type DatabaseSession, type DatabaseUser, Lucia, TimeSpan } from "lucia";
import type { Database } from "../../db/client.ts";
import { patients, practitioners, sessions, users } from "../../db/schema/index.ts";
import { recordAudit } from "../kernel/audit.ts";
import { sha256Hex } from "../kernel/hash.ts";
import { type Actor, isPrivileged, type Role } from "../kernel/roles.ts";

/**
 * Sessions, wrapped in this one module so Lucia v3 (deprecated upstream) can be swapped by
 * touching one file (ADR 0003). The bearer token (256 random bits, base64url) lives only in the
 * cookie or `Authorization: Bearer`; the database stores its SHA-256 as the session id (OWASP ASVS
 * 3.2.2, 3.5.2). Cookies always carry the raw token, never the stored hash.
 *
 * Haven's rules are applied here with the injected clock, not by Lucia (whose checks read the
 * system clock and slide `expires_at` past any absolute cap):
 * - absolute lifetime for every role: `expires_at = created_at + ttl`, never extended (ASVS 3.3.2);
 * - idle timeout for clinician/staff/admin from `last_seen_at` (automatic logoff, 45 CFR
 *   164.312(a)(2)(iii), ASVS 3.3.2), sliding: activity moves `last_seen_at` forward;
 * - a disabled account's sessions are deleted on sight (ASVS 3.3.1).
 */

export const SESSION_COOKIE = "haven_session";

/**
 * `last_seen_at` is written at most this often (ms), so a busy session is not a write per request,
 * and never less often than a tenth of the idle timeout: with a 1-minute timeout a session active
 * every few seconds must not be logged off at 60 s.
 */
const TOUCH_INTERVAL_MS = 60_000;
/** Refresh granularity as a fraction of the idle timeout. */
const TOUCH_FRACTION_OF_IDLE = 0.1;
/** Raw session tokens are 32 random bytes, base64url (43 characters). */
const TOKEN_SHAPE = /^[A-Za-z0-9_-]{43}$/;

declare module "lucia" {
  interface Register {
    Lucia: Lucia<DatabaseSessionAttributes, DatabaseUserAttributes>;
    DatabaseSessionAttributes: DatabaseSessionAttributes;
    DatabaseUserAttributes: DatabaseUserAttributes;
  }
}
interface DatabaseSessionAttributes {
  mfaVerified: boolean;
}
interface DatabaseUserAttributes {
  role: Role;
}

/** SHA-256 (hex) of a session token: the stored session id. */
export function hashSessionToken(token: string): string {
  return sha256Hex(token);
}

/** Lucia's adapter (used for invalidation); Haven's own reads go through SessionManager below. */
function drizzleAdapter(db: Database): Adapter {
  const toSession = (row: typeof sessions.$inferSelect): DatabaseSession => ({
    id: row.id,
    userId: row.userId,
    expiresAt: row.expiresAt,
    attributes: { mfaVerified: row.mfaVerified },
  });
  return {
    async getSessionAndUser(sessionId) {
      const [row] = await db
        .select({ session: sessions, role: users.role })
        .from(sessions)
        .innerJoin(users, eq(users.id, sessions.userId))
        .where(eq(sessions.id, sessionId))
        .limit(1);
      if (!row) return [null, null];
      const user: DatabaseUser = { id: row.session.userId, attributes: { role: row.role } };
      return [toSession(row.session), user];
    },
    async getUserSessions(userId) {
      const rows = await db.select().from(sessions).where(eq(sessions.userId, userId));
      return rows.map(toSession);
    },
    async setSession() {
      throw new Error("sessions are created by SessionManager.create");
    },
    async updateSessionExpiration() {
      // Absolute lifetime: Haven never extends expires_at.
    },
    async deleteSession(sessionId) {
      await db.delete(sessions).where(eq(sessions.id, sessionId));
    },
    async deleteUserSessions(userId) {
      await db.delete(sessions).where(eq(sessions.userId, userId));
    },
    async deleteExpiredSessions() {
      await db.delete(sessions).where(lt(sessions.expiresAt, new Date()));
    },
  };
}

export interface SessionManagerOptions {
  /** Absolute session lifetime, hours (all roles). */
  ttlHours: number;
  /** Idle timeout for clinician/staff/admin, minutes (default 15). */
  idleTimeoutMinutes?: number;
  /** Set the cookie's `Secure` attribute (production). */
  secureCookies: boolean;
  /** Clock (UTC); defaults to the system clock. Tests inject theirs. */
  now?: () => Date;
}

export interface CookieSpec {
  name: string;
  value: string;
  attributes: {
    httpOnly?: boolean;
    secure?: boolean;
    sameSite?: "lax" | "strict" | "none";
    path?: string;
    maxAge?: number;
    expires?: Date;
  };
}

export interface ValidatedSession {
  actor: Actor;
  /** Absolute end of the session (UTC). */
  expiresAt: Date;
  /** When the idle timeout will end it without further activity (privileged roles), else null. */
  idleExpiresAt: Date | null;
  mfaVerified: boolean;
  /** The user has confirmed a TOTP authenticator (MFA then applies whatever the role). */
  mfaEnrolled: boolean;
  /** True when activity slid the idle window; the cookie is re-set (with the raw token). */
  refreshed: boolean;
}

/** A session as its owner sees it in `auth.sessions.list` (no token, no hash of anything else). */
export interface SessionInfo {
  id: string;
  createdAt: Date;
  lastSeenAt: Date;
  expiresAt: Date;
  mfaVerified: boolean;
  ip: string | null;
  userAgent: string | null;
}

/** Session lifecycle for Haven: create, validate, rotate, revoke, list, cookie specs. */
export class SessionManager {
  readonly #lucia: Lucia<DatabaseSessionAttributes, DatabaseUserAttributes>;
  readonly #db: Database;
  readonly #ttlMs: number;
  readonly #idleMs: number;
  readonly #touchMs: number;
  readonly #now: () => Date;

  /**
   * The session + account lookup of every signed-in request, built by Drizzle ONCE: building it
   * per call cost ~135 µs of CPU (bench/results/optimisations.md §11.5).
   */
  readonly #lookup;

  constructor(db: Database, options: SessionManagerOptions) {
    this.#db = db;
    this.#lookup = db
      .select({
        session: sessions,
        role: users.role,
        organizationId: users.organizationId,
        disabledAt: users.disabledAt,
        totpEnabledAt: users.totpEnabledAt,
        patientId: patients.id,
        practitionerId: practitioners.id,
      })
      .from(sessions)
      .innerJoin(users, eq(users.id, sessions.userId))
      .leftJoin(patients, eq(patients.userId, users.id))
      .leftJoin(practitioners, eq(practitioners.userId, users.id))
      .where(eq(sessions.id, sql.placeholder("sessionId")))
      .limit(1)
      .prepare("haven_session_lookup");
    this.#ttlMs = options.ttlHours * 3_600_000;
    this.#idleMs = (options.idleTimeoutMinutes ?? 15) * 60_000;
    this.#touchMs = Math.min(TOUCH_INTERVAL_MS, this.#idleMs * TOUCH_FRACTION_OF_IDLE);
    this.#now = options.now ?? (() => new Date());
    this.#lucia = new Lucia(drizzleAdapter(db), {
      sessionExpiresIn: new TimeSpan(options.ttlHours, "h"),
      sessionCookie: {
        name: SESSION_COOKIE,
        expires: false,
        attributes: { sameSite: "lax", path: "/", secure: options.secureCookies },
      },
      getSessionAttributes: (a) => a,
      getUserAttributes: (a) => a,
    });
  }

  /** Idle timeout in minutes (for `auth.me` and docs). */
  get idleTimeoutMinutes(): number {
    return this.#idleMs / 60_000;
  }

  /**
   * Start a session (a new random token on every sign-in, ASVS 3.2.1).
   * `meta.now` overrides the clock for the creation time.
   * @returns the raw token (give to the client once; never stored), its stored id and expiry
   */
  async create(
    userId: string,
    meta: { ip: string | null; userAgent: string | null; mfaVerified: boolean; now?: Date },
  ): Promise<{ token: string; sessionId: string; expiresAt: Date }> {
    const now = meta.now ?? this.#now();
    const token = randomBytes(32).toString("base64url");
    const sessionId = hashSessionToken(token);
    const expiresAt = new Date(now.getTime() + this.#ttlMs);
    await this.#db.insert(sessions).values({
      id: sessionId,
      userId,
      createdAt: now,
      expiresAt,
      lastSeenAt: now,
      mfaVerified: meta.mfaVerified,
      ip: meta.ip,
      userAgent: meta.userAgent?.slice(0, 512) ?? null,
    });
    return { token, sessionId, expiresAt };
  }

  /**
   * Resolve a raw token to the caller, applying absolute lifetime, idle timeout (privileged roles)
   * and disabled accounts with the injected clock. An ended session is deleted (and audited as
   * `auth.session_expired`), so a replayed token never works again.
   * @returns null for malformed, unknown, expired, idle or disabled-user sessions
   */
  async validate(token: string): Promise<ValidatedSession | null> {
    if (!TOKEN_SHAPE.test(token)) return null;
    const sessionId = hashSessionToken(token);
    const [row] = await this.#lookup.execute({ sessionId });
    if (!row) return null;
    const now = this.#now();
    const s = row.session;
    if (row.disabledAt) {
      await this.revokeAllForUser(s.userId);
      return null;
    }
    const privileged = isPrivileged(row.role);
    const idleEnd = privileged ? new Date(s.lastSeenAt.getTime() + this.#idleMs) : null;
    const ended =
      now.getTime() >= s.expiresAt.getTime()
        ? "absolute"
        : idleEnd && now.getTime() >= idleEnd.getTime()
          ? "idle"
          : null;
    if (ended) {
      await this.#db.delete(sessions).where(eq(sessions.id, sessionId));
      await recordAudit(
        this.#db,
        {
          userId: s.userId,
          role: row.role,
          sessionId,
          organizationId: row.organizationId,
          ip: null,
          requestId: null,
        },
        {
          action: "auth.session_expired",
          outcome: "allowed",
          resourceType: "Session",
          details: { reason: ended },
        },
        now,
      );
      return null;
    }
    let refreshed = false;
    let lastSeen = s.lastSeenAt;
    if (now.getTime() - s.lastSeenAt.getTime() >= this.#touchMs) {
      await this.#db
        .update(sessions)
        .set({ lastSeenAt: now })
        .where(and(eq(sessions.id, sessionId), lt(sessions.lastSeenAt, now)));
      lastSeen = now;
      refreshed = true;
    }
    return {
      actor: {
        userId: s.userId,
        role: row.role,
        organizationId: row.organizationId,
        sessionId,
        patientId: row.patientId,
        practitionerId: row.practitionerId,
      },
      expiresAt: s.expiresAt,
      idleExpiresAt: privileged ? new Date(lastSeen.getTime() + this.#idleMs) : null,
      mfaVerified: s.mfaVerified,
      mfaEnrolled: row.totpEnabledAt !== null,
      refreshed,
    };
  }

  /**
   * Replace a session by a new token (after MFA: a privilege change gets a new session id, ASVS
   * 3.2.1), keeping its absolute expiry. The old token stops working in the same transaction.
   * @returns the new raw token, or null when the old session no longer exists
   */
  async rotate(
    sessionId: string,
    change: { mfaVerified: boolean },
  ): Promise<{ token: string; sessionId: string; expiresAt: Date } | null> {
    const token = randomBytes(32).toString("base64url");
    const newId = hashSessionToken(token);
    const now = this.#now();
    return this.#db.transaction(async (tx) => {
      const [old] = await tx.delete(sessions).where(eq(sessions.id, sessionId)).returning();
      if (!old) return null;
      await tx.insert(sessions).values({
        ...old,
        id: newId,
        lastSeenAt: now,
        mfaVerified: change.mfaVerified,
      });
      return { token, sessionId: newId, expiresAt: old.expiresAt };
    });
  }

  /** Record that a session passed MFA without rotating it (OWASP ASVS 2.7/2.8; 45 CFR 164.312(d)). */
  async markMfaVerified(sessionId: string): Promise<void> {
    await this.#db.update(sessions).set({ mfaVerified: true }).where(eq(sessions.id, sessionId));
  }

  /** A user's live sessions, newest first (for `auth.sessions.list`, ASVS 3.3.4). */
  async list(userId: string): Promise<SessionInfo[]> {
    const now = this.#now();
    const rows = await this.#db.select().from(sessions).where(eq(sessions.userId, userId));
    return rows
      .filter((r) => r.expiresAt.getTime() > now.getTime())
      .sort((a, b) => b.createdAt.getTime() - a.createdAt.getTime())
      .map((r) => ({
        id: r.id,
        createdAt: r.createdAt,
        lastSeenAt: r.lastSeenAt,
        expiresAt: r.expiresAt,
        mfaVerified: r.mfaVerified,
        ip: r.ip,
        userAgent: r.userAgent,
      }));
  }

  /** Revoke one session by its stored id. */
  async revoke(sessionId: string): Promise<void> {
    await this.#lucia.invalidateSession(sessionId);
  }

  /**
   * Revoke one of `userId`'s sessions by its stored id.
   * @returns false when no such session belongs to the user
   */
  async revokeOwn(userId: string, sessionId: string): Promise<boolean> {
    const deleted = await this.#db
      .delete(sessions)
      .where(and(eq(sessions.id, sessionId), eq(sessions.userId, userId)))
      .returning({ id: sessions.id });
    return deleted.length > 0;
  }

  /**
   * Revoke every session of a user except, optionally, one (ASVS 3.3.3).
   * @returns how many sessions were revoked
   */
  async revokeAllForUser(userId: string, exceptSessionId?: string): Promise<number> {
    const deleted = await this.#db
      .delete(sessions)
      .where(
        exceptSessionId
          ? and(eq(sessions.userId, userId), ne(sessions.id, exceptSessionId))
          : eq(sessions.userId, userId),
      )
      .returning({ id: sessions.id });
    return deleted.length;
  }

  /** Delete sessions past their absolute end (housekeeping; validate() also refuses them). */
  async deleteExpired(): Promise<number> {
    const deleted = await this.#db
      .delete(sessions)
      .where(lt(sessions.expiresAt, this.#now()))
      .returning({ id: sessions.id });
    return deleted.length;
  }

  /**
   * Cookie carrying the raw token (never the stored hash): HttpOnly, SameSite=Lax, Path=/, Secure in
   * production, and no Max-Age/Expires: a browser-session cookie, so closing the browser of a shared
   * workstation drops it (the server-side lifetime rules apply regardless). Lucia's `expires: false`
   * would instead persist it for 400 days.
   */
  cookie(token: string): CookieSpec {
    const c = this.#lucia.createSessionCookie(token);
    const { maxAge: _maxAge, expires: _expires, ...attributes } = c.attributes;
    return { name: c.name, value: c.value, attributes: { ...attributes, httpOnly: true } };
  }

  /** Cookie that clears the session cookie. */
  blankCookie(): CookieSpec {
    const c = this.#lucia.createBlankSessionCookie();
    return { name: c.name, value: c.value, attributes: { ...c.attributes, httpOnly: true } };
  }

  /** Extract a token from `Authorization: Bearer …` (null when absent or malformed). */
  readBearer(header: string | undefined): string | null {
    return header ? this.#lucia.readBearerToken(header) : null;
  }
}
