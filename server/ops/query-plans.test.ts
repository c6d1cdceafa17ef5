import { createTestDatabase } from "../test/db.ts";
import { planSuite, scaledVolume } from "./test/plan-suite.ts";

/**
 * Query plans checked, CI size: the 10k patients (fewer make the planner rightly scan
 * `patients` in the audit search's organization subquery), a tenth of its appointments and audit
 * events (10k, 100k) so generation stays near 15 s; the chain-page check needs 1M events and runs
 * in `npm run test:long` (`query-plans.long.test.ts`, full volume, pg_stat_statements).
 */
planSuite({
  size: scaledVolume(1, 0.1, 0.1),
  open: async () => {
    const db = await createTestDatabase({ maxConnections: 1 });
    return { url: db.url, close: db.drop };
  },
});
