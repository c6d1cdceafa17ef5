import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { and, eq, sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { rowsOf } from "../../db/rows.ts";
import { patients } from "../../db/schema/index.ts";
import { DEMO_BUNDLE_DIR } from "../demo/seed.ts";
import { importFiles } from "../fhir/importer.ts";
import type { Demographics } from "../kernel/demographics.ts";
import { makeOrganization, makePatient, makeUser } from "../test/factory.ts";
import { createHarness, type Harness } from "../test/harness.ts";
import { decryptString, envelopeKeyId } from "./envelope.ts";
import { Keyring } from "./keyring.ts";
import { PhiCrypto } from "./phi.ts";
import { encryptedColumns } from "./registry.ts";
import { keyUsage, rotateKeys } from "./rotation.ts";

/**
 * Key rotation (HIPAA 45 CFR 164.312(a)(2)(iv)): the acceptance test — import the Synthea
 * fixtures under key A, rotate to key B with the real CLI while a writer keeps updating patients,
 * SIGKILL the rotation halfway, resume it — plus deterministic tests of the conflict rule, of
 * values that cannot be decrypted, and of a graceful stop.
 */

const ROOT = resolve(fileURLToPath(import.meta.url), "../../..");
const FILES = readdirSync(DEMO_BUNDLE_DIR)
  .filter((f) => f.endsWith(".json"))
  .map((f) => join(DEMO_BUNDLE_DIR, f));

const A = randomBytes(32);
const B = randomBytes(32);
const BLIND = randomBytes(32);
const onlyA = new Keyring({ phiKeys: [{ id: "keyA", key: A }], blindIndexKey: BLIND });
/** An old instance during the roll-out: still encrypts with A, can read B. */
const aFirst = new Keyring({
  phiKeys: [
    { id: "keyA", key: A },
    { id: "keyB", key: B },
  ],
  blindIndexKey: BLIND,
});
/** The new configuration: B encrypts, A still decrypts. */
const bFirst = new Keyring({
  phiKeys: [
    { id: "keyB", key: B },
    { id: "keyA", key: A },
  ],
  blindIndexKey: BLIND,
});
const onlyB = new Keyring({ phiKeys: [{ id: "keyB", key: B }], blindIndexKey: BLIND });

/** Every registered value, decrypted (as exact strings), by `table.column` → primary key. */
async function snapshot(h: Harness, keyring: Keyring): Promise<Map<string, Map<string, string>>> {
  const out = new Map<string, Map<string, string>>();
  for (const c of encryptedColumns()) {
    const rows = rowsOf<{ id: string; value: string }>(
      await h.deps.db.execute(
        sql`SELECT ${sql.identifier(c.idColumn)}::text AS id, ${sql.identifier(c.column)} AS value FROM ${sql.identifier(c.table)} WHERE ${sql.identifier(c.column)} IS NOT NULL`,
      ),
    );
    const m = new Map<string, string>();
    for (const r of rows) {
      m.set(
        r.id,
        decryptString(keyring, { table: c.table, column: c.column, rowId: r.id }, r.value),
      );
    }
    out.set(`${c.table}.${c.column}`, m);
  }
  return out;
}

async function countsByKey(h: Harness): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const u of await keyUsage(h.deps.db)) out[u.keyId] = (out[u.keyId] ?? 0) + u.count;
  return out;
}

function runKeysCli(
  h: Harness,
  args: string[],
): {
  child: ChildProcess;
  done: Promise<{ code: number | null; signal: string | null; stdout: string; stderr: string }>;
} {
  const child = spawn(process.execPath, ["--import", "tsx", "server/crypto/cli.ts", ...args], {
    cwd: ROOT,
    env: {
      PATH: process.env.PATH ?? "",
      NODE_ENV: "test",
      DATABASE_URL: h.testDb.url,
      HAVEN_PHI_KEYS: `keyB:${B.toString("base64")},keyA:${A.toString("base64")}`,
      HAVEN_BLIND_INDEX_KEY: BLIND.toString("base64"),
      HAVEN_MIGRATE_ON_START: "false",
      HAVEN_DATA_DIR: join(ROOT, ".haven-test-unused"),
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout?.on("data", (d: Buffer) => {
    stdout += d.toString();
  });
  child.stderr?.on("data", (d: Buffer) => {
    stderr += d.toString();
  });
  const done = new Promise<{
    code: number | null;
    signal: string | null;
    stdout: string;
    stderr: string;
  }>((res) => child.on("close", (code, signal) => res({ code, signal, stdout, stderr })));
  return { child, done };
}

describe("rotation of the Synthea fixtures from key A to key B under load, killed and resumed", () => {
  let h: Harness;
  const children: ChildProcess[] = [];
  beforeAll(async () => {
    h = await createHarness({ maxConnections: 8 });
  });
  afterAll(async () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
    await h?.close();
  });

  it("afterwards key A protects zero values, every record decrypts and equals what was written, no update is lost", async () => {
    const depsA = { ...h.deps, crypto: new PhiCrypto(onlyA) };
    await importFiles(depsA, FILES);
    const org = await makeOrganization(depsA);
    await makeUser(depsA, "staff", org);
    await makePatient(depsA, org);
    const before = await snapshot(h, aFirst);
    const initial = await countsByKey(h);
    expect(Object.keys(initial)).toEqual(["keyA"]);
    expect(initial.keyA).toBeGreaterThan(500);

    // The writer: keeps editing patients' phone numbers with optimistic concurrency, first as a
    // mix of old (A) and new (B) instances, after the kill as new instances only.
    const patientIds = (await h.deps.db.select({ id: patients.id }).from(patients)).map(
      (p) => p.id,
    );
    const expected = new Map<string, Demographics>();
    let phase: "mixed" | "new" = "mixed";
    let stop = false;
    let writes = 0;
    let counter = 0;
    const writesByPhase = { mixed: 0, new: 0 };
    const writer = (async () => {
      while (!stop) {
        const id = patientIds[counter % patientIds.length] as string;
        counter++;
        const keyring = phase === "mixed" && counter % 2 === 0 ? aFirst : bFirst;
        const crypto = new PhiCrypto(keyring);
        const [row] = await h.deps.db
          .select({ version: patients.version, demographics: patients.demographics })
          .from(patients)
          .where(eq(patients.id, id));
        if (!row) throw new Error("patient vanished");
        const current = crypto.open<Demographics>("patients", "demographics", id, row.demographics);
        const next = { ...current, phone: `555-01-${String(counter).padStart(5, "0")}` };
        const done = await h.deps.db
          .update(patients)
          .set({
            demographics: crypto.seal("patients", "demographics", id, next),
            version: row.version + 1,
          })
          .where(and(eq(patients.id, id), eq(patients.version, row.version)))
          .returning({ id: patients.id });
        if (done.length === 1) {
          expected.set(id, next);
          writes++;
          writesByPhase[phase]++;
        }
        await sleep(3);
      }
    })();

    // 1. Rotate with the real CLI, slowly, and SIGKILL it halfway.
    const first = runKeysCli(h, ["rotate", "--batch-size", "20", "--delay-ms", "25", "--json"]);
    children.push(first.child);
    const target = Math.floor((initial.keyA ?? 0) * 0.3);
    for (;;) {
      const now = await countsByKey(h);
      if ((now.keyB ?? 0) >= target) break;
      if (first.child.exitCode !== null)
        throw new Error(`rotation ended early: ${(await first.done).stderr}`);
      await sleep(10);
    }
    first.child.kill("SIGKILL");
    const killed = await first.done;
    expect(killed.signal).toBe("SIGKILL");
    const halfway = await countsByKey(h);
    expect(halfway.keyA).toBeGreaterThan(0);
    expect(halfway.keyB).toBeGreaterThan(0);

    // Old instances are gone now; the writer keeps going as a new instance during the resume.
    phase = "new";
    await sleep(50);
    const second = runKeysCli(h, ["rotate", "--batch-size", "50", "--json"]);
    children.push(second.child);
    const resumed = await second.done;
    expect(resumed.code, resumed.stderr).toBe(0);
    const summary = JSON.parse(resumed.stdout) as {
      remaining: number;
      reencrypted: number;
      conflicts: number;
      activeKeyId: string;
    };
    expect(summary.activeKeyId).toBe("keyB");
    expect(summary.remaining).toBe(0);
    expect(summary.reencrypted).toBeGreaterThan(0);
    await sleep(50);
    stop = true;
    await writer;
    expect(writesByPhase.mixed).toBeGreaterThan(0);
    expect(writesByPhase.new).toBeGreaterThan(0);
    expect(writes).toBe(writesByPhase.mixed + writesByPhase.new);

    // Key A protects nothing any more — in the database and in `npm run keys -- status`.
    const usage = await keyUsage(h.deps.db);
    expect(usage.filter((u) => u.keyId !== "keyB")).toEqual([]);
    const status = await runKeysCli(h, ["status", "--json"]).done;
    expect(status.code, status.stderr).toBe(0);
    const reported = JSON.parse(status.stdout) as {
      activeKeyId: string;
      usage: { keyId: string; count: number }[];
    };
    expect(reported.activeKeyId).toBe("keyB");
    expect(reported.usage.filter((u) => u.keyId === "keyA")).toEqual([]);
    expect(reported.usage.reduce((n, u) => n + u.count, 0)).toBe(initial.keyA);
    // Every value opens with key B alone, and equals what was last written.
    const after = await snapshot(h, onlyB);
    expect([...after.keys()]).toEqual([...before.keys()]);
    for (const [column, rows] of before) {
      const now = after.get(column) as Map<string, string>;
      expect([...now.keys()].sort()).toEqual([...rows.keys()].sort());
      for (const [id, plain] of rows) {
        if (column === "patients.demographics" && expected.has(id)) {
          expect(JSON.parse(now.get(id) as string)).toEqual(expected.get(id));
        } else {
          expect(now.get(id)).toBe(plain);
        }
      }
    }
    // No lost update: every patient the writer touched holds the writer's last successful write.
    expect(expected.size).toBeGreaterThan(0);
    console.log(
      `rotation: ${initial.keyA} values under A; killed at A=${halfway.keyA} B=${halfway.keyB}; ` +
        `resume re-encrypted ${summary.reencrypted} (${summary.conflicts} conflicts retried); ` +
        `${writes} concurrent patient writes (${writesByPhase.mixed} mixed A/B, ${writesByPhase.new} B)`,
    );
  }, 120_000);
});

describe("rotation rules", () => {
  let h: Harness;
  beforeAll(async () => {
    h = await createHarness();
  });
  afterAll(async () => {
    await h?.close();
  });

  it("a value changed between read and write is never overwritten: counted as a conflict, then re-encrypted in a later pass", async () => {
    const depsA = { ...h.deps, crypto: new PhiCrypto(onlyA) };
    const org = await makeOrganization(depsA);
    const patient = await makePatient(depsA, org);
    const oldInstance = new PhiCrypto(aFirst);
    const edited = { ...patient.demographics, phone: "555-99-0000" };
    let raced = false;
    const summary = await rotateKeys(h.deps.db, bFirst, {
      columns: encryptedColumns().filter(
        (c) => c.table === "patients" && c.column === "demographics",
      ),
      beforeUpdate: async (_entry, ids) => {
        if (raced || !ids.includes(patient.id)) return;
        raced = true;
        // An old instance writes the patient (under key A) after rotation read it.
        await h.deps.db
          .update(patients)
          .set({ demographics: oldInstance.seal("patients", "demographics", patient.id, edited) })
          .where(eq(patients.id, patient.id));
      },
    });
    expect(raced).toBe(true);
    expect(summary.conflicts).toBe(1);
    expect(summary.remaining).toBe(0);
    const [row] = await h.deps.db.select().from(patients).where(eq(patients.id, patient.id));
    expect(envelopeKeyId(row?.demographics as string)).toBe("keyB");
    expect(
      new PhiCrypto(onlyB).open(
        "patients",
        "demographics",
        patient.id,
        row?.demographics as string,
      ),
    ).toEqual(edited);
  });

  it("a value that cannot be decrypted is reported by id and left untouched; the rest is rotated", async () => {
    const depsA = { ...h.deps, crypto: new PhiCrypto(onlyA) };
    const org = await makeOrganization(depsA);
    const good = await makePatient(depsA, org);
    const bad = await makePatient(depsA, org);
    const ghost = new PhiCrypto(
      new Keyring({ phiKeys: [{ id: "ghost", key: randomBytes(32) }], blindIndexKey: BLIND }),
    );
    const ghostValue = ghost.seal("patients", "demographics", bad.id, bad.demographics);
    await h.deps.db
      .update(patients)
      .set({ demographics: ghostValue })
      .where(eq(patients.id, bad.id));
    const columns = encryptedColumns().filter((c) => c.table === "patients");
    const summary = await rotateKeys(h.deps.db, bFirst, { columns });
    const demo = summary.columns.find((c) => c.column === "demographics");
    expect(demo?.failed).toBe(1);
    expect(demo?.failedIds).toEqual([bad.id]);
    expect(summary.remaining).toBe(1);
    const [badRow] = await h.deps.db.select().from(patients).where(eq(patients.id, bad.id));
    expect(badRow?.demographics).toBe(ghostValue);
    const [goodRow] = await h.deps.db.select().from(patients).where(eq(patients.id, good.id));
    expect(envelopeKeyId(goodRow?.demographics as string)).toBe("keyB");
    const usage = await keyUsage(h.deps.db, columns);
    expect(usage.find((u) => u.keyId === "ghost")?.count).toBe(1);
    await h.deps.db.delete(patients).where(eq(patients.id, bad.id));
  });

  it("stops between batches when asked and finishes on the next run (resumable without state)", async () => {
    const depsA = { ...h.deps, crypto: new PhiCrypto(onlyA) };
    const org = await makeOrganization(depsA);
    for (let i = 0; i < 30; i++) await makePatient(depsA, org);
    const columns = encryptedColumns().filter(
      (c) => c.table === "patients" && c.column === "demographics",
    );
    const controller = new AbortController();
    const first = await rotateKeys(h.deps.db, bFirst, {
      columns,
      batchSize: 5,
      signal: controller.signal,
      onProgress: (p) => {
        if (p.done >= 10) controller.abort();
      },
    });
    expect(first.aborted).toBe(true);
    expect(first.reencrypted).toBe(10);
    expect(first.remaining).toBeGreaterThan(0);
    const second = await rotateKeys(h.deps.db, bFirst, { columns, batchSize: 5 });
    expect(second.aborted).toBe(false);
    expect(second.reencrypted).toBe(first.remaining);
    expect(second.remaining).toBe(0);
    const again = await rotateKeys(h.deps.db, bFirst, { columns });
    expect(again.total).toBe(0);
    expect(again.reencrypted).toBe(0);
  });
});
