import { and, desc, eq, gt, inArray, lt, or, sql } from "drizzle-orm";
import type { Executor } from "../../db/client.ts";
import { authThrottleEvents } from "../../db/schema/index.ts";
import { uuidv7 } from "../../lib/uuid.ts";
import { TooManyRequestsError } from "../kernel/errors.ts";
import { sha256Hex } from "../kernel/hash.ts";

/**
 * Sliding-window throttle for authentication attempts (OWASP ASVS 2.2.1), stored in Postgres
 * so every app instance shares the counts (ARCHITECTURE §3). Each attempt is first RESERVED (a row
 * inserted and committed), then counted: N parallel guesses all see each other, so a burst cannot
 * slip past the limit. A successful attempt deletes its reservation (and, for the account, the
 * earlier failures); a failed one leaves its row as the failure record. Fails closed: when the
 * store cannot be read or written, the attempt is refused ({@link ThrottleUnavailableError}).
 */

/** One limit: at most `max` failures per `windowMs` in a bucket. */
export interface ThrottleLimit {
  max: number;
  windowMs: number;
}

const MINUTE = 60_000;
/** An in-flight attempt that has not settled within this (ms, real time) counts as settled. */
const IN_FLIGHT_MS = 10_000;
/** Longest a request waits (ms, real time) for parallel attempts to settle before it is refused. */
const IN_FLIGHT_WAIT_MS = 3_000;

/** Haven's limits. Per account they are strict; per IP looser (a clinic shares one NAT address). */
export const THROTTLE_LIMITS = {
  login: {
    account: { max: 5, windowMs: 15 * MINUTE },
    ip: { max: 50, windowMs: 15 * MINUTE },
  },
  mfa: {
    account: { max: 5, windowMs: 15 * MINUTE },
    ip: { max: 50, windowMs: 15 * MINUTE },
  },
  /** Password-reset e-mails: per account (mail-bombing) and per IP. */
  reset: {
    account: { max: 3, windowMs: 60 * MINUTE },
    ip: { max: 20, windowMs: 60 * MINUTE },
  },
  /** Invitation acceptance (date-of-birth guesses) per IP; per invitation it is a counter column. */
  invite: {
    ip: { max: 20, windowMs: 15 * MINUTE },
  },
} as const satisfies Record<string, Partial<Record<"account" | "ip", ThrottleLimit>>>;

export type ThrottleScope = keyof typeof THROTTLE_LIMITS;

/** A key to throttle on: the scope, what it is (account or IP) and its value. */
export interface ThrottleKey {
  scope: ThrottleScope;
  kind: "account" | "ip";
  /** Account: a user id or e-mail blind index; IP: the address. Only a hash of it is stored. */
  value: string;
  limit: ThrottleLimit;
}

/** The throttle's storage failed: refuse (fail closed). Maps to TOO_MANY_REQUESTS. */
export class ThrottleUnavailableError extends TooManyRequestsError {
  override name = "ThrottleUnavailableError";
  constructor() {
    super("Sign-in is temporarily unavailable; try again shortly", 30);
  }
}

/** SHA-256 of `scope:kind:value`: no e-mail or address is readable in the table. */
export function bucketOf(key: Pick<ThrottleKey, "scope" | "kind" | "value">): string {
  return sha256Hex(`${key.scope}:${key.kind}:${key.value}`);
}

/** The result of {@link reserve}: either blocked (with retry-after) or a live reservation. */
export interface Reservation {
  /** Non-null when a limit is exceeded; the reservation was already withdrawn. */
  blocked: { key: ThrottleKey; retryAfterSeconds: number } | null;
  /** Failures (including this attempt) per key, in the order given. */
  counts: number[];
  /**
   * The attempt has been checked (call right after verifying the secret, success or not): parallel
   * attempts stop waiting for it. Its row stays as the failure record unless `succeed` removes it.
   */
  settle(): void;
  /** The attempt succeeded: withdraw it and clear the given keys' earlier failures. */
  succeed(clearKinds?: ("account" | "ip")[]): Promise<void>;
}

/** Keys with duplicates (same bucket) removed; null values dropped. */
function usable(keys: (ThrottleKey | null)[]): ThrottleKey[] {
  const seen = new Set<string>();
  return keys.filter((k): k is ThrottleKey => {
    if (!k?.value) return false;
    const b = bucketOf(k);
    if (seen.has(b)) return false;
    seen.add(b);
    return true;
  });
}

/**
 * Reserve one attempt in every bucket and count the window. Call with the plain database (not a
 * transaction): the rows must commit even when the attempt's own work rolls back.
 * @param now current time (UTC), from the injected clock
 * @throws ThrottleUnavailableError when the store errors (fail closed)
 */
export async function reserve(
  db: Executor,
  now: Date,
  keysIn: (ThrottleKey | null)[],
): Promise<Reservation> {
  const keys = usable(keysIn);
  const rows = keys.map((k) => ({ id: uuidv7(), bucket: bucketOf(k), occurredAt: now }));
  try {
    // Count failures, not attempts: while parallel attempts of this process on a bucket
    // are still being checked, their reservations are not failures yet (a correct one deletes its
    // row). When the limit is exceeded only while such attempts are in flight, withdraw, wait a
    // jittered moment and count again, within a small budget; settled failures block at once.
    const started = Date.now();
    for (const r of rows) {
      const m = inFlight.get(r.bucket) ?? new Map<string, number>();
      m.set(r.id, started);
      inFlight.set(r.bucket, m);
    }
    let counts: number[] = [];
    let blocked: Reservation["blocked"] = null;
    for (;;) {
      if (rows.length > 0) await db.insert(authThrottleEvents).values(rows);
      counts = await countWindows(db, now, keys, rows);
      blocked = null;
      let waiting = 0;
      for (const [i, k] of keys.entries()) {
        if ((counts[i] ?? 0) > k.limit.max && !blocked) {
          blocked = { key: k, retryAfterSeconds: 1 };
          waiting = othersInFlight(rows[i]?.bucket ?? "", rows[i]?.id ?? "");
        }
      }
      if (!blocked) break;
      await withdraw(db, rows);
      if (waiting === 0 || Date.now() - started >= IN_FLIGHT_WAIT_MS) break;
      await new Promise((r) => setTimeout(r, 20 + Math.random() * 80));
    }
    if (blocked) settle(rows);
    if (blocked) blocked.retryAfterSeconds = await retryAfter(db, now, blocked.key);
    // Housekeeping: drop this bucket's rows that left every window.
    if (rows.length > 0 && Math.random() < 0.05) {
      await db
        .delete(authThrottleEvents)
        .where(lt(authThrottleEvents.occurredAt, new Date(now.getTime() - 24 * 60 * MINUTE)));
    }
    return {
      blocked,
      counts,
      settle: () => settle(rows),
      succeed: async (clearKinds = ["account"]) => {
        settle(rows);
        const clear = keys.filter((k) => clearKinds.includes(k.kind)).map(bucketOf);
        if (rows.length === 0 && clear.length === 0) return;
        const ids = rows.map((r) => r.id);
        await db
          .delete(authThrottleEvents)
          .where(
            clear.length > 0
              ? or(inArray(authThrottleEvents.id, ids), inArray(authThrottleEvents.bucket, clear))
              : inArray(authThrottleEvents.id, ids),
          );
      },
    };
  } catch (err) {
    settle(rows);
    if (err instanceof TooManyRequestsError) throw err;
    throw Object.assign(new ThrottleUnavailableError(), { cause: err });
  }
}

/** Rows per key's bucket in its window, in one round trip. */
async function countWindows(
  db: Executor,
  now: Date,
  keys: ThrottleKey[],
  rows: { bucket: string }[],
): Promise<number[]> {
  if (keys.length === 0) return [];
  const columns = keys.map((k, i) => {
    const since = new Date(now.getTime() - k.limit.windowMs).toISOString();
    return sql`count(*) filter (where ${authThrottleEvents.bucket} = ${rows[i]?.bucket} and ${authThrottleEvents.occurredAt} > ${since}::timestamptz)::int as ${sql.raw(`n${i}`)}`;
  });
  const result = await db.execute<Record<string, number>>(
    sql`select ${sql.join(columns, sql`, `)} from ${authThrottleEvents} where ${inArray(
      authThrottleEvents.bucket,
      rows.map((r) => r.bucket),
    )}`,
  );
  const row = (Array.isArray(result) ? result[0] : (result as { rows: unknown[] }).rows[0]) as
    | Record<string, number>
    | undefined;
  return keys.map((_, i) => Number(row?.[`n${i}`] ?? 0));
}

/**
 * Attempts of this process that hold a reservation and have not settled yet, per bucket: id →
 * real-time start (ms). An entry older than {@link IN_FLIGHT_MS} is treated as settled.
 */
const inFlight = new Map<string, Map<string, number>>();

function othersInFlight(bucket: string, ownId: string): number {
  const m = inFlight.get(bucket);
  if (!m) return 0;
  const cutoff = Date.now() - IN_FLIGHT_MS;
  let n = 0;
  for (const [id, at] of m) {
    if (at < cutoff) m.delete(id);
    else if (id !== ownId) n++;
  }
  if (m.size === 0) inFlight.delete(bucket);
  return n;
}

function settle(rows: { id: string; bucket: string }[]): void {
  for (const r of rows) {
    const m = inFlight.get(r.bucket);
    m?.delete(r.id);
    if (m?.size === 0) inFlight.delete(r.bucket);
  }
}

async function withdraw(db: Executor, rows: { id: string }[]): Promise<void> {
  if (rows.length === 0) return;
  await db.delete(authThrottleEvents).where(
    inArray(
      authThrottleEvents.id,
      rows.map((r) => r.id),
    ),
  );
}

/**
 * Seconds until the bucket holds fewer than `max` failures again: when the `max`-th newest
 * failure leaves the window. At least 1.
 */
async function retryAfter(db: Executor, now: Date, key: ThrottleKey): Promise<number> {
  const since = new Date(now.getTime() - key.limit.windowMs);
  const [row] = await db
    .select({ at: authThrottleEvents.occurredAt })
    .from(authThrottleEvents)
    .where(
      and(eq(authThrottleEvents.bucket, bucketOf(key)), gt(authThrottleEvents.occurredAt, since)),
    )
    .orderBy(desc(authThrottleEvents.occurredAt))
    .offset(key.limit.max - 1)
    .limit(1);
  if (!row) return 1;
  const ms = row.at.getTime() + key.limit.windowMs - now.getTime();
  return Math.max(1, Math.ceil(ms / 1000));
}

/** Convenience: throttle keys for an account and an IP in one scope (IP omitted when unknown). */
export function keysFor(
  scope: ThrottleScope,
  account: string | null,
  ip: string | null,
): (ThrottleKey | null)[] {
  const limits = THROTTLE_LIMITS[scope] as Partial<Record<"account" | "ip", ThrottleLimit>>;
  return [
    account && limits.account
      ? { scope, kind: "account", value: account, limit: limits.account }
      : null,
    ip && limits.ip ? { scope, kind: "ip", value: ip, limit: limits.ip } : null,
  ];
}
