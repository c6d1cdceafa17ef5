import { defineConfig } from "vitest/config";

/**
 * Long mode (`npm run test:long`): suites that start throwaway clusters, HAProxy, PgBouncer or
 * pgBackRest, or generate large volumes. Any `*.long.test.ts` under the source trees belongs here;
 * the default `npm test` (vitest.config.ts) never runs them.
 */
export default defineConfig({
  test: {
    include: [
      "server/**/*.long.test.ts",
      "db/**/*.long.test.ts",
      "lib/**/*.long.test.ts",
      "client-sdk/**/*.long.test.ts",
      "workers/**/*.long.test.ts",
      "e2e/**/*.long.test.ts",
    ],
    globalSetup: ["server/test/global-setup.ts"],
    testTimeout: 900_000,
    hookTimeout: 900_000,
    pool: "forks",
    fileParallelism: false,
  },
});
