import { protectedProcedure, router } from "../trpc.ts";
import { getInput, getOutput, searchInput, searchOutput } from "./schemas.ts";
import { getPatient, searchPatients } from "./service.ts";

export const patientsRouter = router({
  /**
   * `patients.search` — exact match by `{ mrn }` or `{ family, birthDate: "YYYY-MM-DD" }` through
   * blind indexes; returns `[{ id, organizationId, name: { family, given }, birthDate, sex, mrn }]`
   * (at most 50), only patients the caller may read. Each hit is audited (45 CFR 164.312(b)).
   * Errors: BAD_REQUEST (input), UNAUTHORIZED, FORBIDDEN (role).
   */
  search: protectedProcedure
    .meta({ roles: ["clinician", "staff", "admin"] })
    .input(searchInput)
    .output(searchOutput)
    .query(({ ctx, input }) => searchPatients(ctx.deps, ctx.actor, ctx.auditActor, input)),

  /**
   * `patients.get` — `{ patientId, entryLimit? }` → decrypted demographics and newest clinical
   * entries (FHIR bodies for patient-self and clinicians only; minimum necessary).
   * Errors: NOT_FOUND, FORBIDDEN (row rule; audited as denied), UNAUTHORIZED, BAD_REQUEST.
   */
  get: protectedProcedure
    .meta({ roles: ["patient", "clinician", "staff", "admin"] })
    .input(getInput)
    .output(getOutput)
    .query(({ ctx, input }) => getPatient(ctx.deps, ctx.actor, ctx.auditActor, input)),
});
