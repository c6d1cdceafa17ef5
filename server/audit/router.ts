import { protectedProcedure } from "../trpc.ts";
import { accountingForPatient, searchAudit, verifyAuditTrail } from "./queries.ts";
import {
  forPatientInput,
  forPatientOutput,
  searchInput,
  searchOutput,
  verifyInput,
  verifyOutput,
} from "./schemas.ts";

/**
 * `audit.*`: the accounting of disclosures, search and chain verification. `server/router.ts` also
 * mounts the review of emergency grants here (`audit.breakGlass*`), served by access/.
 */
export const auditProcedures = {
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
    .meta({ roles: ["admin"], phi: false, mfa: true, readOnlyMode: "allowed" })
    .input(verifyInput)
    .output(verifyOutput)
    .mutation(({ ctx, input }) => verifyAuditTrail(ctx.deps, ctx.auditActor, input?.anchor)),
};
