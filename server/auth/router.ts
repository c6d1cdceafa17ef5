import { eq } from "drizzle-orm";
import { users } from "../../db/schema/index.ts";
import { createApiKey, listApiKeys, revokeApiKey } from "../accounts/api-keys.ts";
import {
  acceptInvitation,
  createInvitation,
  listUsers,
  resetUserMfa,
  revokeInvitation,
  setDisabled,
  setRole,
} from "../accounts/service.ts";
import type { Context } from "../context.ts";
import { recordAudit } from "../kernel/audit.ts";
import { NotFoundError, UnauthorizedError } from "../kernel/errors.ts";
import type { Actor, Role } from "../kernel/roles.ts";
import {
  beginTotpEnrolment,
  confirmTotpEnrolment,
  mfaStatus,
  regenerateRecoveryCodes,
  useRecoveryCode,
  verifyFreshTotp,
} from "../mfa/service.ts";
import { protectedProcedure, publicProcedure, router } from "../trpc.ts";
import { login } from "./login.ts";
import { changePassword, requestPasswordReset, resetPassword } from "./password-change.ts";
import {
  apiKeyCreateInput,
  apiKeyCreateOutput,
  apiKeyListOutput,
  apiKeyRevokeInput,
  emptyInput,
  invitationAcceptInput,
  invitationCreateInput,
  invitationCreateOutput,
  invitationRevokeInput,
  loginInput,
  loginOutput,
  meOutput,
  mfaCodeInput,
  mfaConfirmOutput,
  mfaEnrollOutput,
  mfaStatusOutput,
  mfaVerifyInput,
  okOutput,
  passwordChangeInput,
  passwordChangeOutput,
  passwordResetInput,
  passwordResetRequestInput,
  recoveryCodesOutput,
  revokedCountOutput,
  sessionRevokeInput,
  sessionsListOutput,
  sessionsRevokedOutput,
  sessionTokenOutput,
  setDisabledInput,
  setRoleInput,
  userIdInput,
  usersListOutput,
} from "./schemas.ts";

/** Roles that sign in with a password and hold sessions (API keys are `service`). */
const SESSION_ROLES = ["patient", "clinician", "staff", "admin"] as const satisfies readonly Role[];
const ADMIN = ["admin"] as const satisfies readonly Role[];

function requestOf(ctx: Context) {
  return { ...ctx.auditActor, userAgent: ctx.userAgent };
}

async function emailOf(ctx: Context & { actor: Actor }): Promise<string> {
  const [u] = await ctx.deps.db
    .select({ email: users.email })
    .from(users)
    .where(eq(users.id, ctx.actor.userId))
    .limit(1);
  if (!u) throw new UnauthorizedError("Sign in required");
  return ctx.deps.crypto.open<string>("users", "email", ctx.actor.userId, u.email);
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
    .query(async ({ ctx }) =>
      (await ctx.sessions.list(ctx.actor.userId)).map((s) => ({
        ...s,
        current: s.id === ctx.actor.sessionId,
      })),
    ),

  /**
   * `auth.sessions.revoke` — `{ sessionId }` → end one of the caller's sessions (e.g. a lost
   * laptop); revoking the current one also clears the cookie. Audited `auth.session_revoked`.
   * Errors: NOT_FOUND (not one of the caller's sessions).
   */
  revoke: protectedProcedure
    .meta({ roles: SESSION_ROLES, phi: false })
    .input(sessionRevokeInput)
    .output(okOutput)
    .mutation(async ({ ctx, input }) => {
      const ok = await ctx.sessions.revokeOwn(ctx.actor.userId, input.sessionId);
      if (!ok) throw new NotFoundError("No such session");
      if (input.sessionId === ctx.actor.sessionId) ctx.setCookie(ctx.sessions.blankCookie());
      await recordAudit(
        ctx.deps.db,
        ctx.auditActor,
        {
          action: "auth.session_revoked",
          outcome: "allowed",
          resourceType: "Session",
          resourceId: input.sessionId,
          details: { current: input.sessionId === ctx.actor.sessionId },
        },
        ctx.deps.now(),
      );
      return { ok: true as const };
    }),
});

const mfaRouter = router({
  /** `auth.mfa.status` — `{ enrolled, enrolledAt, pendingEnrolment, recoveryCodesRemaining, sessionVerified }`. */
  status: protectedProcedure
    .meta({ roles: SESSION_ROLES, phi: false })
    .input(emptyInput)
    .output(mfaStatusOutput)
    .query(async ({ ctx }) => ({
      ...(await mfaStatus(ctx.deps, ctx.actor.userId)),
      sessionVerified: ctx.mfaVerified,
    })),

  /**
   * `auth.mfa.enroll` — start TOTP enrolment: `{ secret, uri: "otpauth://totp/…", qrDataUrl }`
   * (shown to the account owner only; the secret is stored encrypted as pending until confirmed).
   * Replacing a confirmed authenticator needs an MFA-verified session.
   * Errors: FORBIDDEN `mfa_required`. RFC 6238; OWASP ASVS 2.8.
   */
  enroll: protectedProcedure
    .meta({ roles: SESSION_ROLES, phi: false })
    .input(emptyInput)
    .output(mfaEnrollOutput)
    .mutation(async ({ ctx }) =>
      beginTotpEnrolment(
        ctx.deps,
        ctx.actor.userId,
        await emailOf(ctx),
        { mfaVerified: ctx.mfaVerified },
        ctx.auditActor,
      ),
    ),

  /**
   * `auth.mfa.confirm` — `{ code }` (first code from the app) → the authenticator is active; the
   * session is replaced by an MFA-verified one: `{ token, expiresAt, recoveryCodes }` (the new token
   * is also set as the cookie; the old token stops working). Replacing an older authenticator
   * revokes every other session. Errors: FORBIDDEN `mfa_not_pending` / `mfa_code_invalid`,
   * TOO_MANY_REQUESTS.
   */
  confirm: protectedProcedure
    .meta({ roles: SESSION_ROLES, phi: false })
    .input(mfaCodeInput)
    .output(mfaConfirmOutput)
    .mutation(async ({ ctx, input }) => {
      const { recoveryCodes, replaced } = await confirmTotpEnrolment(
        ctx.deps,
        ctx.actor.userId,
        input.code,
        ctx.auditActor,
      );
      const next = await ctx.sessions.rotate(ctx.actor.sessionId, { mfaVerified: true });
      if (!next) throw new UnauthorizedError("Sign in required");
      if (replaced) await ctx.sessions.revokeAllForUser(ctx.actor.userId, next.sessionId);
      ctx.setCookie(ctx.sessions.cookie(next.token));
      return { token: next.token, expiresAt: next.expiresAt, recoveryCodes };
    }),

  /**
   * `auth.mfa.verify` — `{ code }` (TOTP) or `{ recoveryCode }` → the session passes MFA and is
   * replaced by a new one (ASVS 3.2.1): `{ token, expiresAt }`, also set as the cookie; the old
   * token stops working. A code already used (same or earlier time step) is refused (ASVS 2.8.4);
   * wrong codes are throttled per account and IP (ASVS 2.2.1). Audited `auth.mfa_verified` /
   * `auth.mfa_failed`. Errors: FORBIDDEN `mfa_code_invalid` / `mfa_code_reused` /
   * `mfa_not_enrolled`, TOO_MANY_REQUESTS (with Retry-After).
   */
  verify: protectedProcedure
    .meta({ roles: SESSION_ROLES, phi: false })
    .input(mfaVerifyInput)
    .output(sessionTokenOutput)
    .mutation(async ({ ctx, input }) => {
      let method: "totp" | "recovery_code";
      let remaining: number | null = null;
      if ("code" in input) {
        await verifyFreshTotp(ctx.deps, ctx.actor.userId, input.code, ctx.auditActor);
        method = "totp";
      } else {
        remaining = (
          await useRecoveryCode(ctx.deps, ctx.actor.userId, input.recoveryCode, ctx.auditActor)
        ).remaining;
        method = "recovery_code";
      }
      const next = await ctx.sessions.rotate(ctx.actor.sessionId, { mfaVerified: true });
      if (!next) throw new UnauthorizedError("Sign in required");
      await recordAudit(
        ctx.deps.db,
        { ...ctx.auditActor, sessionId: next.sessionId },
        {
          action: "auth.mfa_verified",
          outcome: "allowed",
          resourceType: "Session",
          details: { method, recoveryCodesRemaining: remaining },
        },
        ctx.deps.now(),
      );
      ctx.setCookie(ctx.sessions.cookie(next.token));
      return { token: next.token, expiresAt: next.expiresAt };
    }),

  /**
   * `auth.mfa.regenerateRecoveryCodes` — new one-time recovery codes (old ones stop working);
   * needs an MFA-verified session. Errors: FORBIDDEN `mfa_required` / `mfa_not_enrolled`.
   */
  regenerateRecoveryCodes: protectedProcedure
    .meta({ roles: SESSION_ROLES, phi: false, mfa: true })
    .input(emptyInput)
    .output(recoveryCodesOutput)
    .mutation(async ({ ctx }) => ({
      recoveryCodes: await regenerateRecoveryCodes(ctx.deps, ctx.actor.userId, ctx.auditActor),
    })),
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

const invitationsRouter = router({
  /**
   * `auth.invitations.create` — `{ role, patientId?, practitionerId?, email?, expiresInHours? }` →
   * `{ invitationId, expiresAt }`. Staff invite portal patients (tied to a patient record, sent to
   * the record's e-mail unless `email` is given — then a confirmation code goes to the contact on
   * file and is needed to accept, ADR 0008); admins also invite clinicians, staff, admins.
   * The single-use token goes only into the e-mail. Errors: FORBIDDEN, NOT_FOUND, CONFLICT,
   * BAD_REQUEST.
   */
  create: protectedProcedure
    .meta({ roles: ["staff", "admin"], phi: true })
    .input(invitationCreateInput)
    .output(invitationCreateOutput)
    .mutation(({ ctx, input }) =>
      createInvitation(ctx.deps, ctx.mail, ctx.actor, ctx.auditActor, input),
    ),

  /**
   * `auth.invitations.accept` — `{ token, birthDate? (portal), contactCode? (portal invitation
   * sent to an address not on file: the code mailed to the contact on file), password }` → a session like
   * `auth.login` (workforce accounts must then enrol MFA). Errors: UNAUTHORIZED (one message for
   * invalid, used, expired, revoked, wrong date of birth or code), BAD_REQUEST `password`,
   * TOO_MANY_REQUESTS.
   */
  accept: publicProcedure
    .meta({ roles: "public", phi: false })
    .input(invitationAcceptInput)
    .output(loginOutput)
    .mutation(async ({ ctx, input }) => {
      const result = await acceptInvitation(ctx.deps, ctx.sessions, input, requestOf(ctx));
      ctx.setCookie(ctx.sessions.cookie(result.token));
      return result;
    }),

  /** `auth.invitations.revoke` — `{ invitationId }` → `{ ok: true }`. Errors: NOT_FOUND, FORBIDDEN. */
  revoke: protectedProcedure
    .meta({ roles: ["staff", "admin"], phi: false, mfa: true })
    .input(invitationRevokeInput)
    .output(okOutput)
    .mutation(async ({ ctx, input }) => {
      await revokeInvitation(ctx.deps, ctx.actor, ctx.auditActor, input.invitationId);
      return { ok: true as const };
    }),
});

const usersRouter = router({
  /**
   * `auth.users.list` — the admin's organization's accounts `[{ id, email, role, disabled,
   * mfaEnrolled, createdAt, passwordChangedAt }]` (e-mails are PHI for patients: audited).
   */
  list: protectedProcedure
    .meta({ roles: ADMIN, phi: true })
    .input(emptyInput)
    .output(usersListOutput)
    .query(({ ctx }) => listUsers(ctx.deps, ctx.actor, ctx.auditActor)),

  /**
   * `auth.users.setRole` — `{ userId, role: clinician|staff|admin }` → `{ sessionsRevoked }`;
   * every session of that account ends. Errors: NOT_FOUND, FORBIDDEN (self), BAD_REQUEST `role`.
   */
  setRole: protectedProcedure
    .meta({ roles: ADMIN, phi: false, mfa: true })
    .input(setRoleInput)
    .output(sessionsRevokedOutput)
    .mutation(({ ctx, input }) =>
      setRole(ctx.deps, ctx.sessions, ctx.actor, ctx.auditActor, input),
    ),

  /**
   * `auth.users.setDisabled` — `{ userId, disabled }` → `{ sessionsRevoked }`; disabling ends every
   * session at once and blocks sign-in. Errors: NOT_FOUND, FORBIDDEN (self, service account).
   */
  setDisabled: protectedProcedure
    .meta({ roles: ADMIN, phi: false, mfa: true })
    .input(setDisabledInput)
    .output(sessionsRevokedOutput)
    .mutation(({ ctx, input }) =>
      setDisabled(ctx.deps, ctx.sessions, ctx.actor, ctx.auditActor, input),
    ),

  /**
   * `auth.users.resetMfa` — `{ userId }` → `{ sessionsRevoked }`: removes the user's authenticator
   * and recovery codes (lost phone); audited `auth.mfa_reset`. Errors: NOT_FOUND, FORBIDDEN (self).
   */
  resetMfa: protectedProcedure
    .meta({ roles: ADMIN, phi: false, mfa: true })
    .input(userIdInput)
    .output(sessionsRevokedOutput)
    .mutation(({ ctx, input }) =>
      resetUserMfa(ctx.deps, ctx.sessions, ctx.actor, ctx.auditActor, input.userId),
    ),
});

const apiKeysRouter = router({
  /**
   * `auth.apiKeys.create` — `{ name, scopes: ["reminders"], expiresAt? }` → `{ key, info }`: a
   * `service` key, shown ONCE (only its SHA-256 is stored). Use as `Authorization: Bearer hk_…`
   * (`createHavenClient({ url, token: key })`). Audited `auth.api_key_created`.
   */
  create: protectedProcedure
    .meta({ roles: ADMIN, phi: false, mfa: true })
    .input(apiKeyCreateInput)
    .output(apiKeyCreateOutput)
    .mutation(({ ctx, input }) =>
      createApiKey(
        ctx.deps,
        {
          organizationId: ctx.actor.organizationId,
          name: input.name,
          scopes: input.scopes,
          createdBy: ctx.actor.userId,
          expiresAt: input.expiresAt ?? null,
        },
        ctx.auditActor,
      ),
    ),

  /** `auth.apiKeys.list` — the organization's keys (name, prefix, scopes, last used; never the key). */
  list: protectedProcedure
    .meta({ roles: ADMIN, phi: false, mfa: true })
    .input(emptyInput)
    .output(apiKeyListOutput)
    .query(({ ctx }) => listApiKeys(ctx.deps, ctx.actor.organizationId)),

  /** `auth.apiKeys.revoke` — `{ keyId }` → `{ ok: true }`; the key stops working at once. */
  revoke: protectedProcedure
    .meta({ roles: ADMIN, phi: false, mfa: true })
    .input(apiKeyRevokeInput)
    .output(okOutput)
    .mutation(async ({ ctx, input }) => {
      await revokeApiKey(ctx.deps, ctx.actor.organizationId, input.keyId, ctx.auditActor);
      return { ok: true as const };
    }),
});

export const authRouter = router({
  /**
   * `auth.login` — `{ email, password }` → `{ token, expiresAt, user, mfa }`. Sets the
   * `haven_session` cookie (HttpOnly, SameSite=Lax, Path=/, Secure in production) and returns the
   * raw token once, for `Authorization: Bearer`. `mfa` says what the session still needs before PHI:
   * `verify` (`auth.mfa.verify`), `enrol` (`auth.mfa.enroll` + `auth.mfa.confirm`) or `none`.
   * Errors: UNAUTHORIZED with one generic message (OWASP ASVS 2.2.1); TOO_MANY_REQUESTS with
   * `Retry-After` after 5 failures per account or 50 per IP in 15 minutes.
   */
  login: publicProcedure
    .meta({ roles: "public", phi: false })
    .input(loginInput)
    .output(loginOutput)
    .mutation(async ({ ctx, input }) => {
      const result = await login(ctx.deps, ctx.sessions, input, requestOf(ctx));
      ctx.setCookie(ctx.sessions.cookie(result.token));
      return result;
    }),

  /** `auth.logout` — revokes the current session server-side and clears the cookie. */
  logout: protectedProcedure
    .meta({ roles: SESSION_ROLES, phi: false })
    .input(emptyInput)
    .output(okOutput)
    .mutation(async ({ ctx }) => {
      await ctx.sessions.revoke(ctx.actor.sessionId);
      ctx.setCookie(ctx.sessions.blankCookie());
      await recordAudit(
        ctx.deps.db,
        ctx.auditActor,
        { action: "auth.logout", outcome: "allowed", resourceType: "Session" },
        ctx.deps.now(),
      );
      return { ok: true as const };
    }),

  /**
   * `auth.logoutEverywhere` — revokes every session of the caller, this one included, and clears
   * the cookie → `{ revoked }`. Audited `auth.logout_everywhere`.
   */
  logoutEverywhere: protectedProcedure
    .meta({ roles: SESSION_ROLES, phi: false })
    .input(emptyInput)
    .output(revokedCountOutput)
    .mutation(async ({ ctx }) => {
      const revoked = await ctx.sessions.revokeAllForUser(ctx.actor.userId);
      ctx.setCookie(ctx.sessions.blankCookie());
      await recordAudit(
        ctx.deps.db,
        ctx.auditActor,
        {
          action: "auth.logout_everywhere",
          outcome: "allowed",
          resourceType: "Session",
          details: { revoked },
        },
        ctx.deps.now(),
      );
      return { revoked };
    }),

  /**
   * `auth.me` — the signed-in account (ids and role; no PHI), its MFA state and the idle timeout
   * in minutes that applies to it (null for patients, whose sessions have no idle timeout).
   */
  me: protectedProcedure
    .meta({ roles: SESSION_ROLES, phi: false })
    .input(emptyInput)
    .output(meOutput)
    .query(({ ctx }) => ({
      user: {
        id: ctx.actor.userId,
        role: ctx.actor.role,
        organizationId: ctx.actor.organizationId,
        patientId: ctx.actor.patientId,
        practitionerId: ctx.actor.practitionerId,
      },
      mfaVerified: ctx.mfaVerified,
      mfaEnrolled: ctx.mfaEnrolled,
      idleTimeoutMinutes: ctx.actor.role === "patient" ? null : ctx.sessions.idleTimeoutMinutes,
    })),

  sessions: sessionsRouter,
  mfa: mfaRouter,
  password: passwordRouter,
  invitations: invitationsRouter,
  users: usersRouter,
  apiKeys: apiKeysRouter,
});
