import { randomBytes } from "node:crypto";
import postgres from "postgres";
import { afterAll, describe, expect, inject, it } from "vitest";
import { restoreDrill } from "./test/drill.ts";

/**
 * Restore drill in the default run (a backup nobody restored is not a backup): back up a database with fixtures and bookings,
 * restore into a NEW database on the test cluster, start Haven on it, check decrypt, booking,
 * chain head and the append-only refusal. Long mode repeats it into a fresh cluster
 * (`restore-cluster.long.test.ts`).
 */
const adminUrl = inject("havenAdminUrl");
const name = `haven_test_${inject("havenRunId")}_${randomBytes(4).toString("hex")}_restored`;
const url = new URL(adminUrl);
url.pathname = `/${name}`;

afterAll(async () => {
  const admin = postgres(adminUrl, { max: 1, onnotice: () => {} });
  await admin.unsafe(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
  await admin.end();
});

describe("restore drill", () => {
  it("backs up, restores into a new database and serves from it", async () => {
    const report = await restoreDrill({ url: url.toString(), adminUrl });
    console.log(`[restore drill] ${JSON.stringify(report, null, 2)}`);
    expect(report.bookingAfterRestore).toBeTruthy();
  }, 180_000);
});
