import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import type { Ciphertext } from "../../db/schema/columns.ts";
import { DecryptionError, envelopeKeyId } from "./envelope.ts";
import { Keyring } from "./keyring.ts";
import { PhiCrypto } from "./phi.ts";

const ROW = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b";
const OTHER_ROW = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5c";

function phi(): PhiCrypto {
  return new PhiCrypto(
    new Keyring({ phiKeys: [{ id: "k1", key: randomBytes(32) }], blindIndexKey: randomBytes(32) }),
  );
}

describe("PhiCrypto seal/open", () => {
  const crypto = phi();

  it.each([
    [
      "object",
      { given: ["Zoë", "Ann"], family: "Ågren", birthDate: "1970-01-01", deceased: false },
    ],
    ["array", [1, "two", { three: 3 }, null]],
    ["string", "Jane Doe"],
    ["empty string", ""],
    ["number", 42.5],
    ["boolean", true],
    ["null", null],
  ])("round-trips a JSON %s", (_label, value) => {
    const sealed = crypto.seal("patient", "name", ROW, value);
    expect(sealed.startsWith("hv1:k1:")).toBe(true);
    expect(crypto.open("patient", "name", ROW, sealed)).toEqual(value);
  });

  it("returns a Ciphertext that does not contain the plaintext", () => {
    const sealed: Ciphertext = crypto.seal("patient", "name", ROW, { family: "Schowalter414" });
    expect(sealed).not.toContain("Schowalter414");
    expect(envelopeKeyId(sealed)).toBe("k1");
  });

  it("opens a plain string envelope too", () => {
    const sealed: string = crypto.seal("patient", "name", ROW, { a: 1 });
    expect(crypto.open<{ a: number }>("patient", "name", ROW, sealed).a).toBe(1);
  });

  it("open with another rowId throws DecryptionError without leaking the value", () => {
    const sealed = crypto.seal("patient", "name", ROW, { family: "Schowalter414" });
    let caught: unknown;
    try {
      crypto.open("patient", "name", OTHER_ROW, sealed);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(DecryptionError);
    expect((caught as Error).message).not.toContain("Schowalter414");
  });

  it("open with another column or table throws", () => {
    const sealed = crypto.seal("patient", "name", ROW, "x");
    expect(() => crypto.open("patient", "address", ROW, sealed)).toThrow(DecryptionError);
    expect(() => crypto.open("practitioner", "name", ROW, sealed)).toThrow(DecryptionError);
  });

  it("open with another PhiCrypto (other keys) throws", () => {
    const sealed = crypto.seal("patient", "name", ROW, "x");
    expect(() => phi().open("patient", "name", ROW, sealed)).toThrow(DecryptionError);
  });

  it("sealing the same value twice gives different ciphertexts", () => {
    expect(crypto.seal("patient", "name", ROW, "x")).not.toBe(
      crypto.seal("patient", "name", ROW, "x"),
    );
  });
});
