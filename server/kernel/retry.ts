import { sqlState } from "./errors.ts";

/**
 * SQLSTATEs that mean "the database gave up on this transaction, run it again": serialization
 * failure (40001) and deadlock detected (40P01). PostgreSQL documents both as safe to retry whole
 * (PostgreSQL 15 manual, 13.2.3 "Serializable Isolation Level" and 13.3.4 "Deadlocks"); two
 * concurrent writers that both hit the `appointments_no_overlap` exclusion constraint can each wait
 * on the other's index entry, and the deadlock detector then aborts one of them.
 */
export const TRANSIENT_SQLSTATES: ReadonlySet<string> = new Set(["40001", "40P01"]);

/** Is `err` (or a driver error it wraps) a transient transaction failure worth retrying? */
export function isTransientFailure(err: unknown): boolean {
  const code = sqlState(err);
  return code !== undefined && TRANSIENT_SQLSTATES.has(code);
}

/** Bounds for {@link retryTransient}; all durations in ms. */
export type RetryOptions = {
  /** Total attempts including the first (≥ 1). Default 6. */
  attempts?: number;
  /** Backoff cap for the first retry; doubles per retry. Default 8 ms. */
  baseDelayMs?: number;
  /** Upper bound of any single wait. Default 250 ms. */
  maxDelayMs?: number;
  /** Source of randomness in [0, 1); injectable for tests. */
  random?: () => number;
};

/**
 * Run `attempt` and run it again, with "full jitter" exponential backoff (a random wait in
 * [0, min(maxDelayMs, baseDelayMs · 2^n))), while it fails with a transient SQLSTATE
 * ({@link TRANSIENT_SQLSTATES}). `attempt` must be a whole transaction that re-reads what it
 * needs, so a retry never acts on stale data. Any other error, or the last transient one once
 * `attempts` are spent, is rethrown unchanged; the caller decides how to answer it.
 */
export async function retryTransient<T>(
  attempt: () => Promise<T>,
  options: RetryOptions = {},
): Promise<T> {
  const attempts = Math.max(1, options.attempts ?? 6);
  const base = options.baseDelayMs ?? 8;
  const cap = options.maxDelayMs ?? 250;
  const random = options.random ?? Math.random;
  for (let n = 0; ; n++) {
    try {
      return await attempt();
    } catch (err) {
      if (n + 1 >= attempts || !isTransientFailure(err)) throw err;
      const waitMs = Math.floor(random() * Math.min(cap, base * 2 ** n));
      await new Promise((resolve) => setTimeout(resolve, waitMs));
    }
  }
}
