import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { recordAudit, SYSTEM_ACTOR } from "../server/kernel/audit.ts";
import { createTestDatabase, type TestDatabase } from "../server/test/db.ts";
import { openDatabase, PGLITE_SHARED_BUFFERS_MB, PreparedAdmission } from "./client.ts";

/**
 * The prepared-statement cache stays bounded (issue 14, RSS under load): postgres.js keeps every
 * statement a connection prepared and never evicts, so SQL whose text varies with the data (a
 * multi-row INSERT of N rows, an IN-list of N ids) grew the cache by one entry per distinct N on
 * every connection. `PreparedAdmission` prepares a bounded set of fixed texts only.
 */
describe("PreparedAdmission", () => {
  it("admits at most maxTexts distinct texts, and keeps admitting those", () => {
    const a = new PreparedAdmission(3, 64);
    const admitted = Array.from({ length: 1000 }, (_, i) => a.admit(`select ${i}`, 1));
    expect(admitted.filter(Boolean)).toHaveLength(3);
    expect(a.size).toBe(3);
    expect(a.admit("select 0", 1)).toBe(true);
    expect(a.admit("select 999", 1)).toBe(false);
  });

  it("never prepares a text with more than maxParams parameters", () => {
    const a = new PreparedAdmission(512, 64);
    expect(a.admit("insert … values ($1, …, $64)", 64)).toBe(true);
    expect(a.admit("insert … values ($1, …, $65)", 65)).toBe(false);
    expect(a.size).toBe(1);
  });
});

describe("prepared statements on a real connection", () => {
  let db: TestDatabase;
  beforeAll(async () => {
    // One connection, so pg_prepared_statements (per backend) shows everything this handle prepared.
    db = await createTestDatabase({ maxConnections: 1 });
  });
  afterAll(async () => {
    await db?.drop();
  });

  async function preparedCount(): Promise<number> {
    const r = (await db.handle.db.execute(
      sql`SELECT count(*)::int AS n FROM pg_prepared_statements`,
    )) as unknown as { n: number }[];
    return Number(r[0]?.n ?? 0);
  }

  it("a multi-row audit INSERT of each size 1…40 leaves at most 4 of them prepared", async () => {
    const before = await preparedCount();
    for (let n = 1; n <= 40; n++) {
      await recordAudit(
        db.handle.db,
        SYSTEM_ACTOR,
        Array.from({ length: n }, () => ({
          action: "auth.logout" as const,
          outcome: "allowed" as const,
        })),
      );
    }
    // 15 parameters a row: sizes 1–4 (≤ 64 parameters) are prepared, 5–40 go out unnamed.
    const after = await preparedCount();
    expect(after - before).toBeLessThanOrEqual(4);
    const rows = (await db.handle.db.execute(
      sql`SELECT count(*)::int AS n FROM audit_events WHERE action = 'auth.logout'`,
    )) as unknown as { n: number }[];
    expect(Number(rows[0]?.n)).toBe((40 * 41) / 2);
  });
});

describe("embedded PGlite", () => {
  it(`starts with shared_buffers = ${PGLITE_SHARED_BUFFERS_MB} MB unless told otherwise`, async () => {
    for (const [asked, shown] of [
      [undefined, `${PGLITE_SHARED_BUFFERS_MB}MB`],
      [64, "64MB"],
    ] as const) {
      const handle = await openDatabase({
        pgliteDir: "memory://",
        ...(asked ? { pgliteSharedBuffersMb: asked } : {}),
      });
      try {
        const r = (await handle.db.execute(sql`SHOW shared_buffers`)) as unknown as {
          rows: { shared_buffers: string }[];
        };
        expect(r.rows[0]?.shared_buffers).toBe(shown);
      } finally {
        await handle.close();
      }
    }
  });
});
