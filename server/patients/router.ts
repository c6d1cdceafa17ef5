import { protectedProcedure, router } from "../trpc.ts";
import {
  exportMyRecordInput,
  fhirBundleOutput,
  getInput,
  getOutput,
  searchInput,
  searchOutput,
} from "./schemas.ts";
import { exportMyRecord, getPatient, searchPatients } from "./service.ts";

export const patientsRouter = router({
  /**
   * `patients.search` — exact match by `{ mrn }` or `{ family, birthDate: "YYYY-MM-DD" }` through
   * blind indexes; returns `[{ id, organizationId, name: { family, given }, birthDate, sex, mrn }]`
   * (at most 50), only patients the caller may read. Each hit is audited (45 CFR 164.312(b)).
   * Errors: BAD_REQUEST (input), UNAUTHORIZED, FORBIDDEN (role).
   */
  search: protectedProcedure
    .meta({ roles: ["clinician", "staff", "admin"], phi: true })
    .input(searchInput)
    .output(searchOutput)
    .query(({ ctx, input }) => searchPatients(ctx.deps, ctx.actor, ctx.auditActor, input)),

  /**
   * `patients.get` — `{ patientId, entryLimit? }` → decrypted demographics and newest clinical
   * entries (FHIR bodies for patient-self and clinicians only; minimum necessary).
   * Errors: NOT_FOUND, FORBIDDEN (row rule; audited as denied), UNAUTHORIZED, BAD_REQUEST.
   */
  get: protectedProcedure
    .meta({ roles: ["patient", "clinician", "staff", "admin"], phi: true })
    .input(getInput)
    .output(getOutput)
    .query(({ ctx, input }) => getPatient(ctx.deps, ctx.actor, ctx.auditActor, input)),
  /**
   * `patients.exportMyRecord` — (no input) → the caller's whole record as a FHIR R4 Bundle
   * (`type: "collection"`, Patient/$everything content: Patient, clinical resources, Appointments,
   * referenced Organizations and Practitioners); re-importable with `npm run import`. Patients
   * only, own record only (right of access, 45 CFR 164.524). Audited as `patient.export`.
   * Errors: NOT_FOUND (account without a patient record), UNAUTHORIZED, FORBIDDEN (role).
   */
  exportMyRecord: protectedProcedure
    .meta({ roles: ["patient"], phi: true })
    .input(exportMyRecordInput)
    .output(fhirBundleOutput)
    .query(({ ctx }) => exportMyRecord(ctx.deps, ctx.actor, ctx.auditActor)),
});
