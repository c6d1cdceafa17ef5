import { appointmentsRouter } from "./appointments/router.ts";
import { authRouter } from "./auth/router.ts";
import { patientsRouter } from "./patients/router.ts";
import { router } from "./trpc.ts";

/** Haven's API. Frontends import `AppRouter` (through `client-sdk/`) for end-to-end types. */
export const appRouter = router({
  auth: authRouter,
  patients: patientsRouter,
  appointments: appointmentsRouter,
});

export type AppRouter = typeof appRouter;
