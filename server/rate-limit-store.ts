import { sql } from "drizzle-orm";
import type { Database } from "../db/client.ts";
import { rowsOf } from "../db/rows.ts";

/** The counter-store contract of `@fastify/rate-limit` (structural, so this file needs no Fastify import). */
export interface CounterStore {
  incr(
    key: string,
    callback: (error: Error | null, result?: { current: number; ttl: number }) => void,
    timeWindow: number,
  ): void;
  child(): CounterStore;
}

/** Run the expired-row sweep on roughly one increment in this many. */
const SWEEP_EVERY = 500;

/**
 * Add one hit to `bucket` in a fixed window of `windowMs` milliseconds, atomically in one upsert,
 * using the database clock (so every instance sharing the database counts the same window).
 * @returns hits in the current window (including this one) and milliseconds until it resets
 * @throws the driver's error when the database is unreachable (the plugin then lets the request
 *   through: `skipOnError`, and the handler answers 503 itself)
 */
export async function incrementBucket(
  db: Database,
  bucket: string,
  windowMs: number,
): Promise<{ current: number; ttl: number }> {
  const result = await db.execute(sql`
    INSERT INTO rate_limit_buckets (bucket, hits, reset_at)
    VALUES (${bucket}, 1, now() + make_interval(secs => ${windowMs / 1000}))
    ON CONFLICT (bucket) DO UPDATE SET
      hits = CASE WHEN rate_limit_buckets.reset_at <= now() THEN 1
                  ELSE rate_limit_buckets.hits + 1 END,
      reset_at = CASE WHEN rate_limit_buckets.reset_at <= now() THEN excluded.reset_at
                      ELSE rate_limit_buckets.reset_at END
    RETURNING hits, GREATEST(0, CEIL(EXTRACT(EPOCH FROM (reset_at - now())) * 1000))::bigint AS ttl`);
  const row = rowsOf<{ hits: number | string; ttl: number | string }>(result)[0];
  if (!row) throw new Error("rate-limit upsert returned no row");
  return { current: Number(row.hits), ttl: Number(row.ttl) };
}

/** Delete buckets whose window ended more than a minute ago. */
export async function sweepBuckets(db: Database): Promise<void> {
  await db.execute(
    sql`DELETE FROM rate_limit_buckets WHERE reset_at < now() - interval '1 minute'`,
  );
}

/**
 * A `@fastify/rate-limit` store over the `rate_limit_buckets` table, so limits hold across every
 * Haven instance on one database (ARCHITECTURE §3: no per-process security state). Works on
 * PostgreSQL and on embedded PGlite.
 * @param db the application database
 * @returns the store constructor to pass as the plugin's `store` option
 */
export function postgresRateLimitStore(db: Database): new () => CounterStore {
  let calls = 0;
  class PostgresRateLimitStore implements CounterStore {
    incr(
      key: string,
      callback: (error: Error | null, result?: { current: number; ttl: number }) => void,
      timeWindow: number,
    ): void {
      if (++calls % SWEEP_EVERY === 0) void sweepBuckets(db).catch(() => {});
      incrementBucket(db, key, timeWindow).then(
        (r) => callback(null, r),
        (err: unknown) =>
          callback(err instanceof Error ? err : new Error("rate-limit store failed")),
      );
    }
    child(): CounterStore {
      return this;
    }
  }
  return PostgresRateLimitStore;
}
