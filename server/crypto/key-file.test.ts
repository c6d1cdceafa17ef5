import { randomBytes } from "node:crypto";
import { chmod, mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { decryptString, encryptString, envelopeKeyId } from "./envelope.ts";
import { FileKeyProvider } from "./key-file.ts";
import { KeyError, Keyring } from "./keyring.ts";

let dir: string;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "haven-key-file-"));
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function writeKeyFile(path: string, body: string, mode: number): Promise<void> {
  await writeFile(path, body, { mode });
  await chmod(path, mode); // umask may have stripped bits from `mode`
}

function validBody(): string {
  return JSON.stringify({
    version: 1,
    activeKeyId: "k1",
    phiKeys: [{ id: "k1", key: randomBytes(32).toString("base64") }],
    blindIndexKey: randomBytes(32).toString("base64"),
  });
}

describe("FileKeyProvider", () => {
  it("creates a 0600 key file with fresh 32-byte keys on first load", async () => {
    const path = join(dir, "keys.json");
    const provider = new FileKeyProvider(path);
    expect(provider.name).toBe("file");
    expect(provider.created).toBe(false);

    const m = await provider.load();
    expect(provider.created).toBe(true);
    expect((await stat(path)).mode & 0o777).toBe(0o600);

    expect(m.phiKeys).toHaveLength(1);
    expect(m.phiKeys[0]?.key).toHaveLength(32);
    expect(m.blindIndexKey).toHaveLength(32);
    expect(m.activeKeyId).toBe(m.phiKeys[0]?.id);
    expect(m.phiKeys[0]?.key.equals(m.blindIndexKey)).toBe(false);

    const kr = new Keyring(m);
    expect(kr.activeKeyId).toMatch(/^k\d{8}$/);

    const onDisk = JSON.parse(await readFile(path, "utf8")) as { version: number };
    expect(onDisk.version).toBe(1);
  });

  it("creates missing parent directories", async () => {
    const path = join(dir, "nested", "deeper", "keys.json");
    const provider = new FileKeyProvider(path);
    const m = await provider.load();
    expect(provider.created).toBe(true);
    expect(m.blindIndexKey).toHaveLength(32);
    expect((await stat(path)).mode & 0o777).toBe(0o600);
  });

  it("a second provider on the same path loads the same keys and does not recreate the file", async () => {
    const path = join(dir, "keys.json");
    const first = new FileKeyProvider(path);
    const a = await first.load();
    const before = await readFile(path, "utf8");

    const second = new FileKeyProvider(path);
    const b = await second.load();
    expect(second.created).toBe(false);
    expect(await readFile(path, "utf8")).toBe(before);

    expect(b.activeKeyId).toBe(a.activeKeyId);
    expect(b.phiKeys.map((k) => k.id)).toEqual(a.phiKeys.map((k) => k.id));
    expect(b.phiKeys[0]?.key.equals(a.phiKeys[0]?.key ?? Buffer.alloc(0))).toBe(true);
    expect(b.blindIndexKey.equals(a.blindIndexKey)).toBe(true);
  });

  it("two providers loading concurrently agree on one set of keys", async () => {
    const path = join(dir, "keys.json");
    const p1 = new FileKeyProvider(path);
    const p2 = new FileKeyProvider(path);
    const [a, b] = await Promise.all([p1.load(), p2.load()]);
    expect([p1.created, p2.created].filter(Boolean)).toHaveLength(1);
    expect(a.blindIndexKey.equals(b.blindIndexKey)).toBe(true);
    expect(a.phiKeys[0]?.key.equals(b.phiKeys[0]?.key ?? Buffer.alloc(0))).toBe(true);
  });

  it("loads an existing valid 0600 file as written", async () => {
    const path = join(dir, "keys.json");
    const body = validBody();
    await writeKeyFile(path, body, 0o600);
    const provider = new FileKeyProvider(path);
    const m = await provider.load();
    expect(provider.created).toBe(false);
    const parsed = JSON.parse(body) as { phiKeys: { key: string }[]; blindIndexKey: string };
    expect(m.phiKeys[0]?.key.toString("base64")).toBe(parsed.phiKeys[0]?.key);
    expect(m.blindIndexKey.toString("base64")).toBe(parsed.blindIndexKey);
  });

  it.each(
    [0o644, 0o640, 0o604, 0o660, 0o666, 0o744, 0o610].map((m) => [m.toString(8), m] as const),
  )("refuses a file with mode %s and says to chmod it", async (_label, mode) => {
    const path = join(dir, "keys.json");
    const body = validBody();
    await writeKeyFile(path, body, mode);
    const err = await new FileKeyProvider(path).load().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KeyError);
    const message = (err as KeyError).message;
    expect(message).toMatch(/chmod/);
    expect(message).toContain(path);
    // No key material in the message.
    const parsed = JSON.parse(body) as { phiKeys: { key: string }[]; blindIndexKey: string };
    expect(message).not.toContain(parsed.phiKeys[0]?.key);
    expect(message).not.toContain(parsed.blindIndexKey);
  });

  it("refuses a generated file after someone loosens its mode", async () => {
    const path = join(dir, "keys.json");
    await new FileKeyProvider(path).load();
    await chmod(path, 0o644);
    await expect(new FileKeyProvider(path).load()).rejects.toThrow(/chmod/);
  });

  it("refuses invalid JSON with KeyError, without quoting the file", async () => {
    const path = join(dir, "keys.json");
    const body = '{"version":1,"phiKeys":[{"id":"k1","key":"SECRETSECRET';
    await writeKeyFile(path, body, 0o600);
    const err = await new FileKeyProvider(path).load().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KeyError);
    expect((err as KeyError).message).toMatch(/not valid JSON/);
    expect((err as KeyError).message).not.toContain("SECRETSECRET");
  });

  it.each([
    [
      "wrong version",
      JSON.stringify({ version: 2, activeKeyId: "k1", phiKeys: [], blindIndexKey: "" }),
    ],
    [
      "phiKeys not an array",
      JSON.stringify({ version: 1, activeKeyId: "k1", phiKeys: {}, blindIndexKey: "" }),
    ],
  ])("refuses a file with %s", async (_label, body) => {
    const path = join(dir, "keys.json");
    await writeKeyFile(path, body, 0o600);
    await expect(new FileKeyProvider(path).load()).rejects.toThrow(/unknown format/);
  });

  it("a file with short keys loads but is rejected by the Keyring", async () => {
    const path = join(dir, "keys.json");
    const body = JSON.stringify({
      version: 1,
      activeKeyId: "k1",
      phiKeys: [{ id: "k1", key: randomBytes(16).toString("base64") }],
      blindIndexKey: randomBytes(32).toString("base64"),
    });
    await writeKeyFile(path, body, 0o600);
    const m = await new FileKeyProvider(path).load();
    expect(() => new Keyring(m)).toThrow(KeyError);
  });
});

describe("FileKeyProvider.addPhiKey (key rotation on the embedded key file)", () => {
  it("adds a fresh key, makes it active, keeps the old keys and the blind-index key, stays 0600", async () => {
    const path = join(dir, "keys.json");
    const provider = new FileKeyProvider(path);
    const before = new Keyring(await provider.load());
    const sealed = encryptString(before, { table: "t", column: "c", rowId: "r" }, "Jane Doe");
    const now = new Date("2031-02-03T04:05:06Z");
    const id = await provider.addPhiKey(undefined, now);
    expect(id).toBe("k20310203");
    expect(await provider.addPhiKey(undefined, now)).toBe("k20310203-2");
    const after = new Keyring(await new FileKeyProvider(path).load());
    expect(after.activeKeyId).toBe("k20310203-2");
    expect(after.keyIds()).toEqual(["k20310203-2", "k20310203", before.activeKeyId]);
    expect(after.blindIndexKey.equals(before.blindIndexKey)).toBe(true);
    expect(decryptString(after, { table: "t", column: "c", rowId: "r" }, sealed)).toBe("Jane Doe");
    expect(envelopeKeyId(encryptString(after, { table: "t", column: "c", rowId: "r" }, "x"))).toBe(
      "k20310203-2",
    );
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    expect((await readdir(dir)).filter((f) => f.endsWith(".tmp"))).toEqual([]);
  });

  it("refuses a duplicate or malformed id without changing the file", async () => {
    const path = join(dir, "keys.json");
    await writeKeyFile(path, validBody(), 0o600);
    const provider = new FileKeyProvider(path);
    const original = await readFile(path, "utf8");
    await expect(provider.addPhiKey("k1")).rejects.toThrow(/already exists/);
    await expect(provider.addPhiKey("bad id!")).rejects.toBeInstanceOf(KeyError);
    expect(await readFile(path, "utf8")).toBe(original);
  });
});
