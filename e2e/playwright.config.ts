import { defineConfig } from "@playwright/test";
import { CHROMIUM_LAUNCH } from "./chromium.ts";

/**
 * Browser suite for the clinic staff panel. Debian's Chromium (Playwright cannot download its
 * own here); Haven is started by `global-setup.ts` on a fresh PostgreSQL database with the demo
 * Synthea bundles imported. Screenshots land in `e2e/artifacts/` (gitignored).
 */
export default defineConfig({
  testDir: ".",
  testMatch: /.*\.spec\.ts$/,
  outputDir: "./artifacts/results",
  globalSetup: "./global-setup.ts",
  workers: 1,
  fullyParallel: false,
  timeout: 180_000,
  expect: { timeout: 10_000 },
  reporter: [["list"]],
  use: {
    baseURL: process.env.HAVEN_E2E_URL ?? "http://127.0.0.1:45100",
    viewport: { width: 1280, height: 800 },
    launchOptions: {
      ...CHROMIUM_LAUNCH,
    },
    trace: "off",
  },
});
