import { protectedProcedure, router } from "../trpc.ts";
import { listForPatientInput, listForPatientOutput } from "./schemas.ts";
import { listForPatient } from "./service.ts";

export const appointmentsRouter = router({
  /**
   * `appointments.listForPatient` — `{ patientId, limit?, cursor? }` → `{ items, nextCursor }`,
   * newest first; times are UTC. Same row rule as `patients.get`; audited.
   * Errors: NOT_FOUND, FORBIDDEN, BAD_REQUEST (input or cursor), UNAUTHORIZED.
   */
  listForPatient: protectedProcedure
    .meta({ roles: ["patient", "clinician", "staff", "admin"] })
    .input(listForPatientInput)
    .output(listForPatientOutput)
    .query(({ ctx, input }) => listForPatient(ctx.deps, ctx.actor, ctx.auditActor, input)),
});
