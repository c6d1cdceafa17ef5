import { ValidationError } from "./errors.ts";

/**
 * Structural limits every procedure input must meet before its schema runs: values the
 * schemas accept but Postgres or date arithmetic cannot handle would otherwise surface as 500s.
 * - no NUL (U+0000) in any string or key: Postgres `text` cannot store it (SQLSTATE 22021);
 * - every `Date` is valid and within [{@link EARLIEST_INSTANT}, {@link LATEST_INSTANT}): the JS
 *   Date limits (±8.64e15 ms) break `+ 1 day` arithmetic and `timestamptz` round trips;
 * - nesting at most {@link MAX_INPUT_DEPTH} levels (no Haven input is deeper than 6).
 */

/** Earliest instant any input may carry (UTC). */
export const EARLIEST_INSTANT = new Date("1800-01-01T00:00:00Z");
/** First instant past the latest any input may carry (UTC). */
export const LATEST_INSTANT = new Date("3000-01-01T00:00:00Z");
/** Deepest object/array nesting accepted in an input. */
export const MAX_INPUT_DEPTH = 32;

/** A `YYYY-MM-DD` calendar date inside the accepted instant range (for local-date inputs). */
export function isDateInRange(isoDate: string): boolean {
  const year = Number(isoDate.slice(0, 4));
  return year >= EARLIEST_INSTANT.getUTCFullYear() && year < LATEST_INSTANT.getUTCFullYear();
}

/** True for a valid Date within the accepted instant range. */
export function isInstantInRange(d: Date): boolean {
  const t = d.getTime();
  return !Number.isNaN(t) && t >= EARLIEST_INSTANT.getTime() && t < LATEST_INSTANT.getTime();
}

/** An input refused by {@link assertSafeInput}; `issues` has the same shape as schema issues. */
export class UnsafeInputError extends ValidationError {
  override name = "UnsafeInputError";
  readonly issues: { path: string[]; message: string }[];
  constructor(path: string[], message: string, reason: string) {
    super(`Invalid input: ${path.join(".") || "(root)"}: ${message}`, reason);
    this.issues = [{ path, message }];
  }
}

/**
 * Walk a raw (already superjson-decoded) input iteratively and refuse the first unsafe value.
 * @throws UnsafeInputError reason `nul_byte`, `instant_out_of_range` or `too_deep`, with the path
 */
export function assertSafeInput(input: unknown): void {
  const stack: { value: unknown; path: string[] }[] = [{ value: input, path: [] }];
  const seen = new Set<object>();
  while (stack.length > 0) {
    const { value, path } = stack.pop() as { value: unknown; path: string[] };
    if (typeof value === "string") {
      if (value.includes("\u0000")) {
        throw new UnsafeInputError(path, "must not contain NUL characters", "nul_byte");
      }
      continue;
    }
    if (value instanceof Date) {
      if (!isInstantInRange(value)) {
        throw new UnsafeInputError(
          path,
          `must be a valid instant from ${EARLIEST_INSTANT.toISOString()} to before ${LATEST_INSTANT.toISOString()}`,
          "instant_out_of_range",
        );
      }
      continue;
    }
    if (value === null || typeof value !== "object" || seen.has(value)) continue;
    seen.add(value);
    if (path.length >= MAX_INPUT_DEPTH) {
      throw new UnsafeInputError(
        path.slice(0, 8),
        `nested deeper than ${MAX_INPUT_DEPTH}`,
        "too_deep",
      );
    }
    const entries: [string, unknown][] =
      value instanceof Map
        ? [...value.entries()].map(([k, v]) => [String(k), v])
        : value instanceof Set
          ? [...value].map((v, i) => [String(i), v])
          : Object.entries(value);
    for (const [k, v] of entries) {
      if (k.includes("\u0000")) {
        throw new UnsafeInputError(path, "keys must not contain NUL characters", "nul_byte");
      }
      stack.push({ value: v, path: [...path, k] });
    }
  }
}
