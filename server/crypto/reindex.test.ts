import { randomBytes } from "node:crypto";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  clinicalEntries,
  invitations,
  keyMetadata,
  patients,
  users,
} from "../../db/schema/index.ts";
import { DEMO_BUNDLE_DIR } from "../demo/seed.ts";
import { importFiles } from "../fhir/importer.ts";
import type { Demographics } from "../kernel/demographics.ts";
import { makeOrganization, makeUser } from "../test/factory.ts";
import { createHarness, type Harness } from "../test/harness.ts";
import {
  BLIND_INDEX_KEY_NAME,
  blindIndexFingerprint,
  checkBlindIndexKey,
  storedBlindIndexFingerprint,
} from "./fingerprint.ts";
import { KeyError, Keyring } from "./keyring.ts";
import { PhiCrypto } from "./phi.ts";
import { patientIndexes, reindexBlindIndexes } from "./reindex.ts";
import { sourceMac } from "./source-mac.ts";

/**
 * `keys reindex`: after the blind-index key changes, every blind index and FHIR source MAC is
 * rebuilt from the decrypted values; the stored key fingerprint tells servers which index key the
 * data was built with, so one started with another key refuses to serve instead of silently
 * missing every search and login.
 */
const FILES = readdirSync(DEMO_BUNDLE_DIR)
  .filter((f) => f.endsWith(".json"))
  .map((f) => join(DEMO_BUNDLE_DIR, f));
const PHI = randomBytes(32);
const oldKeys = new Keyring({ phiKeys: [{ id: "k1", key: PHI }], blindIndexKey: randomBytes(32) });
const newKeys = new Keyring({ phiKeys: [{ id: "k1", key: PHI }], blindIndexKey: randomBytes(32) });
const oldCrypto = new PhiCrypto(oldKeys);
const newCrypto = new PhiCrypto(newKeys);

let h: Harness;
let staff: Awaited<ReturnType<typeof makeUser>>;

beforeAll(async () => {
  h = await createHarness();
  const deps = { ...h.deps, crypto: oldCrypto };
  expect(await checkBlindIndexKey(h.deps.db, oldCrypto, h.deps.now())).toBe("recorded");
  await importFiles(deps, FILES);
  const org = await makeOrganization(deps);
  staff = await makeUser(deps, "staff", org);
  await h.deps.db.insert(invitations).values({
    id: "01900000-0000-7000-8000-0000000000b1",
    organizationId: org,
    role: "staff",
    email: oldCrypto.seal(
      "invitations",
      "email",
      "01900000-0000-7000-8000-0000000000b1",
      "New.Hire@Clinic.test",
    ),
    emailIndex: oldCrypto.index("user.email", "New.Hire@Clinic.test"),
    tokenHash: randomBytes(16).toString("hex"),
    expiresAt: new Date("2031-01-01T00:00:00Z"),
  });
});
afterAll(async () => {
  await h?.close();
});

describe("blind-index key fingerprint", () => {
  it("is recorded on first start and matched afterwards; another key is refused without naming it", async () => {
    expect(await storedBlindIndexFingerprint(h.deps.db)).toBe(blindIndexFingerprint(oldKeys));
    expect(await checkBlindIndexKey(h.deps.db, oldCrypto, h.deps.now())).toBe("match");
    const err = await checkBlindIndexKey(h.deps.db, newCrypto, h.deps.now()).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(KeyError);
    expect((err as Error).message).toMatch(/keys -- reindex/);
    expect((err as Error).message).not.toContain(newKeys.blindIndexKey.toString("base64"));
  });

  it("without a recorded fingerprint, an account's e-mail index is the probe", async () => {
    const [saved] = await h.deps.db.select().from(keyMetadata);
    await h.deps.db.delete(keyMetadata);
    try {
      await expect(checkBlindIndexKey(h.deps.db, newCrypto, h.deps.now())).rejects.toBeInstanceOf(
        KeyError,
      );
      expect(await storedBlindIndexFingerprint(h.deps.db)).toBeNull();
      expect(await checkBlindIndexKey(h.deps.db, oldCrypto, h.deps.now())).toBe("recorded");
    } finally {
      if (saved) {
        await h.deps.db
          .insert(keyMetadata)
          .values(saved)
          .onConflictDoUpdate({
            target: keyMetadata.name,
            set: { fingerprint: saved.fingerprint },
          });
      }
    }
  });

  it("the fingerprint does not reveal the key and differs per key", () => {
    const fp = blindIndexFingerprint(oldKeys);
    expect(fp).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(fp).not.toBe(blindIndexFingerprint(newKeys));
    expect(fp).not.toContain(oldKeys.blindIndexKey.toString("base64url"));
  });
});

describe("reindex after a blind-index key change", () => {
  it("rebuilds every index and source MAC under the new key, then records it", async () => {
    const counts = {
      patients: (await h.deps.db.select({ id: patients.id }).from(patients)).length,
      entries: (await h.deps.db.select({ id: clinicalEntries.id }).from(clinicalEntries)).length,
      users: (await h.deps.db.select({ id: users.id }).from(users)).length,
    };
    const summary = await reindexBlindIndexes(h.deps.db, newCrypto, { batchSize: 40 });
    expect(summary.complete).toBe(true);
    expect(summary.failed).toBe(0);
    // Every row's keyed values change: patients (indexes, source MAC, FHIR id index), entries,
    // users, invitation.
    expect(summary.updated).toBe(counts.patients * 3 + counts.entries + counts.users + 1);
    expect(counts.entries).toBeGreaterThan(300);
    expect(await storedBlindIndexFingerprint(h.deps.db)).toBe(blindIndexFingerprint(newKeys));
    expect(await checkBlindIndexKey(h.deps.db, newCrypto, h.deps.now())).toBe("match");
    await expect(checkBlindIndexKey(h.deps.db, oldCrypto, h.deps.now())).rejects.toBeInstanceOf(
      KeyError,
    );

    for (const p of await h.deps.db.select().from(patients)) {
      const d = newCrypto.open<Demographics>("patients", "demographics", p.id, p.demographics);
      const want = patientIndexes(newCrypto, d);
      expect(p.mrnIndex).toBe(want.mrn_index);
      expect(p.emailIndex).toBe(want.email_index);
      expect(p.familyBirthIndex).toBe(want.family_birth_index);
      expect(p.mrnIndex).not.toBe(patientIndexes(oldCrypto, d).mrn_index);
      const resource = newCrypto.open<{ id: string }>(
        "patients",
        "resource",
        p.id,
        p.resource as string,
      );
      expect(p.sourceMac).toBe(sourceMac(newCrypto, resource));
      expect(p.fhirId).toBe(newCrypto.indexExact("patient.fhir_id", resource.id));
      expect(p.fhirId).not.toBe(oldCrypto.indexExact("patient.fhir_id", resource.id));
    }
    const entries = await h.deps.db.select().from(clinicalEntries);
    expect(entries.length).toBeGreaterThan(300);
    for (const e of entries) {
      expect(e.sourceMac).toBe(
        sourceMac(newCrypto, newCrypto.open("clinical_entries", "body", e.id, e.body)),
      );
    }
    const [u] = await h.deps.db.select().from(users).where(eq(users.id, staff.userId));
    expect(u?.emailIndex).toBe(newCrypto.index("user.email", staff.email));
    const [inv] = await h.deps.db.select().from(invitations);
    expect(inv?.emailIndex).toBe(newCrypto.index("user.email", "new.hire@clinic.test"));
  });

  it("search, login lookup and idempotent re-import work under the new key; a second run writes nothing", async () => {
    const deps = { ...h.deps, crypto: newCrypto };
    const again = await importFiles(deps, FILES);
    // Unchanged source MACs: nothing is rewritten.
    expect(Object.values(again.created).reduce((a, b) => a + b, 0)).toBe(0);
    expect(Object.values(again.updated).reduce((a, b) => a + b, 0)).toBe(0);
    const [p] = await h.deps.db.select().from(patients).limit(1);
    const d = newCrypto.open<Demographics>(
      "patients",
      "demographics",
      p?.id as string,
      p?.demographics as string,
    );
    const hits = await h.deps.db
      .select({ id: patients.id })
      .from(patients)
      .where(
        eq(patients.familyBirthIndex, newCrypto.familyBirth(d.name.family, d.birthDate as string)),
      );
    expect(hits.map((x) => x.id)).toEqual([p?.id]);
    const second = await reindexBlindIndexes(h.deps.db, newCrypto);
    expect(second.updated).toBe(0);
    expect(second.complete).toBe(true);
    const [meta] = await h.deps.db
      .select()
      .from(keyMetadata)
      .where(eq(keyMetadata.name, BLIND_INDEX_KEY_NAME));
    expect(meta?.fingerprint).toBe(blindIndexFingerprint(newKeys));
  });
});
