import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { TRPCError } from "@trpc/server";
import { eq, sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { patients } from "../../db/schema/index.ts";
import { DecryptionError } from "../crypto/envelope.ts";
import { DEMO_BUNDLE_DIR } from "../demo/seed.ts";
import { importFiles } from "../fhir/importer.ts";
import { makeUser } from "./factory.ts";
import { actorFor, createHarness, type Harness } from "./harness.ts";

/**
 * PHI never sits in plaintext in the database (HIPAA 45 CFR 164.312(a)(2)(iv)): import every
 * shipped Synthea bundle, then scan every text-like column of every table — and a pg_dump of the
 * whole database — for each patient's family name, phone, SSN and medical record number (MRN,
 * 45 CFR 164.514(b)(2)(i)(H); in Synthea it equals the Patient id).
 */
interface Needles {
  family: string[];
  phone: string[];
  ssn: string[];
  mrn: string[];
}

function fixtureNeedles(): Needles {
  const needles: Needles = { family: [], phone: [], ssn: [], mrn: [] };
  for (const file of readdirSync(DEMO_BUNDLE_DIR).filter((f) => f.endsWith(".json"))) {
    const bundle = JSON.parse(readFileSync(join(DEMO_BUNDLE_DIR, file), "utf8")) as {
      entry: { resource: Record<string, unknown> }[];
    };
    for (const { resource } of bundle.entry) {
      if (resource.resourceType !== "Patient") continue;
      const r = resource as {
        name?: { family?: string }[];
        telecom?: { system?: string; value?: string }[];
        identifier?: {
          system?: string;
          value?: string;
          type?: { coding?: { code?: string }[] };
        }[];
      };
      for (const n of r.name ?? []) if (n.family) needles.family.push(n.family);
      for (const t of r.telecom ?? [])
        if (t.system === "phone" && t.value) needles.phone.push(t.value);
      for (const i of r.identifier ?? []) {
        if (i.system === "http://hl7.org/fhir/sid/us-ssn" && i.value) needles.ssn.push(i.value);
        if (i.value && i.type?.coding?.some((c) => c.code === "MR")) needles.mrn.push(i.value);
      }
    }
  }
  return needles;
}

let h: Harness;
const needles = fixtureNeedles();

beforeAll(async () => {
  h = await createHarness();
  const files = readdirSync(DEMO_BUNDLE_DIR)
    .filter((f) => f.endsWith(".json"))
    .map((f) => join(DEMO_BUNDLE_DIR, f));
  await importFiles(h.deps, files);
});
afterAll(async () => {
  await h?.close();
});

describe("no plaintext PHI at rest", () => {
  it("the fixtures give needles for every patient", () => {
    expect(needles.family.length).toBeGreaterThanOrEqual(7);
    expect(needles.phone.length).toBeGreaterThanOrEqual(7);
    expect(needles.ssn.length).toBeGreaterThanOrEqual(7);
    expect(needles.mrn.length).toBeGreaterThanOrEqual(7);
  });

  async function scan(values: string[]): Promise<string[]> {
    const columns = (await h.deps.db.execute(sql`
      SELECT table_name, column_name FROM information_schema.columns
      WHERE table_schema = 'public' AND data_type IN ('text', 'character varying', 'jsonb', 'json', 'bytea', 'USER-DEFINED', 'ARRAY')
    `)) as unknown as { table_name: string; column_name: string }[];
    expect(columns.length).toBeGreaterThan(10);
    const hits: string[] = [];
    for (const { table_name, column_name } of columns) {
      for (const needle of values) {
        const res = (await h.deps.db.execute(
          sql`SELECT count(*)::int AS n FROM ${sql.identifier(table_name)} WHERE ${sql.identifier(column_name)}::text ILIKE ${`%${needle}%`}`,
        )) as unknown as { n: number }[];
        if ((res[0]?.n ?? 0) > 0) hits.push(`${table_name}.${column_name}`);
      }
    }
    return hits;
  }

  it("no text, varchar, jsonb or bytea column of any table contains a family name, phone, SSN or MRN", async () => {
    expect(
      await scan([...needles.family, ...needles.phone, ...needles.ssn, ...needles.mrn]),
    ).toEqual([]);
  });

  it("the scan does find a planted plaintext value (it can fail)", async () => {
    const canary = needles.family[0] ?? "";
    await h.deps.db.execute(
      sql`INSERT INTO organizations (id, name) VALUES ('01900000-0000-7000-8000-00000000c0de', ${`Canary ${canary}`})`,
    );
    expect(await scan([canary])).toEqual(["organizations.name"]);
    await h.deps.db.execute(
      sql`DELETE FROM organizations WHERE id = '01900000-0000-7000-8000-00000000c0de'`,
    );
  });

  it("a pg_dump of the whole database contains none of them either", () => {
    let dump: string;
    try {
      dump = execFileSync("pg_dump", ["--data-only", h.testDb.url], {
        maxBuffer: 512 * 1024 * 1024,
        encoding: "utf8",
      });
    } catch (err) {
      // pg_dump refuses a newer server major version; the column scan above still holds.
      if (String((err as { stderr?: string }).stderr ?? "").includes("server version mismatch"))
        return;
      throw err;
    }
    expect(dump.length).toBeGreaterThan(10_000);
    for (const needle of [...needles.family, ...needles.phone, ...needles.ssn, ...needles.mrn]) {
      expect(dump.includes(needle), needle).toBe(false);
    }
  });

  it("the importer did store them — encrypted — and they decrypt for an authorised reader", async () => {
    const rows = await h.deps.db
      .select({ id: patients.id, d: patients.demographics })
      .from(patients);
    expect(rows).toHaveLength(7);
    const families = rows.map(
      (r) =>
        h.deps.crypto.open<{ name: { family: string } }>("patients", "demographics", r.id, r.d).name
          .family,
    );
    expect(families.sort()).toEqual([...needles.family].sort());
  });
});

describe("associated data binds each ciphertext to its row", () => {
  it("a demographics ciphertext moved to another patient row no longer decrypts", async () => {
    const [a, b] = await h.deps.db.select().from(patients).limit(2);
    if (!a || !b) throw new Error("need two patients");
    // As an attacker with SQL access would: copy A's ciphertext over B's.
    await h.deps.db
      .update(patients)
      .set({ demographics: a.demographics })
      .where(eq(patients.id, b.id));
    expect(() => h.deps.crypto.open("patients", "demographics", b.id, a.demographics)).toThrow(
      DecryptionError,
    );
    // Through the API the read fails closed: a generic internal error, no data, no PHI.
    const admin = await makeUser(h.deps, "admin", b.organizationId);
    const actor = await actorFor(h, admin.userId);
    const err = await h
      .caller(actor)
      .patients.get({ patientId: b.id })
      .then(() => null)
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TRPCError);
    expect((err as TRPCError).code).toBe("INTERNAL_SERVER_ERROR");
    // A's own row still decrypts: nothing else was disturbed.
    expect(() =>
      h.deps.crypto.open("patients", "demographics", a.id, a.demographics),
    ).not.toThrow();
    // restore B
    await h.deps.db
      .update(patients)
      .set({ demographics: b.demographics })
      .where(eq(patients.id, b.id));
    expect(() =>
      h.deps.crypto.open("patients", "demographics", b.id, b.demographics),
    ).not.toThrow();
  });

  it("a ciphertext moved between columns (demographics → resource) does not decrypt", async () => {
    const [a] = await h.deps.db.select().from(patients).limit(1);
    if (!a) throw new Error("need a patient");
    expect(() => h.deps.crypto.open("patients", "resource", a.id, a.demographics)).toThrow(
      DecryptionError,
    );
  });
});
