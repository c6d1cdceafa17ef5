import { fc, test } from "@fast-check/vitest";
import superjson from "superjson";
import { describe, expect, it } from "vitest";
import { serializeFast } from "./fast-superjson.ts";

const leaf = fc.oneof(
  fc.string(),
  fc.double(),
  fc.integer(),
  fc.boolean(),
  fc.constant(null),
  fc.constant(undefined),
  fc.date(),
  fc.bigInt(),
);
const value = fc.letrec((tie) => ({
  node: fc.oneof({ depthSize: "small" }, leaf, tie("arr"), tie("obj")),
  arr: fc.array(tie("node"), { maxLength: 5 }),
  obj: fc.dictionary(
    fc.oneof(
      fc.string(),
      fc.constantFrom("a.b", "x\\y", "0", "1", "", "__proto__", "constructor", "prototype"),
    ),
    tie("node"),
    {
      maxKeys: 5,
    },
  ),
})).node;

/**
 * What a serializer does with a value: its JSON text, or the error it throws. superjson refuses a
 * `__proto__`, `constructor` or `prototype` key (prototype pollution), which fast-check generates;
 * the fast path must refuse them too.
 */
function outcome(serialize: () => unknown): string {
  try {
    return JSON.stringify(serialize());
  } catch (e) {
    return `throws ${(e as Error).message}`;
  }
}

describe("serializeFast", () => {
  test.prop([value])("is byte-identical to superjson.serialize (or throws as it does)", (v) => {
    expect(outcome(() => serializeFast(v))).toBe(outcome(() => superjson.serialize(v)));
  });

  it("matches superjson on a record-shaped value with dates and on shared references", () => {
    const d = new Date("2026-01-01T00:00:00Z");
    const record = {
      id: "x",
      entries: [
        { recordedAt: new Date(0), resource: { a: [1, { b: "c" }] } },
        { recordedAt: new Date(1), resource: { a: [] } },
      ],
      truncated: false,
    };
    expect(serializeFast(record)).toEqual(superjson.serialize(record));
    expect(serializeFast(record).meta).toEqual({
      values: { "entries.0.recordedAt": ["Date"], "entries.1.recordedAt": ["Date"] },
      v: 1,
    });
    const shared = { a: d, b: d, o: { k: 1 } };
    const twice = { x: shared.o, y: shared.o, ...shared };
    expect(serializeFast(twice)).toEqual(superjson.serialize(twice));
    expect(serializeFast(new Map([[1, 2]]))).toEqual(superjson.serialize(new Map([[1, 2]])));
  });

  it("treats an empty key as a path segment and orders meta keys as superjson does (CI seed 799343029)", () => {
    const cases: unknown[] = [
      { "": [new Date(0)] },
      { "": new Date(0) },
      { "": { "": new Date(0) } },
      [{ "": new Date(0) }],
      { a: { "": [1, new Date(0)] } },
      // seed 1058851016: superjson's meta lists "0.1" before "0.0." (integer-like keys first).
      [[{ "": new Date(0) }, new Date(0)]],
      { x: [{ at: new Date(0) }, new Date(1), { at: new Date(2) }], 3: new Date(3) },
    ];
    for (const v of cases) {
      expect(JSON.stringify(serializeFast(v))).toBe(JSON.stringify(superjson.serialize(v)));
    }
  });

  it("round-trips through superjson.deserialize", () => {
    const v = { when: new Date(5), list: [{ at: new Date(6) }], n: 1 };
    expect(superjson.deserialize(serializeFast(v))).toEqual(v);
  });
});
