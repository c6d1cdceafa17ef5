import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { canonicalJson } from "./canonical-json.ts";

/** The first implementation, kept here to pin the output: hashed values depend on every byte. */
function reference(value: unknown): string {
  if (value === null || typeof value !== "object") {
    return JSON.stringify(value) ?? "null";
  }
  if (Array.isArray(value)) {
    return `[${value.map((v) => (v === undefined ? "null" : reference(v))).join(",")}]`;
  }
  const obj = value as Record<string, unknown>;
  const keys = Object.keys(obj)
    .filter((k) => obj[k] !== undefined)
    .sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${reference(obj[k])}`).join(",")}}`;
}

const SYNTHEA = resolve(dirname(fileURLToPath(import.meta.url)), "../../db/seed/synthea");

describe("canonicalJson", () => {
  it("renders every shipped Synthea resource exactly as the first implementation", () => {
    let resources = 0;
    for (const file of readdirSync(SYNTHEA).filter((f) => f.endsWith(".json"))) {
      const bundle = JSON.parse(readFileSync(join(SYNTHEA, file), "utf8")) as {
        entry: { resource: unknown }[];
      };
      expect(canonicalJson(bundle)).toBe(reference(bundle));
      for (const { resource } of bundle.entry) {
        expect(canonicalJson(resource)).toBe(reference(resource));
        resources++;
      }
    }
    expect(resources).toBeGreaterThan(500);
  });

  it("renders edge cases exactly as the first implementation", () => {
    // biome-ignore lint/suspicious/noSparseArray: holes are one of the cases pinned here
    const sparse = [1, , 3];
    const cases: unknown[] = [
      null,
      undefined,
      true,
      0,
      -0,
      1.5e300,
      Number.NaN,
      Number.POSITIVE_INFINITY,
      "",
      'quote " backslash \\ newline \n tab \t nul \u0000 lone surrogate \ud800 é 😀',
      [],
      {},
      [undefined, null, () => 1, Symbol("s")],
      sparse,
      {
        b: undefined,
        a: () => 1,
        c: Symbol("s"),
        "": 1,
        "\u00e9": 2,
        Z: 3,
        a1: 4,
        "10": 5,
        "9": 6,
      },
      { nested: [{ z: [{}, []], y: { x: undefined } }], date: new Date(0) },
      Object.assign(Object.create({ inherited: 1 }), { own: 2 }),
    ];
    for (const value of cases) expect(canonicalJson(value)).toBe(reference(value));
    expect(() => canonicalJson({ n: 1n })).toThrow(TypeError);
  });
});
