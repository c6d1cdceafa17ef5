/**
 * The admin panel's weight and speed: JS gzip size of the built `admin/dist` (every chunk, and the
 * ones the schedule screen loads), and time to interactive of the schedule screen measured in
 * Chromium with the Performance API — `performance.mark("haven:schedule-interactive")`, set by the
 * screen once the grid with its data is rendered, relative to navigation start. Starts Haven on a
 * fresh Postgres database with the demo data (the e2e global setup) and a staff session.
 * Usage: `npm run bench:panel [-- runs=5]`. Prints sizes in KiB and TTI per run and the median, ms.
 */

import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { chromium } from "@playwright/test";
import { CHROMIUM_LAUNCH } from "../e2e/chromium.ts";
import globalSetup from "../e2e/global-setup.ts";

const dist = join(import.meta.dirname, "..", "admin", "dist", "assets");
const runs = Number(process.argv.find((a) => a.startsWith("runs="))?.slice(5) ?? 5);

const teardown = await globalSetup();
const { sessionFor, state } = await import("../e2e/fixtures.ts");
try {
  const files = (await readdir(dist)).filter((f) => f.endsWith(".js"));
  let total = 0;
  const sizes: Record<string, number> = {};
  for (const f of files) {
    const gz = gzipSync(await readFile(join(dist, f)), { level: 9 }).length;
    sizes[f] = gz;
    total += gz;
  }
  const browser = await chromium.launch({
    ...CHROMIUM_LAUNCH,
  });
  const tti: number[] = [];
  const loaded = new Set<string>();
  for (let i = 0; i < runs; i++) {
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    await context.addCookies([
      { name: "haven_session", value: await sessionFor("staff"), url: state().url, httpOnly: true },
    ]);
    const page = await context.newPage();
    page.on("response", (r) => {
      const m = /\/admin\/assets\/([^/]+\.js)$/.exec(r.url());
      if (m?.[1]) loaded.add(m[1]);
    });
    await page.goto(`${state().url}/admin/schedule`);
    await page.waitForFunction(
      () => performance.getEntriesByName("haven:schedule-interactive").length > 0,
    );
    tti.push(
      await page.evaluate(
        () =>
          performance.getEntriesByName("haven:schedule-interactive")[0]?.startTime ?? Number.NaN,
      ),
    );
    await context.close();
  }
  await browser.close();
  const kib = (n: number) => (n / 1024).toFixed(1);
  const scheduleJs = [...loaded].reduce((a, f) => a + (sizes[f] ?? 0), 0);
  tti.sort((a, b) => a - b);
  console.log(
    `panel JS gzip: total ${kib(total)} KiB in ${files.length} chunks; schedule screen loads ${kib(scheduleJs)} KiB`,
  );
  for (const [f, n] of Object.entries(sizes)) console.log(`  ${f.padEnd(32)} ${kib(n)} KiB`);
  console.log(
    `schedule TTI (ms, cold context each run): ${tti.map((t) => t.toFixed(0)).join(", ")}`,
  );
  console.log(`schedule TTI median: ${tti[Math.floor(tti.length / 2)]?.toFixed(0)} ms`);
} finally {
  await teardown();
}
