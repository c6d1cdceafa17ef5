import type { Executor } from "../db/client.ts";
import type { PhiCrypto } from "./crypto/phi.ts";

/**
 * What every domain service needs: a database (or open transaction), the PHI cipher and a clock.
 * Services never import tRPC or Fastify; they receive this instead.
 */
export interface ServiceDeps {
  db: Executor;
  crypto: PhiCrypto;
  /** Current time (UTC). Injected so tests can move it. */
  now: () => Date;
}
