import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { EnvKeyProvider, KeyError, type KeyMaterial, Keyring, parseEnvKeys } from "./keyring.ts";

const b64 = (buf: Buffer) => buf.toString("base64");

function material(overrides: Partial<KeyMaterial> = {}): KeyMaterial {
  return {
    phiKeys: [{ id: "k1", key: randomBytes(32) }],
    blindIndexKey: randomBytes(32),
    ...overrides,
  };
}

/** Run `fn`, assert it throws a KeyError, and return it. */
function keyError(fn: () => unknown): KeyError {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(KeyError);
  const err = caught as KeyError;
  expect(err.name).toBe("KeyError");
  return err;
}

describe("Keyring validation", () => {
  it("accepts one valid key and makes it active", () => {
    const m = material();
    const kr = new Keyring(m);
    expect(kr.activeKeyId).toBe("k1");
    expect(kr.key("k1").equals(m.phiKeys[0]?.key ?? Buffer.alloc(0))).toBe(true);
    expect(kr.blindIndexKey.equals(m.blindIndexKey)).toBe(true);
  });

  it("rejects zero keys", () => {
    const err = keyError(() => new Keyring(material({ phiKeys: [] })));
    expect(err.message).toMatch(/no PHI encryption key/);
  });

  it.each([
    ["empty", ""],
    ["too long", "k".repeat(33)],
    ["colon", "k:1"],
    ["space", "k 1"],
    ["dot", "k.1"],
    ["slash", "k/1"],
    ["plus", "k+1"],
    ["non-ASCII", "ключ"],
    ["newline", "k1\n"],
  ])("rejects a key id that is %s", (_label, id) => {
    keyError(() => new Keyring(material({ phiKeys: [{ id, key: randomBytes(32) }] })));
  });

  it.each(["a", "A_z-09", "k".repeat(32), "2024-01-01", "key_2024"])("accepts key id %s", (id) => {
    expect(new Keyring(material({ phiKeys: [{ id, key: randomBytes(32) }] })).activeKeyId).toBe(id);
  });

  it.each([0, 1, 16, 24, 31, 33, 64])("rejects a %i-byte PHI key", (len) => {
    const err = keyError(
      () => new Keyring(material({ phiKeys: [{ id: "k1", key: randomBytes(len) }] })),
    );
    expect(err.message).toContain("k1");
    expect(err.message).toContain("32 bytes");
  });

  it("rejects a bad key among good ones", () => {
    keyError(
      () =>
        new Keyring(
          material({
            phiKeys: [
              { id: "k1", key: randomBytes(32) },
              { id: "k2", key: randomBytes(31) },
            ],
          }),
        ),
    );
  });

  it("rejects duplicate ids", () => {
    const err = keyError(
      () =>
        new Keyring(
          material({
            phiKeys: [
              { id: "k1", key: randomBytes(32) },
              { id: "k1", key: randomBytes(32) },
            ],
          }),
        ),
    );
    expect(err.message).toContain("k1");
    expect(err.message).toMatch(/twice/);
  });

  it("rejects an unknown activeKeyId", () => {
    const err = keyError(() => new Keyring(material({ activeKeyId: "nope" })));
    expect(err.message).toContain("nope");
  });

  it.each([0, 16, 31, 33, 64])("rejects a %i-byte blind index key", (len) => {
    const err = keyError(() => new Keyring(material({ blindIndexKey: randomBytes(len) })));
    expect(err.message).toMatch(/blind index key/);
  });

  it("does not echo key material in any validation error", () => {
    const key = randomBytes(31);
    const err = keyError(() => new Keyring(material({ phiKeys: [{ id: "k1", key }] })));
    expect(err.message).not.toContain(key.toString("base64"));
    expect(err.message).not.toContain(key.toString("hex"));
  });

  it("does not echo an invalid id (it may be key material pasted in the wrong place)", () => {
    const pasted = b64(randomBytes(32));
    const err = keyError(
      () => new Keyring(material({ phiKeys: [{ id: pasted, key: randomBytes(32) }] })),
    );
    expect(err.message).not.toContain(pasted);
  });
});

describe("Keyring lookups", () => {
  it("keyIds() lists the active key first, then the others", () => {
    const kr = new Keyring(
      material({
        phiKeys: [
          { id: "a", key: randomBytes(32) },
          { id: "b", key: randomBytes(32) },
          { id: "c", key: randomBytes(32) },
        ],
        activeKeyId: "b",
      }),
    );
    expect(kr.activeKeyId).toBe("b");
    const ids = kr.keyIds();
    expect(ids[0]).toBe("b");
    expect([...ids].sort()).toEqual(["a", "b", "c"]);
    expect(ids).toHaveLength(3);
  });

  it("keyIds() with the first key active", () => {
    const kr = new Keyring(
      material({
        phiKeys: [
          { id: "new", key: randomBytes(32) },
          { id: "old", key: randomBytes(32) },
        ],
      }),
    );
    expect(kr.keyIds()).toEqual(["new", "old"]);
  });

  it("key() returns each loaded key and throws KeyError for unknown ids", () => {
    const a = randomBytes(32);
    const b = randomBytes(32);
    const kr = new Keyring(
      material({
        phiKeys: [
          { id: "a", key: a },
          { id: "b", key: b },
        ],
      }),
    );
    expect(kr.key("a").equals(a)).toBe(true);
    expect(kr.key("b").equals(b)).toBe(true);
    const err = keyError(() => kr.key("zzz"));
    expect(err.message).toContain("zzz");
  });
});

describe("parseEnvKeys", () => {
  it("parses a:base64,b:base64 in order with the first active", () => {
    const a = randomBytes(32);
    const b = randomBytes(32);
    const blind = randomBytes(32);
    const m = parseEnvKeys(`a:${b64(a)},b:${b64(b)}`, b64(blind));
    expect(m.phiKeys.map((k) => k.id)).toEqual(["a", "b"]);
    expect(m.phiKeys[0]?.key.equals(a)).toBe(true);
    expect(m.phiKeys[1]?.key.equals(b)).toBe(true);
    expect(m.blindIndexKey.equals(blind)).toBe(true);
    const kr = new Keyring(m);
    expect(kr.activeKeyId).toBe("a");
    expect(kr.keyIds()).toEqual(["a", "b"]);
  });

  it("tolerates whitespace around entries and values", () => {
    const a = randomBytes(32);
    const b = randomBytes(32);
    const blind = randomBytes(32);
    const m = parseEnvKeys(` a : ${b64(a)} ,\n b:${b64(b)}\n`, ` ${b64(blind)}\n`);
    expect(m.phiKeys.map((k) => k.id)).toEqual(["a", "b"]);
    expect(m.phiKeys[0]?.key.equals(a)).toBe(true);
    expect(m.phiKeys[1]?.key.equals(b)).toBe(true);
    expect(m.blindIndexKey.equals(blind)).toBe(true);
  });

  it("accepts base64url-free standard base64 with + and /", () => {
    // 0xfb 0xff → "+/8" in standard base64
    const key = Buffer.alloc(32, 0xfb);
    key[1] = 0xff;
    const m = parseEnvKeys(`k1:${b64(key)}`, b64(randomBytes(32)));
    expect(m.phiKeys[0]?.key.equals(key)).toBe(true);
  });

  const secret = b64(randomBytes(32));
  const blind = b64(randomBytes(32));

  it.each([
    ["missing id", `${secret}`],
    ["leading colon", `:${secret}`],
    ["trailing comma", `k1:${secret},`],
    ["empty", ""],
    ["double comma", `k1:${secret},,k2:${secret}`],
  ])("%s throws KeyError from parseEnvKeys without echoing the key", (_label, env) => {
    const err = keyError(() => parseEnvKeys(env, blind));
    expect(err.message).toContain("HAVEN_PHI_KEYS");
    expect(err.message).not.toContain(secret);
    expect(err.message).not.toContain(blind);
  });

  it.each([
    ["id and key swapped", `${secret}:k1`],
    ["short key", `k1:${b64(randomBytes(16))}`],
    ["hex instead of base64", `k1:${randomBytes(32).toString("hex")}`],
    ["garbage key", "k1:!!!!!!!!"],
    ["empty key", "k1:"],
    ["bad id", `k 1:${secret}`],
    ["duplicate id", `k1:${secret},k1:${secret}`],
  ])("%s is rejected (KeyError) by the Keyring without echoing the key", (_label, env) => {
    const err = keyError(() => new Keyring(parseEnvKeys(env, blind)));
    expect(err.message).not.toContain(secret);
    expect(err.message).not.toContain(blind);
  });

  it.each([
    ["empty", ""],
    ["short", b64(randomBytes(16))],
    ["hex", randomBytes(32).toString("hex")],
  ])("a %s blind index key is rejected without echoing it", (_label, value) => {
    const err = keyError(() => new Keyring(parseEnvKeys(`k1:${secret}`, value)));
    expect(err.message).toMatch(/blind index key/);
    if (value) expect(err.message).not.toContain(value);
    expect(err.message).not.toContain(secret);
  });
});

describe("EnvKeyProvider", () => {
  it("loads the parsed material and names itself without key material", async () => {
    const a = randomBytes(32);
    const blind = randomBytes(32);
    const provider = new EnvKeyProvider(`a:${b64(a)}`, b64(blind));
    expect(provider.name).toBe("env");
    const m = await provider.load();
    expect(m.phiKeys).toHaveLength(1);
    expect(m.phiKeys[0]?.key.equals(a)).toBe(true);
    expect(m.blindIndexKey.equals(blind)).toBe(true);
  });

  it("rejects malformed values with KeyError", async () => {
    await expect(new EnvKeyProvider("nocolon", b64(randomBytes(32))).load()).rejects.toBeInstanceOf(
      KeyError,
    );
  });
});
