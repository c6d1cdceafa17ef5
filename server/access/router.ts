import { protectedProcedure, router } from "../trpc.ts";
import {
  acknowledgeInput,
  acknowledgeOutput,
  breakGlassInput,
  grantOutput,
  myGrantsInput,
  myGrantsOutput,
  reviewInput,
  reviewOutput,
  revokeInput,
} from "./schemas.ts";
import {
  acknowledgeGrant,
  breakGlassWithAlert,
  myActiveGrants,
  reviewQueue,
  revokeGrant,
} from "./service.ts";

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
    .meta({ roles: ["clinician"], phi: true, readOnlyMode: "allowed" })
    .input(breakGlassInput)
    .output(grantOutput)
    .mutation(({ ctx, input }) =>
      breakGlassWithAlert(
        ctx.deps,
        { log: ctx.log, requestId: ctx.requestId },
        ctx.actor,
        ctx.auditActor,
        input,
        { minutes: ctx.privacy.breakGlassMinutes },
      ),
    ),
  /**
   * `access.revoke` — `{ grantId }` → the grant, now revoked (idempotent). The clinician who holds
   * it, or an admin of the patient's organization. Errors: NOT_FOUND, FORBIDDEN.
   */
  revoke: protectedProcedure
    .meta({ roles: ["clinician", "admin"], phi: true, readOnlyMode: "allowed" })
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

/**
 * The admins' review of emergency grants, mounted under `audit` by `server/router.ts`: it is
 * activity review of the audit trail (45 CFR 164.308(a)(1)(ii)(D)), so clients find it beside
 * `audit.forPatient`, while the rules live with the grants in access/.
 */
export const breakGlassReviewProcedures = {
  /**
   * `audit.breakGlassReview` — `{ status?: pending|reviewed|all, limit?, cursor? }` → the
   * organization's emergency grants, oldest first, with holder, decrypted reason, state and the
   * number of reads made under each (164.308(a)(1)(ii)(D) activity review). Admins. Audited.
   */
  breakGlassReview: protectedProcedure
    .meta({ roles: ["admin"], phi: true })
    .input(reviewInput)
    .output(reviewOutput)
    .query(({ ctx, input }) => reviewQueue(ctx.deps, ctx.actor, ctx.auditActor, input)),
  /**
   * `audit.breakGlassAcknowledge` — `{ grantId, outcome: appropriate|inappropriate, note? }` → the
   * review, once per grant. Admins of the patient's organization. Audited.
   * Errors: NOT_FOUND, FORBIDDEN, CONFLICT (`already_reviewed`).
   */
  breakGlassAcknowledge: protectedProcedure
    .meta({ roles: ["admin"], phi: true })
    .input(acknowledgeInput)
    .output(acknowledgeOutput)
    .mutation(({ ctx, input }) => acknowledgeGrant(ctx.deps, ctx.actor, ctx.auditActor, input)),
};
