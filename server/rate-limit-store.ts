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
 * Add `hits` (default 1) to `bucket` in a fixed window of `windowMs` milliseconds, atomically in one
 * upsert, using the database clock (so every instance sharing the database counts the same window).
 * A window that has ended restarts at `hits`.
 * @returns hits in the current window (including these) and milliseconds until it resets
 * @throws the driver's error when the database is unreachable (the plugin then lets the request
 *   through: `skipOnError`, and the handler answers 503 itself)
 */
export async function incrementBucket(
  db: Database,
  bucket: string,
  windowMs: number,
  hits = 1,
): Promise<{ current: number; ttl: number }> {
  const result = await db.execute(sql`
    INSERT INTO rate_limit_buckets (bucket, hits, reset_at)
    VALUES (${bucket}, ${hits}, now() + make_interval(secs => ${windowMs / 1000}))
    ON CONFLICT (bucket) DO UPDATE SET
      hits = CASE WHEN rate_limit_buckets.reset_at <= now() THEN excluded.hits
                  ELSE rate_limit_buckets.hits + excluded.hits END,
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

type IncrCallback = (error: Error | null, result?: { current: number; ttl: number }) => void;

/**
 * Hand one hit its answer. A callback that throws (a bug in the caller) must not keep the hits
 * after it in the same upsert from being answered, nor surface as an unhandled rejection of the
 * store's promise chain; it is reported as a process warning carrying the error's name only.
 */
function answer(
  cb: IncrCallback,
  err: Error | null,
  result?: { current: number; ttl: number },
): void {
  try {
    cb(err, result);
  } catch (thrown) {
    const name = thrown instanceof Error ? thrown.name : typeof thrown;
    process.emitWarning(`rate-limit callback threw (${name})`, { code: "HAVEN_RATE_LIMIT_CB" });
  }
}

/**
 * A `@fastify/rate-limit` store over the `rate_limit_buckets` table, so limits hold across every
 * Haven instance on one database (ARCHITECTURE §3: no per-process security state). Works on
 * PostgreSQL and on embedded PGlite.
 *
 * Hits on one bucket are group-committed: while an upsert for a bucket is in flight, further hits
 * on it queue, and the queue goes out as ONE upsert adding its length when the previous one
 * finishes (no timer). Concurrent requests of one session used to queue on the row lock in
 * Postgres anyway; now they share the statement (bench/results/optimisations.md §11.4). Each
 * request is still counted exactly once and answered only after the upsert carrying its hit
 * committed; the k-th of n hits in an upsert that returned `current` sees `current - n + k`, the
 * value it would have seen had the n upserts run one after another. A failing upsert fails every
 * hit it carried (none of them was counted).
 * @param db the application database
 * @returns the store constructor to pass as the plugin's `store` option
 */
export function postgresRateLimitStore(db: Database): new () => CounterStore {
  let calls = 0;
  /** Buckets with an upsert in flight → the hits queued behind it (same window length). */
  const queued = new Map<string, IncrCallback[]>();
  const send = (slot: string, bucket: string, windowMs: number, callbacks: IncrCallback[]) => {
    queued.set(slot, []);
    incrementBucket(db, bucket, windowMs, callbacks.length)
      .then(
        ({ current, ttl }) => {
          const first = current - callbacks.length;
          for (const [i, cb] of callbacks.entries()) {
            answer(cb, null, { current: first + i + 1, ttl });
          }
        },
        (err: unknown) => {
          const e = err instanceof Error ? err : new Error("rate-limit store failed");
          for (const cb of callbacks) answer(cb, e);
        },
      )
      .finally(() => {
        const next = queued.get(slot) ?? [];
        if (next.length > 0) send(slot, bucket, windowMs, next);
        else queued.delete(slot);
      });
  };
  class PostgresRateLimitStore implements CounterStore {
    incr(key: string, callback: IncrCallback, timeWindow: number): void {
      if (++calls % SWEEP_EVERY === 0) void sweepBuckets(db).catch(() => {});
      const slot = `${timeWindow}:${key}`;
      const waiting = queued.get(slot);
      if (waiting) waiting.push(callback);
      else send(slot, key, timeWindow, [callback]);
    }
    child(): CounterStore {
      return this;
    }
  }
  return PostgresRateLimitStore;
}
