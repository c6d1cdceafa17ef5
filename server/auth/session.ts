import { createHash, randomBytes } from "node:crypto";
import { and, eq, lt } from "drizzle-orm";
import { type Adapter, type DatabaseSession, type DatabaseUser, Lucia, TimeSpan } from "lucia";
import type { Database } from "../../db/client.ts";
import { patients, practitioners, sessions, users } from "../../db/schema/index.ts";
import type { Actor, Role } from "./roles.ts";

/**
 * Sessions, wrapped in this one module so Lucia v3 (deprecated upstream) can be swapped by
 * touching one file. The bearer token (256 random bits, base64url) lives only in the cookie or
 * `Authorization: Bearer`; the database stores its SHA-256 as the session id (OWASP ASVS V3.2.2,
 * 3.5.2). Never put the stored id into a cookie: cookies always carry the raw token.
 */

export const SESSION_COOKIE = "haven_session";

declare module "lucia" {
  interface Register {
    Lucia: Lucia<DatabaseSessionAttributes, DatabaseUserAttributes>;
    DatabaseSessionAttributes: DatabaseSessionAttributes;
    DatabaseUserAttributes: DatabaseUserAttributes;
  }
}
interface DatabaseSessionAttributes {
  mfaVerified: boolean;
  ip: string | null;
  userAgent: string | null;
  lastSeenAt: Date;
}
interface DatabaseUserAttributes {
  role: Role;
  organizationId: string;
  disabled: boolean;
  patientId: string | null;
  practitionerId: string | null;
}

/** SHA-256 (hex) of a session token: the stored session id. */
export function hashSessionToken(token: string): string {
  return createHash("sha256").update(token, "utf8").digest("hex");
}

function drizzleAdapter(db: Database): Adapter {
  const toSession = (row: typeof sessions.$inferSelect): DatabaseSession => ({
    id: row.id,
    userId: row.userId,
    expiresAt: row.expiresAt,
    attributes: {
      mfaVerified: row.mfaVerified,
      ip: row.ip,
      userAgent: row.userAgent,
      lastSeenAt: row.lastSeenAt,
    },
  });
  return {
    async getSessionAndUser(sessionId) {
      const rows = await db
        .select({
          session: sessions,
          role: users.role,
          organizationId: users.organizationId,
          disabledAt: users.disabledAt,
          patientId: patients.id,
          practitionerId: practitioners.id,
        })
        .from(sessions)
        .innerJoin(users, eq(users.id, sessions.userId))
        .leftJoin(patients, eq(patients.userId, users.id))
        .leftJoin(practitioners, eq(practitioners.userId, users.id))
        .where(eq(sessions.id, sessionId))
        .limit(1);
      const row = rows[0];
      if (!row) return [null, null];
      const user: DatabaseUser = {
        id: row.session.userId,
        attributes: {
          role: row.role,
          organizationId: row.organizationId,
          disabled: row.disabledAt !== null,
          patientId: row.patientId,
          practitionerId: row.practitionerId,
        },
      };
      return [toSession(row.session), user];
    },
    async getUserSessions(userId) {
      const rows = await db.select().from(sessions).where(eq(sessions.userId, userId));
      return rows.map(toSession);
    },
    async setSession(session) {
      await db.insert(sessions).values({
        id: session.id,
        userId: session.userId,
        expiresAt: session.expiresAt,
        lastSeenAt: session.attributes.lastSeenAt,
        mfaVerified: session.attributes.mfaVerified,
        ip: session.attributes.ip,
        userAgent: session.attributes.userAgent,
      });
    },
    async updateSessionExpiration(sessionId, expiresAt) {
      await db.update(sessions).set({ expiresAt }).where(eq(sessions.id, sessionId));
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
  /** Absolute session lifetime, hours. */
  ttlHours: number;
  /** Set the cookie's `Secure` attribute (production). */
  secureCookies: boolean;
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
  expiresAt: Date;
  mfaVerified: boolean;
  /** True when the expiry was extended and the cookie should be re-set (with the raw token). */
  refreshed: boolean;
}

/** Session lifecycle for Haven: create, validate, revoke, cookie specs. */
export class SessionManager {
  readonly #lucia: Lucia<DatabaseSessionAttributes, DatabaseUserAttributes>;
  readonly #db: Database;

  constructor(db: Database, options: SessionManagerOptions) {
    this.#db = db;
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

  /**
   * Start a session. @returns the raw token (give to the client once; never stored) and expiry.
   */
  async create(
    userId: string,
    meta: { ip: string | null; userAgent: string | null; mfaVerified: boolean; now: Date },
  ): Promise<{ token: string; sessionId: string; expiresAt: Date }> {
    const token = randomBytes(32).toString("base64url");
    const sessionId = hashSessionToken(token);
    const session = await this.#lucia.createSession(
      userId,
      {
        mfaVerified: meta.mfaVerified,
        ip: meta.ip,
        userAgent: meta.userAgent?.slice(0, 512) ?? null,
        lastSeenAt: meta.now,
      },
      { sessionId },
    );
    return { token, sessionId, expiresAt: session.expiresAt };
  }

  /**
   * Resolve a raw token to the caller. Returns null for unknown, expired or disabled-user sessions
   * (a disabled user's sessions are deleted).
   */
  async validate(token: string): Promise<ValidatedSession | null> {
    if (!/^[A-Za-z0-9_-]{20,200}$/.test(token)) return null;
    const sessionId = hashSessionToken(token);
    const { session, user } = await this.#lucia.validateSession(sessionId);
    if (!session || !user) return null;
    if (user.disabled) {
      await this.#lucia.invalidateUserSessions(user.id);
      return null;
    }
    return {
      actor: {
        userId: user.id,
        role: user.role,
        organizationId: user.organizationId,
        sessionId,
        patientId: user.patientId,
        practitionerId: user.practitionerId,
      },
      expiresAt: session.expiresAt,
      mfaVerified: session.mfaVerified,
      refreshed: session.fresh,
    };
  }

  /** Revoke one session by its stored id. */
  async revoke(sessionId: string): Promise<void> {
    await this.#lucia.invalidateSession(sessionId);
  }

  /** Revoke every session of a user except, optionally, one. */
  async revokeAllForUser(userId: string, exceptSessionId?: string): Promise<void> {
    if (!exceptSessionId) {
      await this.#lucia.invalidateUserSessions(userId);
      return;
    }
    const all = await this.#db
      .select({ id: sessions.id })
      .from(sessions)
      .where(eq(sessions.userId, userId));
    for (const s of all) {
      if (s.id !== exceptSessionId) {
        await this.#db
          .delete(sessions)
          .where(and(eq(sessions.id, s.id), eq(sessions.userId, userId)));
      }
    }
  }

  /** Cookie carrying the raw token (never the stored hash). */
  cookie(token: string): CookieSpec {
    const c = this.#lucia.createSessionCookie(token);
    return { name: c.name, value: c.value, attributes: { ...c.attributes, httpOnly: true } };
  }

  /** Cookie that clears the session cookie. */
  blankCookie(): CookieSpec {
    const c = this.#lucia.createBlankSessionCookie();
    return { name: c.name, value: c.value, attributes: { ...c.attributes, httpOnly: true } };
  }

  /** Extract a token from `Authorization: Bearer …`. */
  readBearer(header: string | undefined): string | null {
    return header ? this.#lucia.readBearerToken(header) : null;
  }
}
