import { validate, version } from "uuid";
import { describe, expect, it } from "vitest";
import { uuidv7 } from "./uuid.ts";

describe("uuidv7 (pooled randomness)", () => {
  it("mints valid version-7 UUIDs carrying the current Unix ms time", () => {
    const before = Date.now();
    const id = uuidv7();
    const after = Date.now();
    expect(validate(id)).toBe(true);
    expect(version(id)).toBe(7);
    expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    const ms = Number.parseInt(id.replace(/-/g, "").slice(0, 12), 16);
    expect(ms).toBeGreaterThanOrEqual(before);
    expect(ms).toBeLessThanOrEqual(after);
  });

  it("is strictly increasing and unique across many pool refills, also within one millisecond", () => {
    const ids = Array.from({ length: 50_000 }, () => uuidv7()); // ~195 refills of the pool
    for (let i = 1; i < ids.length; i++)
      expect((ids[i] as string) > (ids[i - 1] as string)).toBe(true);
    expect(new Set(ids).size).toBe(ids.length);
    // Far more ids than milliseconds passed: the counter, not the clock, kept them ordered.
    const millis = new Set(ids.map((id) => id.slice(0, 13)));
    expect(millis.size).toBeLessThan(ids.length / 10);
  });

  it("draws fresh random bits for every id (no 16-byte block reused)", () => {
    const tails = Array.from({ length: 10_000 }, () => uuidv7().slice(-12));
    expect(new Set(tails).size).toBe(tails.length);
  });
});
