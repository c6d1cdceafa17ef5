import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openDatabase } from "../../db/client.ts";
import { DataDirLockedError, lockDataDir } from "../../db/lock.ts";
import { rowsOf } from "../../db/rows.ts";
import { runScript, type ServerProcess, startServerProcess } from "./spawn.ts";

/**
 * One owner per embedded data directory, with real processes: a second server, a
 * FHIR import and a key rotation against a running embedded server all exit non-zero at once with
 * a one-line message naming the owner's pid; the owner keeps serving; after `kill -9` of the owner
 * a new start succeeds with no manual step.
 */
let dir: string;
let owner: ServerProcess | undefined;
const env = () => ({ HAVEN_DATA_DIR: dir, HAVEN_DEMO: "false", HAVEN_AUDIT_SEAL_INTERVAL_MS: "0" });

function expectRefusal(r: { code: number | null; stderr: string; ms: number }, pid: number) {
  expect(r.code).not.toBe(0);
  expect(r.code).not.toBeNull();
  const lines = r.stderr.trim().split("\n");
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(new RegExp(`in use by process ${pid}\\b`));
  expect(lines[0]).toMatch(/Stop that server first, or use PostgreSQL through DATABASE_URL/);
  expect(r.stderr).not.toMatch(/\n\s+at /);
}

async function ready(url: string): Promise<number> {
  return (await fetch(`${url}/readyz`, { signal: AbortSignal.timeout(5000) })).status;
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "haven-lock-"));
  // Generous: a PGlite first start (initdb + migrations) takes minutes on a saturated CI machine.
  owner = await startServerProcess(env(), 180_000);
}, 200_000);

afterAll(async () => {
  await owner?.stop();
  await rm(dir, { recursive: true, force: true });
});

describe("embedded data-directory lock (in process)", () => {
  it("refuses a second lock on the same directory, even in the same process, and frees on release", async () => {
    const other = await mkdtemp(join(tmpdir(), "haven-lock-unit-"));
    try {
      const first = await lockDataDir(join(other, "pglite"));
      expect((await readFile(join(other, "pglite.pid"), "utf8")).trim()).toBe(String(process.pid));
      const err = await lockDataDir(join(other, "pglite")).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(DataDirLockedError);
      expect((err as DataDirLockedError).ownerPid).toBe(process.pid);
      // Another spelling of the same directory is the same lock (real path).
      const viaDots = await lockDataDir(join(other, ".", "pglite", "..", "pglite")).catch(
        (e: unknown) => e,
      );
      expect(viaDots).toBeInstanceOf(DataDirLockedError);
      await first.release();
      const again = await lockDataDir(join(other, "pglite"));
      await again.release();
    } finally {
      await rm(other, { recursive: true, force: true });
    }
  });
});

describe("embedded data-directory lock (real processes)", () => {
  it("a second server on the same directory exits non-zero with the owner's pid; the owner keeps serving", async () => {
    if (!owner) throw new Error("owner not started");
    const second = await runScript("server/main.ts", [], { ...env(), PORT: "0" });
    expectRefusal(second, owner.pid);
    expect(second.ms).toBeLessThan(15_000);
    expect(await ready(owner.url)).toBe(200);
  });

  it("`npm run import` against the running server exits non-zero before importing anything", async () => {
    if (!owner) throw new Error("owner not started");
    const r = await runScript("server/fhir/cli.ts", ["db/seed/synthea"], env());
    expectRefusal(r, owner.pid);
    expect(r.stdout).not.toMatch(/created/);
    expect(await ready(owner.url)).toBe(200);
  });

  it("`npm run keys -- rotate` and `db:migrate` against the running server exit non-zero", async () => {
    if (!owner) throw new Error("owner not started");
    const rotate = await runScript("server/crypto/cli.ts", ["rotate"], env());
    expectRefusal({ ...rotate, stderr: rotate.stderr.replace(/^keys: /, "") }, owner.pid);
    expect(rotate.stdout).not.toMatch(/re-encrypted/);
    const migrate = await runScript("db/migrate-cli.ts", [], env());
    expectRefusal(migrate, owner.pid);
    expect(await ready(owner.url)).toBe(200);
  });

  it("after kill -9 of the owner a new server starts with no manual step, and the refused import wrote nothing", {
    timeout: 240_000,
  }, async () => {
    if (!owner) throw new Error("owner not started");
    await owner.kill9();
    owner = await startServerProcess(env(), 180_000);
    expect(await ready(owner.url)).toBe(200);
    await owner.stop();
    owner = undefined;
    const handle = await openDatabase({ pgliteDir: join(dir, "pglite") });
    try {
      const [row] = rowsOf<{ n: number }>(
        await handle.db.execute(sql`SELECT count(*)::int AS n FROM patients`),
      );
      expect(row?.n).toBe(0);
    } finally {
      await handle.close();
    }
  });
});
