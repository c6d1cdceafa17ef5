import { emptyInput } from "../auth/schemas.ts";
import { SESSION_ROLES } from "../kernel/roles.ts";
import { protectedProcedure, router } from "../trpc.ts";
import {
  mfaCodeInput,
  mfaConfirmOutput,
  mfaEnrollOutput,
  mfaStatusOutput,
  mfaVerifyInput,
  recoveryCodesOutput,
  sessionTokenOutput,
} from "./schemas.ts";
import { regenerateRecoveryCodes } from "./service.ts";
import {
  beginOwnEnrolment,
  confirmOwnEnrolment,
  mfaStatusOfSession,
  verifyOwnMfa,
} from "./step-up.ts";

/** `auth.mfa.*`: TOTP enrolment, step-up of the session, recovery codes. */
export const mfaRouter = router({
  /** `auth.mfa.status` — `{ enrolled, enrolledAt, pendingEnrolment, recoveryCodesRemaining, sessionVerified }`. */
  status: protectedProcedure
    .meta({ roles: SESSION_ROLES, phi: false })
    .input(emptyInput)
    .output(mfaStatusOutput)
    .query(({ ctx }) => mfaStatusOfSession(ctx.deps, ctx.actor, ctx.mfaVerified)),

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
    .mutation(({ ctx }) =>
      beginOwnEnrolment(ctx.deps, ctx.actor, { mfaVerified: ctx.mfaVerified }, ctx.auditActor),
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
    .mutation(({ ctx, input }) =>
      confirmOwnEnrolment(ctx.deps, ctx, ctx.actor, ctx.auditActor, input.code),
    ),

  /**
   * `auth.mfa.verify` — `{ code }` (TOTP) or `{ recoveryCode }` → the session passes MFA and is
   * replaced by a new one (ASVS 3.2.1): `{ token, expiresAt }`, also set as the cookie; the old
   * token stops working. A code already used (same or earlier time step) is refused (ASVS 2.8.4);
   * wrong codes are throttled per account and IP (ASVS 2.2.1). Audited `auth.mfa_verified` /
   * `auth.mfa_failed`. Errors: FORBIDDEN `mfa_code_invalid` / `mfa_code_reused` /
   * `mfa_not_enrolled`, TOO_MANY_REQUESTS (with Retry-After).
   */
  verify: protectedProcedure
    .meta({ roles: SESSION_ROLES, phi: false, readOnlyMode: "allowed" })
    .input(mfaVerifyInput)
    .output(sessionTokenOutput)
    .mutation(({ ctx, input }) => verifyOwnMfa(ctx.deps, ctx, ctx.actor, ctx.auditActor, input)),

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
