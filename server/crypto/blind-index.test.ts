import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import {
  type BlindIndexField,
  blindIndex,
  familyBirthIndex,
  normalizeForIndex,
} from "./blind-index.ts";
import { Keyring } from "./keyring.ts";
import { PhiCrypto } from "./phi.ts";

function keyring(blindIndexKey: Buffer = randomBytes(32)): Keyring {
  return new Keyring({ phiKeys: [{ id: "k1", key: randomBytes(32) }], blindIndexKey });
}

const FIELDS: BlindIndexField[] = [
  "patient.mrn",
  "patient.email",
  "patient.family_birth",
  "patient.fhir_id",
  "user.email",
  "fhir.source",
];

describe("normalizeForIndex", () => {
  it.each([
    ["  SCHOWALTER414 ", "schowalter414"],
    ["Jane\t \n Doe", "jane doe"],
    ["  Jane   Doe  ", "jane doe"],
    ["ＡＢＣ１２３", "abc123"], // full-width → ASCII (NFKC)
    ["\uFB01sh", "fish"], // ﬁ ligature (NFKC)
    ["Cafe\u0301", "café"], // combining accent → precomposed (NFKC)
    ["Jane\u00A0Doe", "jane doe"], // no-break space
    ["", ""],
    ["   ", ""],
  ])("normalises %j to %j", (input, expected) => {
    expect(normalizeForIndex(input)).toBe(expected);
  });

  it("is idempotent", () => {
    for (const v of ["  SCHOWALTER414 ", "ＡＢＣ  x", "Zoë\u2003Ågren"]) {
      const once = normalizeForIndex(v);
      expect(normalizeForIndex(once)).toBe(once);
    }
  });
});

describe("blindIndex", () => {
  const kr = keyring();

  it("is deterministic and 43 base64url characters (HMAC-SHA-256)", () => {
    const a = blindIndex(kr, "patient.mrn", "mrn-123");
    const b = blindIndex(kr, "patient.mrn", "mrn-123");
    expect(a).toBe(b);
    expect(a).toMatch(/^[A-Za-z0-9_-]{43}$/);
  });

  it("is deterministic across keyrings holding the same blind key", () => {
    const key = randomBytes(32);
    expect(blindIndex(keyring(Buffer.from(key)), "user.email", "a@b.c")).toBe(
      blindIndex(keyring(Buffer.from(key)), "user.email", "a@b.c"),
    );
  });

  it("differs for different values", () => {
    expect(blindIndex(kr, "patient.mrn", "mrn-123")).not.toBe(
      blindIndex(kr, "patient.mrn", "mrn-124"),
    );
  });

  it("does not contain the value", () => {
    const idx = blindIndex(kr, "patient.email", "jane@example.org");
    expect(idx).not.toContain("jane");
    expect(idx).not.toBe(Buffer.from("jane@example.org").toString("base64url"));
  });

  it("is not normalised by blindIndex itself (callers normalise)", () => {
    expect(blindIndex(kr, "patient.mrn", "ABC")).not.toBe(blindIndex(kr, "patient.mrn", "abc"));
  });

  it("different fields give different indexes for the same value", () => {
    const seen = new Set(FIELDS.map((f) => blindIndex(kr, f, "same value")));
    expect(seen.size).toBe(FIELDS.length);
  });

  it("different blind keys give different indexes", () => {
    const other = keyring();
    for (const f of FIELDS) {
      expect(blindIndex(kr, f, "schowalter414")).not.toBe(blindIndex(other, f, "schowalter414"));
    }
  });

  it("does not depend on PHI keys", () => {
    const blind = randomBytes(32);
    expect(blindIndex(keyring(blind), "patient.mrn", "x")).toBe(
      blindIndex(keyring(blind), "patient.mrn", "x"),
    );
  });
});

describe("familyBirthIndex", () => {
  const kr = keyring();

  it("normalises the family name", () => {
    expect(familyBirthIndex(kr, "  SCHOWALTER414 ", "1970-01-01")).toBe(
      familyBirthIndex(kr, "schowalter414", "1970-01-01"),
    );
  });

  it("differs for different birth dates", () => {
    expect(familyBirthIndex(kr, "Schowalter414", "1970-01-01")).not.toBe(
      familyBirthIndex(kr, "Schowalter414", "1970-01-02"),
    );
  });

  it("differs for different family names", () => {
    expect(familyBirthIndex(kr, "Schowalter414", "1970-01-01")).not.toBe(
      familyBirthIndex(kr, "Schowalter415", "1970-01-01"),
    );
  });

  it("is the patient.family_birth index of `family|date`", () => {
    expect(familyBirthIndex(kr, " Doe ", "1970-01-01")).toBe(
      blindIndex(kr, "patient.family_birth", "doe|1970-01-01"),
    );
  });

  it("differs from the same text indexed under another field", () => {
    expect(familyBirthIndex(kr, "doe", "1970-01-01")).not.toBe(
      blindIndex(kr, "patient.mrn", "doe|1970-01-01"),
    );
  });
});

describe("PhiCrypto index helpers", () => {
  const phi = new PhiCrypto(keyring());

  it('index() normalises: "  SCHOWALTER414 " equals "schowalter414"', () => {
    expect(phi.index("patient.mrn", "  SCHOWALTER414 ")).toBe(
      phi.index("patient.mrn", "schowalter414"),
    );
    expect(phi.index("patient.mrn", "  SCHOWALTER414 ")).toBe(
      blindIndex(phi.keyring, "patient.mrn", "schowalter414"),
    );
  });

  it("index() collapses inner whitespace and applies NFKC", () => {
    expect(phi.index("user.email", "Jane   Doe")).toBe(phi.index("user.email", "jane doe"));
    expect(phi.index("user.email", "ＪＡＮＥ")).toBe(phi.index("user.email", "jane"));
  });

  it("index() differs per field", () => {
    expect(phi.index("patient.email", "a@b.c")).not.toBe(phi.index("user.email", "a@b.c"));
  });

  it("indexExact() / patientFhirId() do not normalise: FHIR ids are case-sensitive", () => {
    expect(phi.indexExact("patient.fhir_id", "Ab-1.x")).toBe(
      blindIndex(phi.keyring, "patient.fhir_id", "Ab-1.x"),
    );
    expect(phi.patientFhirId("Ab-1.x")).toBe(phi.indexExact("patient.fhir_id", "Ab-1.x"));
    expect(phi.patientFhirId("Ab-1.x")).not.toBe(phi.patientFhirId("ab-1.x"));
    expect(phi.patientFhirId("Ab-1.x")).not.toBe(phi.index("patient.mrn", "Ab-1.x"));
  });

  it("familyBirth() normalises the name and separates birth dates", () => {
    expect(phi.familyBirth(" SCHOWALTER414", "1980-05-06")).toBe(
      phi.familyBirth("schowalter414 ", "1980-05-06"),
    );
    expect(phi.familyBirth("Schowalter414", "1980-05-06")).not.toBe(
      phi.familyBirth("Schowalter414", "1980-05-07"),
    );
    expect(phi.familyBirth("Doe", "1980-05-06")).toBe(
      familyBirthIndex(phi.keyring, "Doe", "1980-05-06"),
    );
  });
});
