import { randomBytes } from "node:crypto";
import { mkdtemp, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { loadConfig } from "../config.ts";
import { decryptString, encryptString } from "./envelope.ts";
import { KeyError } from "./keyring.ts";
import { loadKeys } from "./load.ts";

let dir: string;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "haven-load-keys-"));
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const ctx = { table: "patient", column: "name", rowId: "r1" };
const b64 = (buf: Buffer) => buf.toString("base64");

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

describe("loadKeys", () => {
  it("uses env keys when both variables are set, and writes no key file", async () => {
    const a = randomBytes(32);
    const b = randomBytes(32);
    const blind = randomBytes(32);
    const config = loadConfig({
      HAVEN_DATA_DIR: dir,
      HAVEN_PHI_KEYS: `a:${b64(a)},b:${b64(b)}`,
      HAVEN_BLIND_INDEX_KEY: b64(blind),
    });
    const loaded = await loadKeys(config);
    expect(loaded.provider.name).toBe("env");
    expect(loaded.generated).toBe(false);
    expect(loaded.keyFile).toBeUndefined();
    expect(loaded.keyring.activeKeyId).toBe("a");
    expect(loaded.keyring.keyIds()).toEqual(["a", "b"]);
    expect(loaded.keyring.key("a").equals(a)).toBe(true);
    expect(loaded.keyring.key("b").equals(b)).toBe(true);
    expect(loaded.keyring.blindIndexKey.equals(blind)).toBe(true);
    expect(await exists(join(dir, "keys.json"))).toBe(false);
  });

  it("works in production with env keys", async () => {
    const config = loadConfig({
      NODE_ENV: "production",
      HAVEN_DATA_DIR: dir,
      HAVEN_PHI_KEYS: `prod1:${b64(randomBytes(32))}`,
      HAVEN_BLIND_INDEX_KEY: b64(randomBytes(32)),
    });
    const loaded = await loadKeys(config);
    expect(loaded.provider.name).toBe("env");
    expect(loaded.keyring.activeKeyId).toBe("prod1");
  });

  it("rejects malformed env keys with KeyError that does not echo them", async () => {
    const shortKey = b64(randomBytes(16));
    const config = loadConfig({
      HAVEN_DATA_DIR: dir,
      HAVEN_PHI_KEYS: `a:${shortKey}`,
      HAVEN_BLIND_INDEX_KEY: b64(randomBytes(32)),
    });
    const err = await loadKeys(config).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KeyError);
    expect((err as KeyError).message).not.toContain(shortKey);
    expect(await exists(join(dir, "keys.json"))).toBe(false);
  });

  it("generates a key file in HAVEN_DATA_DIR the first time, reuses it after", async () => {
    const config = loadConfig({ HAVEN_DATA_DIR: dir });
    const first = await loadKeys(config);
    expect(first.provider.name).toBe("file");
    expect(first.generated).toBe(true);
    expect(first.keyFile).toBe(join(dir, "keys.json"));
    expect((await stat(join(dir, "keys.json"))).mode & 0o777).toBe(0o600);

    const second = await loadKeys(config);
    expect(second.provider.name).toBe("file");
    expect(second.generated).toBe(false);
    expect(second.keyFile).toBe(first.keyFile);
    expect(second.keyring.activeKeyId).toBe(first.keyring.activeKeyId);
    expect(second.keyring.blindIndexKey.equals(first.keyring.blindIndexKey)).toBe(true);

    // Data sealed under the first load opens under the second.
    const sealed = encryptString(first.keyring, ctx, "Jane Doe");
    expect(decryptString(second.keyring, ctx, sealed)).toBe("Jane Doe");
  });

  it("creates HAVEN_DATA_DIR when it does not exist yet", async () => {
    const dataDir = join(dir, "not", "yet");
    const loaded = await loadKeys(loadConfig({ HAVEN_DATA_DIR: dataDir }));
    expect(loaded.generated).toBe(true);
    expect(await exists(join(dataDir, "keys.json"))).toBe(true);
  });

  it.each([
    ["only HAVEN_PHI_KEYS", { HAVEN_PHI_KEYS: `a:${b64(randomBytes(32))}` }],
    ["only HAVEN_BLIND_INDEX_KEY", { HAVEN_BLIND_INDEX_KEY: b64(randomBytes(32)) }],
  ])(
    "refuses a half-configured environment (%s): no silent fallback to a key file",
    (_label, env) => {
      expect(() => loadConfig({ HAVEN_DATA_DIR: dir, ...env })).toThrow(/must be set together/);
    },
  );
});
