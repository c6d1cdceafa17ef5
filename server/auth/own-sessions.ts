import type { ServiceDeps } from "../deps.ts";
import { type AuditActor, recordAudit } from "../kernel/audit.ts";
import { NotFoundError } from "../kernel/errors.ts";
import type { Actor } from "../kernel/roles.ts";
import { type LoginInput, type LoginRequest, type LoginResult, login } from "./login.ts";
import type { CookieSpec, SessionInfo, SessionManager } from "./session.ts";

/**
 * What a procedure that opens, replaces or ends the caller's session needs from the request: the
 * session manager and a way to set (or clear) the session cookie. Outside HTTP `setCookie` is a
 * no-op; the service never sees tRPC or Fastify.
 */
export interface SessionIo {
  sessions: SessionManager;
  setCookie: (cookie: CookieSpec) => void;
}

/**
 * The caller as `auth.me` describes it: ids and role (no PHI), its MFA state, and the idle timeout
 * in minutes that applies to it (null for patients, whose sessions have no idle timeout), so a
 * browser can sign out at the moment the server would (45 CFR 164.312(a)(2)(iii)).
 */
export interface WhoAmI {
  user: Pick<Actor, "role" | "organizationId" | "patientId" | "practitionerId"> & { id: string };
  mfaVerified: boolean;
  mfaEnrolled: boolean;
  idleTimeoutMinutes: number | null;
}

/** Describe the signed-in caller for `auth.me` from what authentication already resolved. */
export function whoAmI(
  actor: Actor,
  mfa: { verified: boolean; enrolled: boolean },
  idleTimeoutMinutes: number,
): WhoAmI {
  return {
    user: {
      id: actor.userId,
      role: actor.role,
      organizationId: actor.organizationId,
      patientId: actor.patientId,
      practitionerId: actor.practitionerId,
    },
    mfaVerified: mfa.verified,
    mfaEnrolled: mfa.enrolled,
    idleTimeoutMinutes: actor.role === "patient" ? null : idleTimeoutMinutes,
  };
}

/**
 * Sign in with e-mail + password ({@link login}) and set the new session's cookie.
 * @returns the login result (raw token shown once) @throws as {@link login}
 */
export async function signIn(
  deps: ServiceDeps,
  io: SessionIo,
  input: LoginInput,
  request: LoginRequest,
): Promise<LoginResult> {
  const result = await login(deps, io.sessions, input, request);
  io.setCookie(io.sessions.cookie(result.token));
  return result;
}

/** The caller's live sessions, newest first, with `current` marking the one making this call. */
export async function listOwnSessions(
  sessions: SessionManager,
  actor: Actor,
): Promise<(SessionInfo & { current: boolean })[]> {
  return (await sessions.list(actor.userId)).map((s) => ({
    ...s,
    current: s.id === actor.sessionId,
  }));
}

/**
 * End one of the caller's own sessions (`sessionId` = the token's SHA-256 hex); ending the current
 * one also clears the cookie. Audited `auth.session_revoked` with `details.current`.
 * @throws NotFoundError when the session is not one of the caller's (or already ended)
 */
export async function revokeOwnSession(
  deps: ServiceDeps,
  io: SessionIo,
  actor: Actor,
  audit: AuditActor,
  sessionId: string,
): Promise<void> {
  const ok = await io.sessions.revokeOwn(actor.userId, sessionId);
  if (!ok) throw new NotFoundError("No such session");
  const current = sessionId === actor.sessionId;
  if (current) io.setCookie(io.sessions.blankCookie());
  await recordAudit(
    deps.db,
    audit,
    {
      action: "auth.session_revoked",
      outcome: "allowed",
      resourceType: "Session",
      resourceId: sessionId,
      details: { current },
    },
    deps.now(),
  );
}

/** Revoke the current session server-side and clear the cookie. Audited `auth.logout`. */
export async function logout(
  deps: ServiceDeps,
  io: SessionIo,
  actor: Actor,
  audit: AuditActor,
): Promise<void> {
  await io.sessions.revoke(actor.sessionId);
  io.setCookie(io.sessions.blankCookie());
  await recordAudit(
    deps.db,
    audit,
    { action: "auth.logout", outcome: "allowed", resourceType: "Session" },
    deps.now(),
  );
}

/**
 * Revoke every session of the caller, the current one included, and clear the cookie.
 * Audited `auth.logout_everywhere` with the count. @returns how many sessions ended
 */
export async function logoutEverywhere(
  deps: ServiceDeps,
  io: SessionIo,
  actor: Actor,
  audit: AuditActor,
): Promise<{ revoked: number }> {
  const revoked = await io.sessions.revokeAllForUser(actor.userId);
  io.setCookie(io.sessions.blankCookie());
  await recordAudit(
    deps.db,
    audit,
    {
      action: "auth.logout_everywhere",
      outcome: "allowed",
      resourceType: "Session",
      details: { revoked },
    },
    deps.now(),
  );
  return { revoked };
}
