import { emptyInput, loginOutput, okOutput } from "../auth/schemas.ts";
import type { Role } from "../kernel/roles.ts";
import { protectedProcedure, publicProcedure, router } from "../trpc.ts";
import { issueApiKey, listApiKeys, revokeApiKey } from "./api-keys.ts";
import {
  apiKeyCreateInput,
  apiKeyCreateOutput,
  apiKeyListOutput,
  apiKeyRevokeInput,
  invitationAcceptInput,
  invitationCreateInput,
  invitationCreateOutput,
  invitationListInput,
  invitationListOutput,
  invitationRevokeInput,
  sessionsRevokedOutput,
  setDisabledInput,
  setRoleInput,
  userIdInput,
  usersListInput,
  usersListOutput,
} from "./schemas.ts";
import {
  acceptInvitationAndSignIn,
  createInvitation,
  listInvitations,
  listUsers,
  resetUserMfa,
  revokeInvitation,
  setDisabled,
  setRole,
} from "./service.ts";

const ADMIN = ["admin"] as const satisfies readonly Role[];

/** `auth.invitations.*`: inviting patients and workforce, accepting, revoking. */
export const invitationsRouter = router({
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
    .mutation(({ ctx, input }) =>
      acceptInvitationAndSignIn(ctx.deps, ctx, input, {
        ...ctx.auditActor,
        userAgent: ctx.userAgent,
      }),
    ),

  /**
   * `auth.invitations.list` — `{ status?: pending|all, limit? (1–100, default 50), cursor? }` →
   * `{ items: [{ invitationId, role, email, createdAt, expiresAt, acceptedAt, revokedAt, state }],
   * nextCursor }`: the organization's invitations the caller may manage (staff: portal; admin:
   * all), newest first, so they can be revoked. Never the token. E-mails are decrypted (a
   * patient's is PHI): audited. Errors: BAD_REQUEST (`bad_cursor`).
   */
  list: protectedProcedure
    .meta({ roles: ["staff", "admin"], phi: true, mfa: true })
    .input(invitationListInput)
    .output(invitationListOutput)
    .query(({ ctx, input }) =>
      listInvitations(ctx.deps, ctx.actor, ctx.auditActor, {
        status: input?.status ?? "pending",
        limit: input?.limit ?? 50,
        cursor: input?.cursor,
      }),
    ),

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

/** `auth.users.*`: the admin operations on an organization's accounts. */
export const usersRouter = router({
  /**
   * `auth.users.list` — `{ limit? (1–100, default 50), cursor?, roles? }` → `{ items: [{ id, email, role,
   * disabled, mfaEnrolled, createdAt, passwordChangedAt }], nextCursor }`: the admin's
   * organization's accounts, oldest first, a keyset page at a time (service accounts excluded).
   * E-mails are PHI for patients: audited. Errors: BAD_REQUEST (`bad_cursor`).
   */
  list: protectedProcedure
    .meta({ roles: ADMIN, phi: true })
    .input(usersListInput)
    .output(usersListOutput)
    .query(({ ctx, input }) =>
      listUsers(ctx.deps, ctx.actor, ctx.auditActor, {
        limit: input?.limit ?? 50,
        cursor: input?.cursor,
        roles: input?.roles,
      }),
    ),

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
    .meta({ roles: ADMIN, phi: false, mfa: true, readOnlyMode: "allowed" })
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

/** `auth.apiKeys.*`: the machine credentials of the reminder cron. */
export const apiKeysRouter = router({
  /**
   * `auth.apiKeys.create` — `{ name, scopes: ["reminders"], expiresAt? }` → `{ key, info }`: a
   * `service` key, shown ONCE (only its SHA-256 is stored). Use as `Authorization: Bearer hk_…`
   * (`createHavenClient({ url, token: key })`). Audited `auth.api_key_created`.
   */
  create: protectedProcedure
    .meta({ roles: ADMIN, phi: false, mfa: true })
    .input(apiKeyCreateInput)
    .output(apiKeyCreateOutput)
    .mutation(({ ctx, input }) => issueApiKey(ctx.deps, ctx.actor, ctx.auditActor, input)),

  /** `auth.apiKeys.list` — the organization's keys (name, prefix, scopes, last used; never the key). */
  list: protectedProcedure
    .meta({ roles: ADMIN, phi: false, mfa: true })
    .input(emptyInput)
    .output(apiKeyListOutput)
    .query(({ ctx }) => listApiKeys(ctx.deps, ctx.actor.organizationId)),

  /** `auth.apiKeys.revoke` — `{ keyId }` → `{ ok: true }`; the key stops working at once. */
  revoke: protectedProcedure
    .meta({ roles: ADMIN, phi: false, mfa: true, readOnlyMode: "allowed" })
    .input(apiKeyRevokeInput)
    .output(okOutput)
    .mutation(async ({ ctx, input }) => {
      await revokeApiKey(ctx.deps, ctx.actor.organizationId, input.keyId, ctx.auditActor);
      return { ok: true as const };
    }),
});
