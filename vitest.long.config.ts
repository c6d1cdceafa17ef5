import { defineConfig } from "vitest/config";

/** `npm run test:long`: suites too slow for every CI run (minutes each); not part of `npm test`. */
export default defineConfig({
  test: {
    include: ["server/**/*.long.test.ts"],
    globalSetup: ["server/test/global-setup.ts"],
    testTimeout: 600_000,
    hookTimeout: 120_000,
    pool: "forks",
  },
});
