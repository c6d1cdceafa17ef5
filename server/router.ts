import { accessRouter } from "./access/router.ts";
import { appointmentsRouter } from "./appointments/router.ts";
import { auditRouter } from "./audit/router.ts";
import { authRouter } from "./auth/router.ts";
import { patientsRouter } from "./patients/router.ts";
import { remindersRouter } from "./reminders/router.ts";
import { router } from "./trpc.ts";

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
