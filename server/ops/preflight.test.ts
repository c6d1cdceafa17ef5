import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { blindIndexFingerprint } from "../crypto/fingerprint.ts";
import { testKeyring } from "../test/db.ts";
import { type BackupManifest, MANIFEST_FORMAT, sha256File } from "./backup.ts";
import { codeMigrations } from "./facts.ts";
import { preflight } from "./restore.ts";

/**
 * Restore refuses, before touching any database, what it cannot restore whole (a half-restored
 * database is worse than none).
 */
let dir: string;
const keyring = testKeyring("k2026");
let manifest: BackupManifest;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "haven-preflight-"));
  await writeFile(join(dir, "haven.dump"), "payload bytes");
  manifest = {
    format: MANIFEST_FORMAT,
    createdAt: new Date().toISOString(),
    source: { kind: "postgres", name: "haven", serverVersion: "15" },
    payload: {
      file: "haven.dump",
      format: "pg_dump-custom",
      bytes: 13,
      sha256: await sha256File(join(dir, "haven.dump")),
    },
    migrations: codeMigrations().map((m) => ({ createdAt: m.when, tag: m.tag })),
    rowCounts: { patients: 1 },
    keys: { idsInUse: ["k2026"], blindIndexFingerprint: blindIndexFingerprint(keyring) },
    auditChainHead: null,
  };
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("restore preflight", () => {
  it("accepts a whole backup with the keys it names", async () => {
    expect(await preflight(dir, manifest, keyring)).toEqual([]);
  });

  it("names the missing PHI key ids and a different blind-index key", async () => {
    const problems = await preflight(
      dir,
      { ...manifest, keys: { ...manifest.keys, idsInUse: ["k2025", "k2026"] } },
      testKeyring("other"),
    );
    expect(problems.join("\n")).toMatch(/"k2025", "k2026" are needed/);
    expect(problems.join("\n")).toMatch(/blind-index key differs/);
  });

  it("refuses a backup from a newer schema", async () => {
    const newer = [...manifest.migrations, { createdAt: 4_102_444_800_000, tag: null }];
    const problems = await preflight(dir, { ...manifest, migrations: newer }, keyring);
    expect(problems.join("\n")).toMatch(
      /newer schema: 1 applied migration\(s\) \(created_at 4102444800000\)/,
    );
  });

  it("refuses a payload that does not match its checksum", async () => {
    const problems = await preflight(
      dir,
      { ...manifest, payload: { ...manifest.payload, sha256: "0".repeat(64) } },
      keyring,
    );
    expect(problems.join("\n")).toMatch(/does not match the manifest's SHA-256/);
  });
});
