import { readdirSync } from "node:fs";
import { join } from "node:path";
import { sql } from "drizzle-orm";
import { getTableConfig, pgTable, text, uuid } from "drizzle-orm/pg-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { rowsOf } from "../../db/rows.ts";
import { blindIndexColumn, encrypted } from "../../db/schema/columns.ts";
import { breakGlassGrants } from "../../db/schema/index.ts";
import { DEMO_BUNDLE_DIR } from "../demo/seed.ts";
import { importFiles } from "../fhir/importer.ts";
import { enrolTotpDirectly } from "../mfa/service.ts";
import { makeOrganization, makePatient, makeUser } from "../test/factory.ts";
import { createHarness, type Harness } from "../test/harness.ts";
import {
  blindIndexColumns,
  encryptedColumnNames,
  encryptedColumns,
  RegistryError,
} from "./registry.ts";
import { REINDEX_RULES } from "./reindex.ts";

/**
 * The key registry is derived from the schema, and this suite is the guard that it misses
 * nothing: every column that holds an envelope in a populated database must be registered, and
 * every registered value must open with the AAD convention `(table, column, primary key)` that
 * rotation relies on. Every blind-index column must have a reindex rule.
 */
let h: Harness;

beforeAll(async () => {
  h = await createHarness();
  const files = readdirSync(DEMO_BUNDLE_DIR)
    .filter((f) => f.endsWith(".json"))
    .map((f) => join(DEMO_BUNDLE_DIR, f));
  await importFiles(h.deps, files);
  const org = await makeOrganization(h.deps);
  const patient = await makePatient(h.deps, org);
  const clinician = await makeUser(h.deps, "clinician", org);
  await enrolTotpDirectly(h.deps, clinician.userId);
  const grantId = "01900000-0000-7000-8000-0000000000a1";
  await h.deps.db.insert(breakGlassGrants).values({
    id: grantId,
    organizationId: org,
    patientId: patient.id,
    userId: clinician.userId,
    reason: h.deps.crypto.seal("break_glass_grants", "reason", grantId, "unconscious in the ED"),
    reviewNote: h.deps.crypto.seal("break_glass_grants", "review_note", grantId, "ok"),
    grantedAt: new Date("2030-01-01T00:00:00Z"),
    expiresAt: new Date("2030-01-01T01:00:00Z"),
  });
});
afterAll(async () => {
  await h?.close();
});

describe("encrypted column registry", () => {
  it("is derived from the schema and holds every known encrypted column", () => {
    const names = encryptedColumnNames();
    for (const known of [
      "patients.demographics",
      "patients.resource",
      "clinical_entries.body",
      "appointments.reason",
      "users.email",
      "users.totp_secret",
      "break_glass_grants.reason",
      "break_glass_grants.review_note",
      "invitations.email",
    ]) {
      expect(names).toContain(known);
    }
    expect(new Set(names).size).toBe(names.length);
    for (const c of encryptedColumns()) {
      expect(c.idColumn).toBe("id");
      expect(c.idType).toBe("uuid");
    }
  });

  it("picks up a column declared with encrypted() in any table, and refuses a table without a primary key", () => {
    const withKey = pgTable("later_table", {
      id: uuid("id").primaryKey(),
      note: encrypted("note"),
      plain: text("plain"),
      noteIndex: blindIndexColumn("note_index"),
    });
    expect(
      encryptedColumns({ withKey }).map((c) => `${c.table}.${c.column}:${c.idColumn}`),
    ).toEqual(["later_table.note:id"]);
    expect(blindIndexColumns({ withKey }).map((c) => `${c.table}.${c.column}`)).toEqual([
      "later_table.note_index",
    ]);
    const noKey = pgTable("no_key", { note: encrypted("note") });
    expect(() => encryptedColumns({ noKey })).toThrow(RegistryError);
  });

  it("every text column that holds an envelope in a populated database is registered", async () => {
    const registered = new Set(encryptedColumnNames());
    const columns = rowsOf<{ table_name: string; column_name: string }>(
      await h.deps.db.execute(sql`
        SELECT table_name, column_name FROM information_schema.columns
        WHERE table_schema = 'public' AND data_type IN ('text', 'character varying', 'jsonb', 'json')`),
    );
    expect(columns.length).toBeGreaterThan(20);
    const holding: string[] = [];
    for (const { table_name, column_name } of columns) {
      const [row] = rowsOf<{ n: number }>(
        await h.deps.db.execute(
          sql`SELECT count(*)::int AS n FROM ${sql.identifier(table_name)} WHERE ${sql.identifier(column_name)}::text LIKE 'hv1:%'`,
        ),
      );
      if ((row?.n ?? 0) > 0) holding.push(`${table_name}.${column_name}`);
    }
    // The populated database exercises the main encrypted columns, so the scan means something.
    expect(holding).toEqual(
      expect.arrayContaining([
        "patients.demographics",
        "clinical_entries.body",
        "appointments.reason",
        "users.email",
        "users.totp_secret",
        "break_glass_grants.reason",
      ]),
    );
    expect(holding.filter((c) => !registered.has(c))).toEqual([]);
  });

  it("every registered value opens with AAD (table, column, primary key) — the rotation convention", async () => {
    let opened = 0;
    for (const c of encryptedColumns()) {
      const rows = rowsOf<{ id: string; value: string }>(
        await h.deps.db.execute(
          sql`SELECT ${sql.identifier(c.idColumn)}::text AS id, ${sql.identifier(c.column)} AS value FROM ${sql.identifier(c.table)} WHERE ${sql.identifier(c.column)} IS NOT NULL`,
        ),
      );
      for (const r of rows) {
        expect(() => h.deps.crypto.open(c.table, c.column, r.id, r.value)).not.toThrow();
        opened++;
      }
    }
    expect(opened).toBeGreaterThan(500);
  });
});

describe("blind-index columns", () => {
  it("every blind-index column in the schema is rebuilt by a reindex rule", () => {
    const covered = new Set(
      REINDEX_RULES.flatMap((r) =>
        r.targets.map((t) => `${getTableConfig(r.table).name}.${t.name}`),
      ),
    );
    const missing = blindIndexColumns()
      .map((c) => `${c.table}.${c.column}`)
      .filter((c) => !covered.has(c));
    expect(missing).toEqual([]);
    expect(blindIndexColumns().length).toBeGreaterThanOrEqual(5);
  });
});
