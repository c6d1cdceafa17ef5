import type { SuperJSONResult } from "superjson";
import superjson from "superjson";

/**
 * A single-pass serializer that produces exactly what `superjson.serialize` produces (same `json`,
 * same `meta`, same key order) for the values Haven's outputs are made of: plain objects, arrays,
 * strings, finite numbers, booleans, null and `Date`. Anything else — `undefined`, `Map`, `Set`,
 * `BigInt`, `NaN`/`±Infinity`/`-0`, class instances, invalid dates, keys with `.` or `\` (which
 * superjson escapes), an object reached twice (superjson records referential equalities) — makes
 * it hand the whole value to superjson unchanged, so the wire format never differs.
 *
 * Why: superjson's generic walker (identity tracking, per-node path arrays, deep copy) was ~10% of
 * Haven's self time under `patients.get` load (bench/results/2026-12-02.md); the record is
 * plain JSON plus a few Dates.
 */
export function serializeFast(value: unknown): SuperJSONResult {
  const dates: string[] = [];
  const seen = new Set<object>();
  const json = plain(value, "", dates, seen);
  if (json === FALLBACK) return superjson.serialize(value);
  if (dates.length === 0) return { json: json as SuperJSONResult["json"] };
  const values: Record<string, ["Date"]> = {};
  for (const p of dates) values[p] = ["Date"];
  // `v: 1` is superjson 2's meta version marker; it is only written with meta.
  return {
    json: json as SuperJSONResult["json"],
    meta: { values, v: 1 } as SuperJSONResult["meta"],
  };
}

const FALLBACK = Symbol("fallback");

function plain(v: unknown, path: string, dates: string[], seen: Set<object>): unknown {
  switch (typeof v) {
    case "string":
    case "boolean":
      return v;
    case "number":
      return Number.isFinite(v) && !Object.is(v, -0) ? v : FALLBACK;
    case "object": {
      if (v === null) return null;
      if (seen.has(v)) return FALLBACK;
      seen.add(v);
      if (Array.isArray(v)) {
        const out: unknown[] = new Array(v.length);
        for (let i = 0; i < v.length; i++) {
          if (!(i in v)) return FALLBACK;
          const r = plain(v[i], path === "" ? String(i) : `${path}.${i}`, dates, seen);
          if (r === FALLBACK) return FALLBACK;
          out[i] = r;
        }
        return out;
      }
      if (v instanceof Date) {
        if (Number.isNaN(v.getTime()) || path === "") return FALLBACK;
        dates.push(path);
        return v.toISOString();
      }
      const proto = Object.getPrototypeOf(v);
      if (proto !== Object.prototype && proto !== null) return FALLBACK;
      const out: Record<string, unknown> = {};
      for (const k of Object.keys(v)) {
        if (k.includes(".") || k.includes("\\") || k === "__proto__") return FALLBACK;
        const r = plain(
          (v as Record<string, unknown>)[k],
          path === "" ? k : `${path}.${k}`,
          dates,
          seen,
        );
        if (r === FALLBACK) return FALLBACK;
        out[k] = r;
      }
      if (Object.getOwnPropertySymbols(v).length > 0) return FALLBACK;
      return out;
    }
    default:
      return FALLBACK;
  }
}

/**
 * tRPC data transformer: superjson both ways on the wire, with {@link serializeFast} producing the
 * same output faster on the server's serialize path.
 */
export const fastSuperjson = {
  serialize: serializeFast,
  deserialize: (v: SuperJSONResult) => superjson.deserialize(v),
};
