/**
 * How Haven's browser checks launch Debian's Chromium (Playwright cannot download its own browser
 * on these machines): the binary (override with `CHROMIUM_PATH`) and the flags for a headless,
 * sandbox-less CI container. Shared by the Playwright config and `bench/panel.ts`.
 */
export const CHROMIUM_LAUNCH = {
  executablePath: process.env.CHROMIUM_PATH ?? "/usr/bin/chromium",
  args: [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
  ],
};
