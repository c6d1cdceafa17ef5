import { configDefaults, defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: [
      "server/**/*.test.ts",
      "db/**/*.test.ts",
      "lib/**/*.test.ts",
      "client-sdk/**/*.test.ts",
      "workers/**/*.test.ts",
      "examples/**/*.test.ts",
    ],
    // Long-mode suites run only under `npm run test:long` (vitest.long.config.ts).
    exclude: [...configDefaults.exclude, "**/*.long.test.ts"],
    globalSetup: ["server/test/global-setup.ts"],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: "forks",
  },
});
