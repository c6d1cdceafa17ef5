import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: [
      "server/**/*.test.ts",
      "db/**/*.test.ts",
      "lib/**/*.test.ts",
      "client-sdk/**/*.test.ts",
      "workers/**/*.test.ts",
    ],
    // Long suites run under `npm run test:long` (vitest.long.config.ts) only.
    exclude: ["**/node_modules/**", "**/*.long.test.ts"],
    globalSetup: ["server/test/global-setup.ts"],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: "forks",
  },
});
