import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { auditEvents } from "../../db/schema/index.ts";
import { sealAuditChain, verifyAuditChain } from "../audit/chain.ts";
import { createTestDatabase, type TestDatabase, testCrypto } from "../test/db.ts";
import { importFiles } from "./importer.ts";

/**
 * Issue 13 (Medium): `npm run import` wrote PHI with no audit row. Every imported bundle is now one
 * `fhir.import` operator action, in the bundle's own transaction, with per-type counts and no PHI.
 */
const SYNTHEA = resolve(dirname(fileURLToPath(import.meta.url)), "../../db/seed/synthea");
const FILES = [
  "hospitalInformation1603148702656.json",
  "practitionerInformation1603148702656.json",
  "Bibi254_Schowalter414_475d72ca-91c7-7211-97e3-f000af33fc04.json",
  "Cris921_Rath779_d4519c92-d241-b2b2-7360-291d60be699e.json",
].map((f) => join(SYNTHEA, f));

let t: TestDatabase;
beforeAll(async () => {
  t = await createTestDatabase();
});
afterAll(async () => {
  await t?.drop();
});

describe("FHIR import audit", () => {
  it("one fhir.import row per bundle, with counts, operator and no PHI; a dry run leaves none", async () => {
    const deps = { db: t.handle.db, crypto: testCrypto(), now: () => new Date() };
    await importFiles(deps, FILES, { dryRun: true, operator: "ops@host" });
    const none = await t.handle.db
      .select()
      .from(auditEvents)
      .where(eq(auditEvents.action, "fhir.import"));
    expect(none).toHaveLength(0);

    const summary = await importFiles(deps, FILES, { operator: "ops@host" });
    const rows = await t.handle.db
      .select()
      .from(auditEvents)
      .where(eq(auditEvents.action, "fhir.import"));
    expect(rows).toHaveLength(FILES.length);
    expect(summary.files).toBe(FILES.length);
    const patientsCreated = rows.reduce(
      (n, r) => n + Number(r.details?.["created.Patient"] ?? 0),
      0,
    );
    expect(patientsCreated).toBe(2);
    for (const r of rows) {
      expect(r.outcome).toBe("allowed");
      expect(r.resourceType).toBe("Bundle");
      expect(r.resourceId).toMatch(/^[0-9a-f]{64}$/);
      const d = r.details as Record<string, unknown>;
      expect(d.operator).toBe("ops@host");
      expect(typeof d.entries).toBe("number");
      const text = JSON.stringify(r);
      expect(text).not.toMatch(/Bibi254|Schowalter|Cris921|Rath779|synthea/);
    }
    await sealAuditChain(t.handle.db, { full: true });
    expect((await verifyAuditChain(t.handle.db)).ok).toBe(true);
  });
});
