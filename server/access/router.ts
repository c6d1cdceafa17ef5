import { protectedProcedure, router } from "../trpc.ts";
import {
  breakGlassInput,
  grantOutput,
  myGrantsInput,
  myGrantsOutput,
  revokeInput,
} from "./schemas.ts";
import { breakGlass, myActiveGrants, revokeGrant } from "./service.ts";

export const accessRouter = router({
  /**
   * `access.breakGlass` — `{ patientId, reason (10–1000 chars), code (6-digit TOTP) }` → the grant
   * `{ grantId, patientId, grantedAt, expiresAt, revokedAt, state }` (UTC; lasts
   * HAVEN_BREAK_GLASS_MINUTES, default 60). Clinicians only, for one patient of their own
   * organization they have no care relationship with; needs an MFA-verified session AND a fresh
   * code (re-authentication, OWASP ASVS 2.8 / 4.3.3; HIPAA 45 CFR 164.312(a)(2)(ii)). Every read
   * under the grant is audited with it; the organization's admins review it.
   * Errors: BAD_REQUEST (no reason, no code), NOT_FOUND, FORBIDDEN (`other_organization`,
   * `mfa_code_invalid`, `mfa_code_reused`, `mfa_not_enrolled`, `mfa_required`), CONFLICT
   * (`care_relationship_exists`), TOO_MANY_REQUESTS (wrong codes).
   */
  breakGlass: protectedProcedure
    .meta({ roles: ["clinician"], phi: true })
    .input(breakGlassInput)
    .output(grantOutput)
    .mutation(async ({ ctx, input }) => {
      const grant = await breakGlass(ctx.deps, ctx.actor, ctx.auditActor, input, {
        minutes: ctx.privacy.breakGlassMinutes,
      });
      // Ids only: an alert line for log-based monitoring ("admins notified").
      ctx.log.warn(
        {
          grantId: grant.grantId,
          patientId: grant.patientId,
          userId: ctx.actor.userId,
          reqId: ctx.requestId,
        },
        "break-the-glass access granted",
      );
      return grant;
    }),
  /**
   * `access.revoke` — `{ grantId }` → the grant, now revoked (idempotent). The clinician who holds
   * it, or an admin of the patient's organization. Errors: NOT_FOUND, FORBIDDEN.
   */
  revoke: protectedProcedure
    .meta({ roles: ["clinician", "admin"], phi: true })
    .input(revokeInput)
    .output(grantOutput)
    .mutation(({ ctx, input }) => revokeGrant(ctx.deps, ctx.actor, ctx.auditActor, input.grantId)),
  /** `access.myGrants` — the caller's active emergency grants (ids and UTC times; no reasons). */
  myGrants: protectedProcedure
    .meta({ roles: ["clinician"], phi: true })
    .input(myGrantsInput)
    .output(myGrantsOutput)
    .query(({ ctx }) => myActiveGrants(ctx.deps, ctx.actor)),
});
