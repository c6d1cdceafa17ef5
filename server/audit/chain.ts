import { and, asc, desc, eq, getTableColumns, gt, gte, inArray, isNull, sql } from "drizzle-orm";
import type { Database, Executor } from "../../db/client.ts";
import { rowsOf } from "../../db/rows.ts";
import { auditChain, auditEvents } from "../../db/schema/index.ts";
import { canonicalJson } from "../kernel/canonical-json.ts";
import { sha256Hex } from "../kernel/hash.ts";

/**
 * Tamper evidence for the audit trail (HIPAA 45 CFR 164.312(b), 164.312(c)(1)).
 *
 * Requests only INSERT into `audit_events`; nothing on the request path takes a lock. A sealer
 * (one at a time across every instance, through a transaction-scoped Postgres advisory lock)
 * appends one `audit_chain` link per event, in sealing order:
 *
 *   hash(seq) = SHA-256( prev_hash | seq | event_id | canonical(event) )
 *
 * where canonical(event) is the event row as canonical JSON (sorted keys, null members dropped so
 * a column added later does not change old hashes; `occurred_at` at microsecond precision).
 * {@link verifyAuditChain} recomputes the chain and reports the first broken link: an event
 * changed after sealing, an event deleted, a link deleted or altered. Both tables are append-only
 * (trigger + grants, migration 0005), so these findings mean someone bypassed the database's own
 * protection. Tail truncation (deleting the newest events AND their links) is caught by comparing
 * with an anchor: the sealer logs each new head `{ seq, hash }`, and verify accepts one.
 */

/** `prev_hash` of the first link. */
export const GENESIS_HASH = "0".repeat(64);
/** Advisory-lock key of the sealer (`hashtext('haven.audit.sealer')` computed once, as a constant). */
const SEALER_LOCK_KEY = 7_262_715_011;
/** Unsealed events younger than this (by their UUIDv7 time) are re-checked on every run. */
const DEFAULT_LOOKBACK_MS = 15 * 60_000;

/** The head of the chain: its newest link. */
export interface ChainHead {
  seq: number;
  hash: string;
}

/** The event columns as hashed: every column, `occurred_at` as microsecond UTC text. */
const hashedColumns = {
  ...getTableColumns(auditEvents),
  occurredAt: sql<string>`to_char(${auditEvents.occurredAt} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`,
};

type HashedEvent = Record<string, unknown> & { id: string };

/** Canonical text of one event row (null members dropped). */
export function canonicalEvent(row: Record<string, unknown>): string {
  const clean: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(row)) {
    if (v === null || v === undefined) continue;
    clean[k] = v instanceof Date ? v.toISOString() : v;
  }
  return canonicalJson(clean);
}

/** Hash of link `seq` over `event` chained to `prevHash` (hex SHA-256). */
export function linkHash(prevHash: string, seq: number, event: HashedEvent): string {
  return sha256Hex(`${prevHash}\n${seq}\n${event.id}\n${canonicalEvent(event)}`);
}

/** Milliseconds since the epoch encoded in a UUIDv7, or null for another UUID version. */
export function uuidV7Time(id: string): number | null {
  if (!/^[0-9a-f]{8}-[0-9a-f]{4}-7/i.test(id)) return null;
  return Number.parseInt(id.replaceAll("-", "").slice(0, 12), 16);
}

/** The smallest UUID whose first 48 bits encode `ms` (a lower bound for UUIDv7 ids at `ms`). */
function uuidFloor(ms: number): string {
  const hex = Math.max(0, Math.floor(ms)).toString(16).padStart(12, "0").slice(-12);
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-0000-0000-000000000000`;
}

async function readHead(db: Executor): Promise<(ChainHead & { eventId: string }) | null> {
  const [head] = await db
    .select({ seq: auditChain.seq, hash: auditChain.hash, eventId: auditChain.eventId })
    .from(auditChain)
    .orderBy(desc(auditChain.seq))
    .limit(1);
  return head ?? null;
}

export interface SealOptions {
  /** Events per link batch (default 2000). */
  batchSize?: number;
  /**
   * Scan every event for missing links instead of only those near the head (run once per process
   * start and before verification, so events written while no server ran are sealed too).
   */
  full?: boolean;
  lookbackMs?: number;
}

export interface SealResult {
  /** Links appended by this run. */
  sealed: number;
  head: ChainHead | null;
  /** True when another sealer held the lock (nothing was done; it seals instead). */
  busy: boolean;
}

/**
 * Append links for unsealed events (oldest UUIDv7 first), in batches, each in its own transaction
 * under the sealer's advisory lock. Safe to call from many instances at once: one seals, the
 * others return `busy`.
 * @throws the driver's error on database failure (nothing half-written: each batch is one transaction)
 */
export async function sealAuditChain(db: Database, options: SealOptions = {}): Promise<SealResult> {
  const batchSize = options.batchSize ?? 2000;
  const lookback = options.lookbackMs ?? DEFAULT_LOOKBACK_MS;
  let sealed = 0;
  let head: ChainHead | null = null;
  for (;;) {
    const batch = await db.transaction(async (tx) => {
      const [lock] = rowsOf<{ locked: boolean }>(
        await tx.execute(
          sql`SELECT pg_try_advisory_xact_lock(${SEALER_LOCK_KEY}::bigint) AS locked`,
        ),
      );
      if (!lock?.locked) return null;
      const current = await readHead(tx);
      const headTime = current ? uuidV7Time(current.eventId) : null;
      const floor = options.full || headTime === null ? null : uuidFloor(headTime - lookback);
      const events = (await tx
        .select(hashedColumns)
        .from(auditEvents)
        .leftJoin(auditChain, eq(auditChain.eventId, auditEvents.id))
        .where(and(isNull(auditChain.seq), floor ? gte(auditEvents.id, floor) : undefined))
        .orderBy(asc(auditEvents.id))
        .limit(batchSize)) as HashedEvent[];
      let seq = current?.seq ?? 0;
      let prev = current?.hash ?? GENESIS_HASH;
      const links: (typeof auditChain.$inferInsert)[] = [];
      for (const event of events) {
        seq++;
        const hash = linkHash(prev, seq, event);
        links.push({ seq, eventId: event.id, prevHash: prev, hash });
        prev = hash;
      }
      // One jsonb parameter instead of 4 per link: drizzle building a 2,000-link INSERT parameter
      // by parameter was most of the sealer's CPU (bench/results/optimisations.md §12).
      if (links.length > 0) {
        await tx.insert(auditChain).select(
          sql`select l.seq, l.event_id, l.prev_hash, l.hash, now() from jsonb_to_recordset(${JSON.stringify(
            links.map((l) => ({
              seq: l.seq,
              event_id: l.eventId,
              prev_hash: l.prevHash,
              hash: l.hash,
            })),
          )}::jsonb) as l(seq bigint, event_id uuid, prev_hash text, hash text)`,
        );
      }
      return {
        count: links.length,
        head: current || links.length > 0 ? { seq, hash: prev } : null,
        more: events.length === batchSize,
      };
    });
    if (!batch) return { sealed, head: head ?? (await readHead(db)), busy: true };
    sealed += batch.count;
    head = batch.head;
    if (!batch.more) break;
  }
  return { sealed, head: head ? { seq: head.seq, hash: head.hash } : null, busy: false };
}

/** What is wrong at one place of the chain. */
export type ChainProblemKind =
  /** The event's current content does not hash to its link: it was changed after sealing. */
  | "event_modified"
  /** The link names an event that no longer exists: it was deleted. */
  | "event_missing"
  /** A sequence number is absent: a link was deleted. */
  | "link_missing"
  /** A link's `prev_hash` does not equal the previous link's hash: a link was altered. */
  | "link_altered"
  /** The anchor given to verify does not match the chain (tail rewritten or truncated). */
  | "anchor_mismatch";

export interface ChainProblem {
  kind: ChainProblemKind;
  /** Link sequence number. */
  seq: number;
  /** Event id the link names (null for a missing link). */
  eventId: string | null;
}

export interface VerifyOptions {
  /** Links per read (default 5000). */
  batchSize?: number;
  /** A head recorded earlier (sealer log line): the chain must still hold it. */
  anchor?: ChainHead;
  /** Problems returned in detail (default 100; all are counted). */
  maxProblems?: number;
}

export interface VerifyResult {
  ok: boolean;
  /** Links checked. */
  links: number;
  head: ChainHead | null;
  /** The earliest broken link, or null. */
  firstBroken: ChainProblem | null;
  problems: ChainProblem[];
  problemCount: number;
  /** Events with no link yet (written while verification ran; sealed by the next run). */
  unsealed: number;
  durationMs: number;
}

/**
 * Recompute the whole chain from its first link: report every changed or deleted event and every
 * deleted or altered link, earliest first; verification re-synchronises after each problem so
 * later breaks are found too. Read-only (call {@link sealAuditChain} first to cover new events).
 * @throws the driver's error on database failure
 */
export async function verifyAuditChain(
  db: Executor,
  options: VerifyOptions = {},
): Promise<VerifyResult> {
  const started = performance.now();
  const batchSize = options.batchSize ?? 5000;
  const maxProblems = options.maxProblems ?? 100;
  const problems: ChainProblem[] = [];
  let problemCount = 0;
  const report = (p: ChainProblem) => {
    problemCount++;
    if (problems.length < maxProblems) problems.push(p);
  };
  let expectedSeq = 1;
  let prev = GENESIS_HASH;
  let links = 0;
  let head: ChainHead | null = null;
  let anchorSeen = false;
  for (;;) {
    const page = await db
      .select({
        seq: auditChain.seq,
        eventId: auditChain.eventId,
        prevHash: auditChain.prevHash,
        hash: auditChain.hash,
      })
      .from(auditChain)
      .where(gt(auditChain.seq, expectedSeq - 1))
      .orderBy(asc(auditChain.seq))
      .limit(batchSize);
    if (page.length === 0) break;
    const ids = page.map((l) => l.eventId);
    const events = (await db
      .select(hashedColumns)
      .from(auditEvents)
      .where(inArray(auditEvents.id, ids))) as HashedEvent[];
    const byId = new Map(events.map((e) => [e.id, e]));
    for (const link of page) {
      links++;
      for (let missing = expectedSeq; missing < link.seq; missing++) {
        report({ kind: "link_missing", seq: missing, eventId: null });
      }
      // After a gap the previous hash is unknowable: resynchronise on this link's own pointer.
      const chained = link.seq > expectedSeq ? link.prevHash : prev;
      if (link.prevHash !== chained) {
        report({ kind: "link_altered", seq: link.seq, eventId: link.eventId });
      }
      const event = byId.get(link.eventId);
      if (!event) {
        report({ kind: "event_missing", seq: link.seq, eventId: link.eventId });
      } else if (linkHash(chained, link.seq, event) !== link.hash) {
        report({ kind: "event_modified", seq: link.seq, eventId: link.eventId });
      }
      if (options.anchor && link.seq === options.anchor.seq) {
        anchorSeen = true;
        if (link.hash !== options.anchor.hash) {
          report({ kind: "anchor_mismatch", seq: link.seq, eventId: link.eventId });
        }
      }
      prev = link.hash;
      expectedSeq = link.seq + 1;
      head = { seq: link.seq, hash: link.hash };
    }
    if (page.length < batchSize) break;
  }
  if (options.anchor && !anchorSeen) {
    report({ kind: "anchor_mismatch", seq: options.anchor.seq, eventId: null });
  }
  const [unsealedRow] = rowsOf<{ n: number | string }>(
    await db.execute(sql`
      SELECT count(*)::int AS n FROM ${auditEvents} e
      WHERE NOT EXISTS (SELECT 1 FROM ${auditChain} c WHERE c.event_id = e.id)`),
  );
  problems.sort((a, b) => a.seq - b.seq);
  return {
    ok: problemCount === 0,
    links,
    head,
    firstBroken: problems[0] ?? null,
    problems,
    problemCount,
    unsealed: Number(unsealedRow?.n ?? 0),
    durationMs: performance.now() - started,
  };
}
