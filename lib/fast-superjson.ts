import type { SuperJSONResult } from "superjson";
import superjson from "superjson";

/**
 * A single-pass serializer that produces exactly what `superjson.serialize` produces (same `json`,
 * same `meta`, same key order) for the values Haven's outputs are made of: plain objects, arrays,
 * strings, finite numbers, booleans, null and `Date`. Anything else — `undefined`, `Map`, `Set`,
 * `BigInt`, `NaN`/`±Infinity`/`-0`, class instances, invalid dates, keys with `.` or `\` (which
 * superjson escapes), `__proto__`/`constructor`/`prototype` keys (which superjson refuses: it
 * throws, and so does this then), an object reached twice (superjson records referential
 * equalities) — makes it hand the whole value to superjson unchanged, so the wire format never
 * differs. The `meta.values` keys come in superjson's order too (see {@link fold}).
 * @param value a procedure's output
 * @returns `{ json, meta? }` exactly as `superjson.serialize(value)` returns it
 * @throws Error as superjson does, for a prototype-polluting key
 *
 * Why: superjson's generic walker (identity tracking, per-node path arrays, deep copy) was ~10% of
 * Haven's self time under `patients.get` load (bench/results/2026-12-02.md); the record is
 * plain JSON plus a few Dates.
 */
export function serializeFast(value: unknown): SuperJSONResult {
  const seen = new Set<object>();
  annotations = undefined;
  const json = plain(value, seen);
  const values = annotations;
  annotations = undefined;
  // A Date at the root is annotated as a bare ["Date"]; leave that shape to superjson.
  if (json === FALLBACK || values === DATE) return superjson.serialize(value);
  if (values === undefined) return { json: json as SuperJSONResult["json"] };
  // `v: 1` is superjson 2's meta version marker; it is only written with meta.
  return {
    json: json as SuperJSONResult["json"],
    meta: { values, v: 1 } as SuperJSONResult["meta"],
  };
}

const FALLBACK = Symbol("fallback");
/**
 * Object keys superjson's walker refuses: it throws on them as a prototype-pollution risk, and so
 * does {@link serializeFast}. A value holding one can never be sent on Haven's wire, so input that
 * is stored and served back (FHIR import) refuses them up front.
 */
export const WIRE_REFUSED_KEYS: ReadonlySet<string> = new Set([
  "__proto__",
  "constructor",
  "prototype",
]);
const DATE = ["Date"] as const;

/** A node's type annotations, as superjson's walker builds them: a Date leaf, or relative paths. */
type Annotations = typeof DATE | Record<string, typeof DATE>;

/**
 * The annotations of the node {@link plain} last returned (`undefined` when it holds no Date).
 * Passed out of band so the walk allocates nothing for the many nodes without a Date.
 */
let annotations: Annotations | undefined;

/**
 * Folds a child's annotations into its parent's, keyed exactly as superjson's walker does: a Date
 * child under its own key, a subtree's entries under `key.path`. The accumulator is a plain object
 * on purpose: superjson's meta inherits JavaScript's property order, which lists integer-like keys
 * (`"1"`) before string keys (`"0.at"`) at every level, and only a real object reproduces it.
 */
function fold(
  inner: Record<string, typeof DATE> | undefined,
  key: string | number,
  child: Annotations,
): Record<string, typeof DATE> {
  const acc = inner ?? {};
  if (child === DATE) acc[key] = DATE;
  else for (const k in child) acc[`${key}.${k}`] = DATE;
  return acc;
}

/**
 * The JSON form of `v` (a Date as its ISO string), or {@link FALLBACK} when `v` holds anything
 * superjson would treat differently. Leaves `v`'s annotations in {@link annotations}.
 */
function plain(v: unknown, seen: Set<object>): unknown {
  switch (typeof v) {
    case "string":
    case "boolean":
      annotations = undefined;
      return v;
    case "number":
      annotations = undefined;
      return Number.isFinite(v) && !Object.is(v, -0) ? v : FALLBACK;
    case "object": {
      annotations = undefined;
      if (v === null) return null;
      if (seen.has(v)) return FALLBACK;
      seen.add(v);
      let inner: Record<string, typeof DATE> | undefined;
      if (Array.isArray(v)) {
        const out: unknown[] = new Array(v.length);
        for (let i = 0; i < v.length; i++) {
          if (!(i in v)) return FALLBACK;
          const r = plain(v[i], seen);
          if (r === FALLBACK) return FALLBACK;
          if (annotations !== undefined) inner = fold(inner, i, annotations);
          out[i] = r;
        }
        annotations = inner;
        return out;
      }
      if (v instanceof Date) {
        if (Number.isNaN(v.getTime())) return FALLBACK;
        annotations = DATE;
        return v.toISOString();
      }
      const proto = Object.getPrototypeOf(v);
      if (proto !== Object.prototype && proto !== null) return FALLBACK;
      const out: Record<string, unknown> = {};
      for (const k of Object.keys(v)) {
        if (k.includes(".") || k.includes("\\") || WIRE_REFUSED_KEYS.has(k)) return FALLBACK;
        const r = plain((v as Record<string, unknown>)[k], seen);
        if (r === FALLBACK) return FALLBACK;
        if (annotations !== undefined) inner = fold(inner, k, annotations);
        out[k] = r;
      }
      if (Object.getOwnPropertySymbols(v).length > 0) return FALLBACK;
      annotations = inner;
      return out;
    }
    default:
      annotations = undefined;
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
