import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { openDatabase } from "../../db/client.ts";
import { PhiCrypto } from "../crypto/phi.ts";
import { testKeyring } from "../test/db.ts";
import { makeOrganization, makePatient } from "../test/factory.ts";
import { takeBackup } from "./backup.ts";
import { restoreBackup } from "./restore.ts";

/** The embedded default backs up through the normal open path (PGlite dumpDataDir) and restores. */
const work = await mkdtemp(join(tmpdir(), "haven-embedded-backup-"));
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

describe("embedded backup", () => {
  it("dumps the PGlite data directory with a manifest and restores it verified", async () => {
    const keyring = testKeyring();
    const handle = await openDatabase({ pgliteDir: join(work, "source") });
    await handle.migrate();
    const deps = { db: handle.db, crypto: new PhiCrypto(keyring), now: () => new Date() };
    const org = await makeOrganization(deps);
    for (let i = 0; i < 3; i++) await makePatient(deps, org);
    const backup = await takeBackup({ handle, outDir: join(work, "backups") });
    await handle.close();
    expect(backup.manifest.payload.format).toBe("pglite-datadir-tgz");
    expect(backup.manifest.rowCounts.patients).toBe(3);

    const restored = await restoreBackup({
      backupDir: backup.dir,
      target: { pgliteDir: join(work, "restored") },
      keyring,
    });
    expect(restored.verification.rowCounts.find((r) => r.table === "patients")).toEqual({
      table: "patients",
      expected: 3,
      actual: 3,
    });
    expect(restored.verification.decrypted.find((d) => d.table === "patients")?.sampled).toBe(3);
  }, 120_000);
});
