import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sealAuditChain, verifyAuditChain } from "../audit/chain.ts";
import { makeOrganization, makePatient, makeUser } from "../test/factory.ts";
import { actorFor, createHarness, type Harness } from "../test/harness.ts";
import { enableAuditGroupCommit, recordAudit, SYSTEM_ACTOR } from "./audit.ts";
import type { Actor } from "./roles.ts";

/**
 * Audit group commit (issue 14): concurrent reads share one INSERT, every read still gets its own
 * row, committed before the read returns; the hash chain over the rows verifies; a failing INSERT
 * rejects every request whose rows it carried.
 */
let h: Harness;
let patientId: string;
let actor: Actor;

beforeAll(async () => {
  h = await createHarness({ maxConnections: 10 });
  const org = await makeOrganization(h.deps);
  patientId = (await makePatient(h.deps, org)).id;
  const user = await makeUser(h.deps, "patient", org);
  await h.deps.db.execute(
    sql`UPDATE patients SET user_id = ${user.userId} WHERE id = ${patientId}`,
  );
  actor = await actorFor(h, user.userId);
  // A test-only way to make the audit INSERT fail inside Postgres: a row whose details carry
  // `poison` aborts the whole statement.
  await h.deps.db.execute(sql`
    CREATE FUNCTION test_poison_audit() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      IF NEW.details ? 'poison' THEN RAISE EXCEPTION 'poisoned audit row'; END IF;
      RETURN NEW;
    END $$`);
  await h.deps.db.execute(sql`
    CREATE TRIGGER test_poison_audit BEFORE INSERT ON audit_events
    FOR EACH ROW EXECUTE FUNCTION test_poison_audit()`);
});

afterAll(async () => {
  await h?.close();
});

async function auditRows(where: ReturnType<typeof sql>): Promise<number> {
  const r = (await h.deps.db.execute(
    sql`SELECT count(*)::int AS n FROM audit_events WHERE ${where}`,
  )) as unknown as { n: number }[];
  return Number(r[0]?.n ?? 0);
}

describe("audit group commit", () => {
  it("N concurrent patients.get: N audit rows, fewer INSERTs than reads, chain verifies", async () => {
    const group = enableAuditGroupCommit(h.deps.db);
    const before = { statements: group.statements, rows: group.rows };
    const readsBefore = await auditRows(
      sql`action = 'patient.read' AND actor_user_id = ${actor.userId}`,
    );
    const n = 24;
    const caller = h.caller(actor);
    // Each read resolves only after its row committed: count right after each one resolves.
    const committedAtReturn: number[] = [];
    await Promise.all(
      Array.from({ length: n }, async () => {
        await caller.patients.get({ patientId, entryLimit: 5 });
        committedAtReturn.push(group.rows);
      }),
    );
    const reads =
      (await auditRows(sql`action = 'patient.read' AND actor_user_id = ${actor.userId}`)) -
      readsBefore;
    expect(reads).toBe(n);
    const statements = group.statements - before.statements;
    expect(statements).toBeGreaterThan(0);
    expect(statements).toBeLessThan(n);
    expect(group.rows - before.rows).toBe(n);
    // Every read returned after at least its own row (and the rows before it) committed.
    expect(Math.min(...committedAtReturn)).toBeGreaterThan(before.rows);
    const sealed = await sealAuditChain(h.deps.db, { full: true });
    expect(sealed.busy).toBe(false);
    const verified = await verifyAuditChain(h.deps.db);
    expect(verified.ok).toBe(true);
    expect(verified.unsealed).toBe(0);
    expect(verified.links).toBeGreaterThanOrEqual(n);
  });

  it("a failing INSERT rejects every waiter it carried and writes none of their rows", async () => {
    const group = enableAuditGroupCommit(h.deps.db);
    const tag = `t${Date.now()}`;
    const event = (i: number, poison: boolean) => ({
      action: "patient.read" as const,
      outcome: "allowed" as const,
      resourceType: "Test",
      resourceId: `${tag}-${i}`,
      details: (poison ? { poison: true } : { i }) as Record<string, boolean | number>,
    });
    const statementsBefore = group.statements;
    // Call 0 leads (its INSERT goes out at once); 1..9 queue behind it and share the next
    // INSERT, in which call 9 is poisoned.
    const results = await Promise.allSettled(
      Array.from({ length: 10 }, (_, i) =>
        recordAudit(h.deps.db, SYSTEM_ACTOR, event(i, i === 9), new Date()),
      ),
    );
    expect(group.statements - statementsBefore).toBe(2);
    expect(results[0]?.status).toBe("fulfilled");
    for (const r of results.slice(1)) {
      expect(r.status).toBe("rejected");
      expect(String((r as PromiseRejectedResult).reason)).toMatch(/poisoned audit row|query/i);
    }
    expect(await auditRows(sql`resource_id = ${`${tag}-0`}`)).toBe(1);
    expect(await auditRows(sql`resource_id LIKE ${`${tag}-%`}`)).toBe(1);
    // The committer recovers: the next call commits normally.
    await recordAudit(h.deps.db, SYSTEM_ACTOR, event(10, false), new Date());
    expect(await auditRows(sql`resource_id = ${`${tag}-10`}`)).toBe(1);
  });

  it("a lone call whose INSERT fails is rejected (never acknowledged without its row)", async () => {
    const err = await recordAudit(
      h.deps.db,
      SYSTEM_ACTOR,
      { action: "patient.read", outcome: "denied", details: { poison: true } },
      new Date(),
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Error);
  });
});
