import { z } from "zod";
import { acknowledgeInput, reviewInput, reviewOutput } from "../access/schemas.ts";
import { acknowledgeGrant, reviewQueue } from "../access/service.ts";
import { protectedProcedure, router } from "../trpc.ts";
import { accountingForPatient, searchAudit, verifyAuditTrail } from "./queries.ts";
import {
  forPatientInput,
  forPatientOutput,
  searchInput,
  searchOutput,
  verifyInput,
  verifyOutput,
} from "./schemas.ts";

export const auditRouter = router({
  /**
   * `audit.forPatient` — `{ patientId, from?, to?, limit?, cursor? }` → `{ items, nextCursor }`:
   * the accounting of disclosures (45 CFR 164.528): who accessed the record, when, which action,
   * the outcome and why (basis; emergency grants with their reason), newest first. Admins of the
   * patient's organization, and the patient for their own record. Audited.
   * Errors: NOT_FOUND, FORBIDDEN, BAD_REQUEST (input, cursor), UNAUTHORIZED.
   */
  forPatient: protectedProcedure
    .meta({ roles: ["admin", "patient"], phi: true })
    .input(forPatientInput)
    .output(forPatientOutput)
    .query(({ ctx, input }) => accountingForPatient(ctx.deps, ctx.actor, ctx.auditActor, input)),
  /**
   * `audit.search` — `{ actorUserId?, action?, outcome?, patientId?, from?, to?, limit?, cursor? }`
   * → `{ items, nextCursor }`: the admin's organization's audit events (ids and codes only),
   * newest first. Audited. Errors: BAD_REQUEST, FORBIDDEN (role), UNAUTHORIZED.
   */
  search: protectedProcedure
    .meta({ roles: ["admin"], phi: true })
    .input(searchInput)
    .output(searchOutput)
    .query(({ ctx, input }) => searchAudit(ctx.deps, ctx.actor, ctx.auditActor, input)),
  /**
   * `audit.verify` — `{ anchor?: { seq, hash } }` → the chain report: `ok`, links checked, the head,
   * the first broken link and every problem (`event_modified`, `event_missing`, `link_missing`,
   * `link_altered`, `anchor_mismatch`) with its sequence number and event id (45 CFR 164.312(c)).
   * Seals pending events first. Admins. Audited.
   */
  verify: protectedProcedure
    .meta({ roles: ["admin"], phi: false, mfa: true })
    .input(verifyInput)
    .output(verifyOutput)
    .mutation(({ ctx, input }) => verifyAuditTrail(ctx.deps, ctx.auditActor, input?.anchor)),
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
    .output(
      z.object({
        reviewedAt: z.date(),
        reviewedByUserId: z.uuid().nullable(),
        outcome: z.enum(["appropriate", "inappropriate"]),
        note: z.string().nullable(),
      }),
    )
    .mutation(({ ctx, input }) => acknowledgeGrant(ctx.deps, ctx.actor, ctx.auditActor, input)),
});
