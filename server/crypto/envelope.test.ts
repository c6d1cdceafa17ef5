import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import {
  type CipherContext,
  DecryptionError,
  decryptJson,
  decryptString,
  ENVELOPE_VERSION,
  encryptJson,
  encryptString,
  envelopeKeyId,
} from "./envelope.ts";
import { Keyring } from "./keyring.ts";

const ctx: CipherContext = {
  table: "patient",
  column: "name",
  rowId: "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",
};

function keyring(ids: string[] = ["k1"], activeKeyId?: string): Keyring {
  return new Keyring({
    phiKeys: ids.map((id) => ({ id, key: randomBytes(32) })),
    ...(activeKeyId ? { activeKeyId } : {}),
    blindIndexKey: randomBytes(32),
  });
}

/** Split an envelope into its four parts (asserting the shape). */
function parts(envelope: string): [string, string, string, string] {
  const p = envelope.split(":");
  expect(p).toHaveLength(4);
  return p as [string, string, string, string];
}

/** Flip one bit of a base64url field and re-encode it. */
function flipBit(b64url: string, byteIndex: number, bit = 0): string {
  const buf = Buffer.from(b64url, "base64url");
  const i = byteIndex < 0 ? buf.length + byteIndex : byteIndex;
  buf[i] = (buf[i] ?? 0) ^ (1 << bit);
  return buf.toString("base64url");
}

/** Run `fn`, assert it throws a DecryptionError, and return that error. */
function decryptionError(fn: () => unknown): DecryptionError {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(DecryptionError);
  const err = caught as DecryptionError;
  expect(err.name).toBe("DecryptionError");
  return err;
}

const SECRET = "Jane Schowalter414, HIV positive";

describe("envelope round trip", () => {
  const kr = keyring();

  it.each([
    ["ASCII", "Jane Doe"],
    ["Unicode", "Zoë Ågren-Müller 李小龍 🩺 \u0000 \u{1F600}"],
    ["empty string", ""],
    ["JSON-ish text with colons", 'a:b:c:"d"'],
  ])("round-trips %s", (_label, plaintext) => {
    const env = encryptString(kr, ctx, plaintext);
    expect(decryptString(kr, ctx, env)).toBe(plaintext);
  });

  it("round-trips 1 MB", () => {
    const big = randomBytes(512 * 1024).toString("hex");
    expect(big.length).toBe(1024 * 1024);
    const env = encryptString(kr, ctx, big);
    expect(decryptString(kr, ctx, env)).toBe(big);
  });

  it("round-trips JSON values", () => {
    const value = {
      given: ["Zoë"],
      family: "Ågren",
      birthDate: "1970-01-01",
      n: 3,
      ok: true,
      none: null,
    };
    const env = encryptJson(kr, ctx, value);
    expect(decryptJson(kr, ctx, env)).toEqual(value);
    expect(decryptJson(kr, ctx, encryptJson(kr, ctx, "plain"))).toBe("plain");
    expect(decryptJson(kr, ctx, encryptJson(kr, ctx, null))).toBeNull();
  });

  it("decryptJson of a non-JSON plaintext throws DecryptionError without quoting it", () => {
    const env = encryptString(kr, ctx, SECRET);
    const err = decryptionError(() => decryptJson(kr, ctx, env));
    expect(err.message).not.toContain("Schowalter");
    expect(err.message).not.toContain("HIV");
  });
});

describe("envelope format", () => {
  const kr = keyring(["key_2024-01"]);

  it("is hv1:<keyId>:<iv>:<ct> with a 96-bit IV and a 128-bit tag, base64url", () => {
    const plaintext = "hello";
    const env = encryptString(kr, ctx, plaintext);
    expect(env).toMatch(/^hv1:key_2024-01:[A-Za-z0-9_-]{16}:[A-Za-z0-9_-]+$/);
    const [version, keyId, iv, ct] = parts(env);
    expect(version).toBe(ENVELOPE_VERSION);
    expect(ENVELOPE_VERSION).toBe("hv1");
    expect(keyId).toBe("key_2024-01");
    expect(Buffer.from(iv, "base64url")).toHaveLength(12);
    // GCM is a stream mode: ciphertext length = plaintext length, plus the 16-byte tag.
    expect(Buffer.from(ct, "base64url")).toHaveLength(Buffer.byteLength(plaintext) + 16);
  });

  it("empty plaintext still carries a tag", () => {
    const [, , , ct] = parts(encryptString(kr, ctx, ""));
    expect(Buffer.from(ct, "base64url")).toHaveLength(16);
  });

  it("does not contain the plaintext", () => {
    const env = encryptString(kr, ctx, SECRET);
    expect(env).not.toContain("Schowalter");
    expect(env).not.toContain(Buffer.from(SECRET).toString("base64url"));
  });

  it("two encryptions of the same plaintext differ (random IV)", () => {
    const a = encryptString(kr, ctx, SECRET);
    const b = encryptString(kr, ctx, SECRET);
    expect(a).not.toBe(b);
    expect(parts(a)[2]).not.toBe(parts(b)[2]);
    expect(parts(a)[3]).not.toBe(parts(b)[3]);
    expect(decryptString(kr, ctx, a)).toBe(SECRET);
    expect(decryptString(kr, ctx, b)).toBe(SECRET);
  });

  it("IVs are unique over many encryptions", () => {
    const ivs = new Set<string>();
    for (let i = 0; i < 1000; i++) ivs.add(parts(encryptString(kr, ctx, "x"))[2]);
    expect(ivs.size).toBe(1000);
  });

  it("envelopeKeyId returns the key id without decrypting", () => {
    const env = encryptString(kr, ctx, SECRET);
    expect(envelopeKeyId(env)).toBe("key_2024-01");
    // Works even when the key is not loaded here.
    expect(envelopeKeyId(encryptString(keyring(["other"]), ctx, "x"))).toBe("other");
  });

  it("envelopeKeyId rejects malformed envelopes with DecryptionError", () => {
    decryptionError(() => envelopeKeyId("not an envelope"));
    decryptionError(() => envelopeKeyId(""));
    decryptionError(() => envelopeKeyId("hv2:k1:AAAAAAAAAAAAAAAA:AAAAAAAAAAAAAAAAAAAAAA"));
  });
});

describe("associated data binds the value to its place", () => {
  const kr = keyring();
  const env = encryptString(kr, ctx, SECRET);

  it.each([
    ["rowId", { ...ctx, rowId: "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5c" }],
    ["column", { ...ctx, column: "address" }],
    ["table", { ...ctx, table: "practitioner" }],
    ["empty rowId", { ...ctx, rowId: "" }],
  ])("decrypting with another %s fails", (_label, other: CipherContext) => {
    const err = decryptionError(() => decryptString(kr, other, env));
    expect(err.message).not.toContain("Schowalter");
  });

  it("moving the table/column boundary of SQL identifiers fails (patient_name.x vs patient.name_x)", () => {
    // Note: the AAD joins table and column with "." unescaped, so names that themselves contain
    // "." (never the case for Haven's SQL identifiers) would be ambiguous.
    const e = encryptString(kr, { table: "patient_name", column: "x", rowId: "1" }, "x");
    decryptionError(() => decryptString(kr, { table: "patient", column: "name_x", rowId: "1" }, e));
  });

  it("still decrypts in the original place", () => {
    expect(decryptString(kr, { ...ctx }, env)).toBe(SECRET);
  });
});

describe("tampering is detected", () => {
  const kr = keyring();
  const env = encryptString(kr, ctx, SECRET);
  const [v, id, iv, ct] = parts(env);
  const ctLen = Buffer.from(ct, "base64url").length;

  it.each([
    ["first ciphertext byte", 0],
    ["middle ciphertext byte", 10],
    ["last ciphertext byte (before tag)", ctLen - 17],
  ])("flipping a bit in the %s fails", (_label, byte) => {
    decryptionError(() => decryptString(kr, ctx, `${v}:${id}:${iv}:${flipBit(ct, byte)}`));
  });

  it.each([0, 7])("flipping bit %i of the IV fails", (bit) => {
    decryptionError(() => decryptString(kr, ctx, `${v}:${id}:${flipBit(iv, 0, bit)}:${ct}`));
    decryptionError(() => decryptString(kr, ctx, `${v}:${id}:${flipBit(iv, 11, bit)}:${ct}`));
  });

  it.each([
    ["first tag byte", -16],
    ["last tag byte", -1],
  ])("flipping a bit in the %s fails", (_label, byte) => {
    decryptionError(() => decryptString(kr, ctx, `${v}:${id}:${iv}:${flipBit(ct, byte)}`));
  });

  it("every single-bit flip of a short envelope fails", () => {
    const short = parts(encryptString(kr, ctx, "ab"));
    const bytes = Buffer.from(short[3], "base64url").length;
    for (let byte = 0; byte < bytes; byte++) {
      for (let bit = 0; bit < 8; bit++) {
        const tampered = `${short[0]}:${short[1]}:${short[2]}:${flipBit(short[3], byte, bit)}`;
        expect(() => decryptString(kr, ctx, tampered)).toThrow(DecryptionError);
      }
    }
  });

  it("dropping a ciphertext byte fails", () => {
    const buf = Buffer.from(ct, "base64url");
    const shorter = Buffer.concat([buf.subarray(0, 1), buf.subarray(2)]).toString("base64url");
    decryptionError(() => decryptString(kr, ctx, `${v}:${id}:${iv}:${shorter}`));
  });

  it("swapping ciphertexts between two envelopes fails", () => {
    const other = parts(encryptString(kr, ctx, SECRET));
    decryptionError(() => decryptString(kr, ctx, `${v}:${id}:${iv}:${other[3]}`));
  });

  it("error messages never contain the plaintext", () => {
    const err = decryptionError(() => decryptString(kr, ctx, `${v}:${id}:${iv}:${flipBit(ct, 0)}`));
    expect(err.message).not.toContain("Schowalter");
    expect(err.message).not.toContain("HIV");
    expect(err.message).not.toContain(ctx.rowId);
  });
});

describe("key ids", () => {
  it("relabelling the envelope with another loaded key id fails", () => {
    const kr = keyring(["k1", "k2"]);
    const env = encryptString(kr, ctx, SECRET);
    expect(envelopeKeyId(env)).toBe("k1");
    const relabelled = env.replace(/^hv1:k1:/, "hv1:k2:");
    expect(envelopeKeyId(relabelled)).toBe("k2");
    const err = decryptionError(() => decryptString(kr, ctx, relabelled));
    expect(err.message).not.toContain("Schowalter");
  });

  it("relabelling fails even when both ids name the same key bytes (key id is authenticated)", () => {
    const key = randomBytes(32);
    const kr = new Keyring({
      phiKeys: [
        { id: "k1", key },
        { id: "k2", key },
      ],
      blindIndexKey: randomBytes(32),
    });
    const env = encryptString(kr, ctx, SECRET);
    decryptionError(() => decryptString(kr, ctx, env.replace(/^hv1:k1:/, "hv1:k2:")));
  });

  it("an unknown key id fails with a DecryptionError naming the id but not the plaintext", () => {
    const env = encryptString(keyring(["retired_2019"]), ctx, SECRET);
    const err = decryptionError(() => decryptString(keyring(["k1"]), ctx, env));
    expect(err.message).toContain("retired_2019");
    expect(err.message).not.toContain("Schowalter");
    expect(err.message).not.toContain("HIV");
  });

  it("a different key under the same id fails", () => {
    const env = encryptString(keyring(["k1"]), ctx, SECRET);
    decryptionError(() => decryptString(keyring(["k1"]), ctx, env));
  });

  it("rotation: the old key still decrypts, new values use the active key", () => {
    const oldKey = randomBytes(32);
    const newKey = randomBytes(32);
    const blindIndexKey = randomBytes(32);
    const before = new Keyring({ phiKeys: [{ id: "old", key: oldKey }], blindIndexKey });
    const sealedOld = encryptString(before, ctx, SECRET);
    expect(envelopeKeyId(sealedOld)).toBe("old");

    const after = new Keyring({
      phiKeys: [
        { id: "new", key: newKey },
        { id: "old", key: oldKey },
      ],
      blindIndexKey,
    });
    expect(after.activeKeyId).toBe("new");
    expect(decryptString(after, ctx, sealedOld)).toBe(SECRET);

    const sealedNew = encryptString(after, ctx, SECRET);
    expect(envelopeKeyId(sealedNew)).toBe("new");
    expect(decryptString(after, ctx, sealedNew)).toBe(SECRET);
    // The pre-rotation keyring cannot read the new value.
    decryptionError(() => decryptString(before, ctx, sealedNew));
  });

  it("explicit activeKeyId selects the encrypting key", () => {
    const kr = keyring(["a", "b"], "b");
    const env = encryptString(kr, ctx, "x");
    expect(envelopeKeyId(env)).toBe("b");
    expect(decryptString(kr, ctx, env)).toBe("x");
  });
});

describe("malformed envelopes", () => {
  const kr = keyring();
  const good = encryptString(kr, ctx, SECRET);
  const [, id, iv, ct] = parts(good);

  it.each([
    ["wrong version", `hv2:${id}:${iv}:${ct}`],
    ["upper-case version", `HV1:${id}:${iv}:${ct}`],
    ["no version", `${id}:${iv}:${ct}`],
    ["three parts", `hv1:${id}:${iv}`],
    ["five parts", `hv1:${id}:${iv}:${ct}:extra`],
    ["two parts", `hv1:${id}`],
    ["empty string", ""],
    ["plaintext", "Jane Doe"],
    ["truncated IV", `hv1:${id}:${iv.slice(0, 8)}:${ct}`],
    ["empty IV", `hv1:${id}::${ct}`],
    ["too-long IV", `hv1:${id}:${iv}AAAA:${ct}`],
    ["ciphertext shorter than a tag", `hv1:${id}:${iv}:${ct.slice(0, 20)}`],
    ["empty ciphertext", `hv1:${id}:${iv}:`],
    ["truncated ciphertext (longer than a tag)", `hv1:${id}:${iv}:${ct.slice(0, -4)}`],
    ["empty key id", `hv1::${iv}:${ct}`],
    ["non-base64 ciphertext", `hv1:${id}:${iv}:${"!".repeat(ct.length)}`],
    ["non-base64 IV", `hv1:${id}:${"*".repeat(16)}:${ct}`],
  ])("%s fails with DecryptionError", (_label, envelope) => {
    const err = decryptionError(() => decryptString(kr, ctx, envelope));
    expect(err.message).not.toContain("Schowalter");
  });

  it("the unmodified envelope still decrypts", () => {
    expect(decryptString(kr, ctx, good)).toBe(SECRET);
  });
});

describe("envelope IVs", () => {
  it("never repeats a nonce across the IV pool's refills, and every envelope still opens", () => {
    const kr = keyring();
    const seen = new Set<string>();
    // 256 IVs per refill: 1,000 seals cross three refills.
    for (let i = 0; i < 1000; i++) {
      const envelope = encryptString(kr, ctx, `value ${i}`);
      const iv = parts(envelope)[2];
      expect(Buffer.from(iv, "base64url")).toHaveLength(12);
      expect(seen.has(iv)).toBe(false);
      seen.add(iv);
      expect(decryptString(kr, ctx, envelope)).toBe(`value ${i}`);
    }
  });
});
