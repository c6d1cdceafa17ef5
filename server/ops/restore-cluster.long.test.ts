import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createCluster, type ThrowawayCluster } from "./cluster.ts";
import { restoreDrill } from "./test/drill.ts";

/**
 * Restore drill into a FRESH cluster (issue 15 §2, long mode): the same drill as the default run,
 * but the target is a brand-new `initdb` cluster on port 47050 where neither the database nor the
 * `haven_app` role exists, so the restore must rebuild the role and its grants.
 */
const PORT = 47050;
let cluster: ThrowawayCluster;

beforeAll(async () => {
  cluster = await createCluster({ port: PORT });
}, 120_000);

afterAll(async () => {
  await cluster?.destroy();
});

describe("restore drill into a fresh cluster", () => {
  it("restores, rebuilds haven_app, serves, keeps the audit trail append-only", async () => {
    expect(await cluster.psql("SELECT count(*) FROM pg_roles WHERE rolname = 'haven_app'")).toBe(
      "0\n",
    );
    const report = await restoreDrill({
      url: cluster.url("haven_restored"),
      adminUrl: cluster.url(),
    });
    console.log(`[restore fresh cluster] ${JSON.stringify(report)}`);
    expect(report.bookingAfterRestore).toBeTruthy();
    expect(await cluster.psql("SELECT count(*) FROM pg_roles WHERE rolname = 'haven_app'")).toBe(
      "1\n",
    );
  }, 300_000);
});
