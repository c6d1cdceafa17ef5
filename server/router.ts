import { accessRouter, breakGlassReviewProcedures } from "./access/router.ts";
import { apiKeysRouter, invitationsRouter, usersRouter } from "./accounts/router.ts";
import { appointmentsProcedures } from "./appointments/router.ts";
import { auditProcedures } from "./audit/router.ts";
import { authProcedures } from "./auth/router.ts";
import { mfaRouter } from "./mfa/router.ts";
import { patientsRouter } from "./patients/router.ts";
import { remindersRouter } from "./reminders/router.ts";
import { availabilityRouter, practitionersProcedure, slotsProcedure } from "./scheduling/router.ts";
import { router } from "./trpc.ts";

/**
 * `auth.*` as clients know it: sign-in and sessions (auth/), MFA (mfa/) and account administration
 * (accounts/) are separate domains mounted under one name.
 */
const authRouter = router({
  ...authProcedures,
  mfa: mfaRouter,
  invitations: invitationsRouter,
  users: usersRouter,
  apiKeys: apiKeysRouter,
});

/** `appointments.*`: booking and lifecycle (appointments/), slots and working hours (scheduling/). */
const appointmentsRouter = router({
  ...appointmentsProcedures,
  slots: slotsProcedure,
  practitioners: practitionersProcedure,
  availability: availabilityRouter,
});

/** `audit.*`: the trail itself (audit/) and the review of emergency grants (access/). */
const auditRouter = router({
  ...auditProcedures,
  ...breakGlassReviewProcedures,
});

/** Haven's API. Frontends import `AppRouter` (through `client-sdk/`) for end-to-end types. */
export const appRouter = router({
  auth: authRouter,
  patients: patientsRouter,
  appointments: appointmentsRouter,
  audit: auditRouter,
  access: accessRouter,
  reminders: remindersRouter,
});

export type AppRouter = typeof appRouter;
