import type { Context } from "../context.ts";
import { SESSION_ROLES } from "../kernel/roles.ts";
import { protectedProcedure, publicProcedure, router } from "../trpc.ts";
import {
  listOwnSessions,
  logout,
  logoutEverywhere,
  revokeOwnSession,
  signIn,
  whoAmI,
} from "./own-sessions.ts";
import { changePassword, requestPasswordReset, resetPassword } from "./password-change.ts";
import {
  emptyInput,
  loginInput,
  loginOutput,
  meOutput,
  okOutput,
  passwordChangeInput,
  passwordChangeOutput,
  passwordResetInput,
  passwordResetRequestInput,
  revokedCountOutput,
  sessionRevokeInput,
  sessionsListOutput,
} from "./schemas.ts";

/** The request facts a sign-in records: audit fields plus the user agent. */
function requestOf(ctx: Context) {
  return { ...ctx.auditActor, userAgent: ctx.userAgent };
}

const sessionsRouter = router({
  /**
   * `auth.sessions.list` — the caller's live sessions, newest first: `[{ id, current, createdAt,
   * lastSeenAt, expiresAt, mfaVerified, ip, userAgent }]` (no tokens; `id` is the token's SHA-256).
   * OWASP ASVS 3.3.4.
   */
  list: protectedProcedure
    .meta({ roles: SESSION_ROLES, phi: false })
    .input(emptyInput)
    .output(sessionsListOutput)
    .query(({ ctx }) => listOwnSessions(ctx.sessions, ctx.actor)),

  /**
   * `auth.sessions.revoke` — `{ sessionId }` → end one of the caller's sessions (e.g. a lost
   * laptop); revoking the current one also clears the cookie. Audited `auth.session_revoked`.
   * Errors: NOT_FOUND (not one of the caller's sessions).
   */
  revoke: protectedProcedure
    .meta({ roles: SESSION_ROLES, phi: false, readOnlyMode: "allowed" })
    .input(sessionRevokeInput)
    .output(okOutput)
    .mutation(async ({ ctx, input }) => {
      await revokeOwnSession(ctx.deps, ctx, ctx.actor, ctx.auditActor, input.sessionId);
      return { ok: true as const };
    }),
});

const passwordRouter = router({
  /**
   * `auth.password.change` — `{ currentPassword, newPassword }` → `{ otherSessionsRevoked }`.
   * NIST 800-63B rules on the new password; every other session is revoked (ASVS 2.1.x, 3.3.3).
   * Errors: FORBIDDEN `invalid_credentials`, BAD_REQUEST `newPassword`, TOO_MANY_REQUESTS.
   */
  change: protectedProcedure
    .meta({ roles: SESSION_ROLES, phi: false })
    .input(passwordChangeInput)
    .output(passwordChangeOutput)
    .mutation(({ ctx, input }) =>
      changePassword(ctx.deps, ctx.sessions, ctx.actor, ctx.auditActor, input),
    ),

  /**
   * `auth.password.requestReset` — `{ email }` → always `{ ok: true }` (no account enumeration);
   * an active account gets a single-use reset code by e-mail (30 minutes). Errors:
   * TOO_MANY_REQUESTS (3 per e-mail, 20 per IP per hour).
   */
  requestReset: publicProcedure
    .meta({ roles: "public", phi: false })
    .input(passwordResetRequestInput)
    .output(okOutput)
    .mutation(async ({ ctx, input }) => {
      await requestPasswordReset(ctx.deps, ctx.mail, input, ctx.auditActor);
      return { ok: true as const };
    }),

  /**
   * `auth.password.reset` — `{ token, newPassword }` → `{ ok: true }`; every session of the account
   * is revoked, MFA still applies at the next sign-in. Errors: UNAUTHORIZED `reset_token_invalid`,
   * BAD_REQUEST `newPassword`.
   */
  reset: publicProcedure
    .meta({ roles: "public", phi: false })
    .input(passwordResetInput)
    .output(okOutput)
    .mutation(async ({ ctx, input }) => {
      await resetPassword(ctx.deps, ctx.sessions, input, ctx.auditActor);
      return { ok: true as const };
    }),
});

/**
 * The `auth.*` procedures of this domain (sign-in, sessions, passwords). `server/router.ts` mounts
 * them under `auth` together with `auth.mfa` (mfa/) and `auth.invitations|users|apiKeys`
 * (accounts/), so the public names stay where clients know them.
 */
export const authProcedures = {
  /**
   * `auth.login` — `{ email, password }` → `{ token, expiresAt, user, mfa }`. Sets the
   * `haven_session` cookie (HttpOnly, SameSite=Lax, Path=/, Secure in production) and returns the
   * raw token once, for `Authorization: Bearer`. `mfa` says what the session still needs before PHI:
   * `verify` (`auth.mfa.verify`), `enrol` (`auth.mfa.enroll` + `auth.mfa.confirm`) or `none`.
   * Errors: UNAUTHORIZED with one generic message (OWASP ASVS 2.2.1); TOO_MANY_REQUESTS with
   * `Retry-After` after 5 failures per account or 50 per IP in 15 minutes.
   */
  login: publicProcedure
    .meta({ roles: "public", phi: false, readOnlyMode: "allowed" })
    .input(loginInput)
    .output(loginOutput)
    .mutation(({ ctx, input }) => signIn(ctx.deps, ctx, input, requestOf(ctx))),

  /** `auth.logout` — revokes the current session server-side and clears the cookie. */
  logout: protectedProcedure
    .meta({ roles: SESSION_ROLES, phi: false, readOnlyMode: "allowed" })
    .input(emptyInput)
    .output(okOutput)
    .mutation(async ({ ctx }) => {
      await logout(ctx.deps, ctx, ctx.actor, ctx.auditActor);
      return { ok: true as const };
    }),

  /**
   * `auth.logoutEverywhere` — revokes every session of the caller, this one included, and clears
   * the cookie → `{ revoked }`. Audited `auth.logout_everywhere`.
   */
  logoutEverywhere: protectedProcedure
    .meta({ roles: SESSION_ROLES, phi: false, readOnlyMode: "allowed" })
    .input(emptyInput)
    .output(revokedCountOutput)
    .mutation(({ ctx }) => logoutEverywhere(ctx.deps, ctx, ctx.actor, ctx.auditActor)),

  /**
   * `auth.me` — the signed-in account (ids and role; no PHI), its MFA state and the idle timeout
   * in minutes that applies to it (null for patients, whose sessions have no idle timeout).
   */
  me: protectedProcedure
    .meta({ roles: SESSION_ROLES, phi: false })
    .input(emptyInput)
    .output(meOutput)
    .query(({ ctx }) =>
      whoAmI(
        ctx.actor,
        { verified: ctx.mfaVerified, enrolled: ctx.mfaEnrolled },
        ctx.sessions.idleTimeoutMinutes,
      ),
    ),

  sessions: sessionsRouter,
  password: passwordRouter,
};
