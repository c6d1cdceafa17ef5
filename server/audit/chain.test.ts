import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { asc, eq, sql } from "drizzle-orm";
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createHavenClient } from "../../client-sdk/index.ts";
import { type DatabaseHandle, openDatabase } from "../../db/client.ts";
import { auditChain, auditEvents } from "../../db/schema/index.ts";
import { type AuditActor, recordAudit } from "../kernel/audit.ts";
import { sqlState } from "../kernel/errors.ts";
import { loginWithMfa, makeOrganization, makeUser } from "../test/factory.ts";
import { createHarness, type Harness } from "../test/harness.ts";
import { GENESIS_HASH, linkHash, sealAuditChain, verifyAuditChain } from "./chain.ts";

/**
 * Tamper evidence (HIPAA 45 CFR 164.312(b), (c)(1)): audit rows are append-only for everyone
 * (trigger) and the application role may not even try (grants); the hash chain, extended by the
 * background sealer without a lock on the request path, lets `npm run audit -- verify` and
 * `audit.verify` pinpoint a row changed or deleted by a superuser who disabled the trigger.
 */
const ROOT = resolve(fileURLToPath(import.meta.url), "../../..");
const ACTOR: AuditActor = {
  userId: "01900000-0000-7000-8000-0000000000c1",
  role: "clinician",
  sessionId: "s",
  organizationId: null,
  ip: "127.0.0.1",
  requestId: "r",
};

async function writeEvents(h: Harness, n: number, patientId?: string): Promise<void> {
  await Promise.all(
    Array.from({ length: n }, (_, i) =>
      recordAudit(
        h.deps.db,
        ACTOR,
        {
          action: "patient.read",
          outcome: "allowed",
          resourceType: "Patient",
          ...(patientId ? { resourceId: patientId } : {}),
          patientId: patientId ?? null,
          details: { i },
        },
        h.deps.now(),
      ),
    ),
  );
}

async function codeOf(p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p;
    return "OK";
  } catch (err) {
    return sqlState(err);
  }
}

function runAuditCli(
  h: Harness,
  args: string[],
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, ["--import", "tsx", "server/audit/cli.ts", ...args], {
    cwd: ROOT,
    env: {
      PATH: process.env.PATH ?? "",
      NODE_ENV: "test",
      DATABASE_URL: h.testDb.url,
      HAVEN_MIGRATE_ON_START: "false",
      HAVEN_DATA_DIR: join(ROOT, ".haven-test-unused"),
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d: Buffer) => {
    stdout += d.toString();
  });
  child.stderr.on("data", (d: Buffer) => {
    stderr += d.toString();
  });
  return new Promise((res) => child.on("close", (code) => res({ code, stdout, stderr })));
}

describe("append-only audit tables", () => {
  let h: Harness;
  let role: string;
  let app: DatabaseHandle;
  beforeAll(async () => {
    h = await createHarness();
    await writeEvents(h, 5);
    await sealAuditChain(h.deps.db, { full: true });
    // A real, non-superuser login role that is a member of haven_app, as the server would use.
    role = `haven_t_${randomBytes(5).toString("hex")}`;
    await h.deps.db.execute(sql.raw(`CREATE ROLE "${role}" LOGIN IN ROLE haven_app`));
    const url = new URL(h.testDb.url);
    url.username = role;
    app = await openDatabase({ url: url.toString(), maxConnections: 2 });
  });
  afterAll(async () => {
    await app?.close();
    if (role) {
      const admin = postgres(h.testDb.url, { max: 1, onnotice: () => {} });
      await admin.unsafe(`DROP ROLE IF EXISTS "${role}"`);
      await admin.end();
    }
    await h?.close();
  });

  it("the app role is not a superuser and may INSERT and SELECT audit rows", async () => {
    const [me] = (await app.db.execute(
      sql`SELECT current_user AS name, rolsuper FROM pg_roles WHERE rolname = current_user`,
    )) as unknown as { name: string; rolsuper: boolean }[];
    expect(me).toEqual({ name: role, rolsuper: false });
    await recordAudit(app.db, ACTOR, { action: "patient.read", outcome: "allowed" }, new Date());
    const rows = await app.db.select({ id: auditEvents.id }).from(auditEvents);
    expect(rows.length).toBe(6);
  });

  it("the app role cannot UPDATE, DELETE or TRUNCATE audit_events or audit_chain (permission denied)", async () => {
    expect(await codeOf(app.db.update(auditEvents).set({ action: "auth.login" }))).toBe("42501");
    expect(await codeOf(app.db.delete(auditEvents))).toBe("42501");
    expect(await codeOf(app.db.execute(sql`TRUNCATE audit_events`))).toBe("42501");
    expect(await codeOf(app.db.update(auditChain).set({ hash: GENESIS_HASH }))).toBe("42501");
    expect(await codeOf(app.db.delete(auditChain))).toBe("42501");
    expect(await codeOf(app.db.execute(sql`TRUNCATE audit_chain`))).toBe("42501");
    const rows = await h.deps.db.select({ action: auditEvents.action }).from(auditEvents);
    expect(rows.every((r) => r.action === "patient.read")).toBe(true);
  });

  it("the app role keeps ordinary DML elsewhere and can run the sealer", async () => {
    const org = await makeOrganization(h.deps);
    expect(
      await codeOf(
        app.db.execute(sql`UPDATE organizations SET name = 'Renamed' WHERE id = ${org}`),
      ),
    ).toBe("OK");
    const sealed = await sealAuditChain(app.db, { full: true });
    expect(sealed.busy).toBe(false);
    expect(sealed.sealed).toBe(1);
    expect((await verifyAuditChain(app.db)).ok).toBe(true);
  });

  it("even the owner (superuser) is refused by the trigger unless it is deliberately disabled", async () => {
    const err = await h.deps.db
      .update(auditEvents)
      .set({ action: "auth.login" })
      .catch((e: unknown) => e);
    expect(sqlState(err)).toBe("42501");
    expect(String((err as { cause?: { message?: string } }).cause?.message ?? err)).toMatch(
      /append-only/,
    );
    expect(await codeOf(h.deps.db.delete(auditEvents))).toBe("42501");
    expect(await codeOf(h.deps.db.execute(sql`TRUNCATE audit_events`))).toBe("42501");
    expect(await codeOf(h.deps.db.delete(auditChain))).toBe("42501");
  });
});

describe("hash chain", () => {
  let h: Harness;
  let url: string;
  let admin: Awaited<ReturnType<typeof makeUser>>;
  beforeAll(async () => {
    h = await createHarness({ maxConnections: 10 });
    const org = await makeOrganization(h.deps);
    admin = await makeUser(h.deps, "admin", org);
    url = await h.listen();
  });
  afterAll(async () => {
    await h?.close();
  });

  it("concurrent writers and two concurrent sealers produce one gap-free chain that verifies", async () => {
    const sealers = async () => {
      for (let i = 0; i < 10; i++) await sealAuditChain(h.deps.db, { batchSize: 25 });
    };
    await Promise.all([writeEvents(h, 150), writeEvents(h, 150), sealers(), sealers()]);
    const final = await sealAuditChain(h.deps.db, { full: true });
    expect(final.busy).toBe(false);
    const links = await h.deps.db.select().from(auditChain).orderBy(asc(auditChain.seq));
    const events = await h.deps.db.select({ id: auditEvents.id }).from(auditEvents);
    expect(links.length).toBe(events.length);
    expect(links.map((l) => l.seq)).toEqual(links.map((_, i) => i + 1));
    expect(new Set(links.map((l) => l.eventId)).size).toBe(links.length);
    expect(links[0]?.prevHash).toBe(GENESIS_HASH);
    const report = await verifyAuditChain(h.deps.db, { batchSize: 64 });
    expect(report).toMatchObject({ ok: true, problemCount: 0, firstBroken: null, unsealed: 0 });
    expect(report.links).toBe(events.length);
    expect(report.head).toEqual({ seq: links.at(-1)?.seq, hash: links.at(-1)?.hash });
  });

  it("a second sealer waiting on the lock reports busy instead of forking the chain", async () => {
    await writeEvents(h, 3);
    const holder = await h.deps.db.transaction(async (tx) => {
      await tx.execute(sql`SELECT pg_advisory_xact_lock(7262715011::bigint)`);
      return sealAuditChain(h.deps.db);
    });
    expect(holder.busy).toBe(true);
    expect(holder.sealed).toBe(0);
    expect((await sealAuditChain(h.deps.db)).sealed).toBe(3);
  });

  it("an edited action and a deleted row are pinpointed by `npm run audit -- verify` and by audit.verify", async () => {
    const links = await h.deps.db.select().from(auditChain).orderBy(asc(auditChain.seq));
    const edited = links[40];
    const deleted = links[120];
    if (!edited || !deleted) throw new Error("not enough links");
    const intact = await runAuditCli(h, ["verify", "--json"]);
    expect(intact.code, intact.stderr).toBe(0);
    const intactReport = JSON.parse(intact.stdout) as { head: { seq: number; hash: string } };

    // A superuser bypasses the protection on purpose.
    await h.deps.db.transaction(async (tx) => {
      await tx.execute(sql`ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only`);
      await tx
        .update(auditEvents)
        .set({ action: "auth.logout" })
        .where(eq(auditEvents.id, edited.eventId));
      await tx.delete(auditEvents).where(eq(auditEvents.id, deleted.eventId));
      await tx.execute(sql`ALTER TABLE audit_events ENABLE TRIGGER audit_events_append_only`);
    });

    const cli = await runAuditCli(h, ["verify", "--json"]);
    expect(cli.code, cli.stderr).toBe(2);
    const report = JSON.parse(cli.stdout) as {
      ok: boolean;
      firstBroken: { kind: string; seq: number; eventId: string };
      problems: { kind: string; seq: number; eventId: string | null }[];
    };
    expect(report.ok).toBe(false);
    expect(report.problems).toEqual([
      { kind: "event_modified", seq: edited.seq, eventId: edited.eventId },
      { kind: "event_missing", seq: deleted.seq, eventId: deleted.eventId },
    ]);
    expect(report.firstBroken).toEqual({
      kind: "event_modified",
      seq: edited.seq,
      eventId: edited.eventId,
    });
    const text = await runAuditCli(h, ["verify", "--no-seal"]);
    expect(text.code).toBe(2);
    expect(text.stdout).toContain(
      `First broken link: seq ${edited.seq} (event_modified, event ${edited.eventId})`,
    );
    // The anchor taken before tampering still matches (the links themselves were not touched).
    const anchored = await runAuditCli(h, [
      "verify",
      "--json",
      "--anchor",
      `${intactReport.head.seq}:${intactReport.head.hash}`,
    ]);
    expect(
      (JSON.parse(anchored.stdout) as { problems: { kind: string }[] }).problems.map((p) => p.kind),
    ).toEqual(["event_modified", "event_missing"]);

    // The same through the API, over HTTP as an MFA-verified admin.
    const token = await loginWithMfa(h, url, admin);
    const api = await createHavenClient({ url, token }).audit.verify.mutate();
    expect(api.ok).toBe(false);
    expect(api.firstBroken).toEqual({
      kind: "event_modified",
      seq: edited.seq,
      eventId: edited.eventId,
    });
    expect(api.problems).toEqual(report.problems);
    const logged = await h.deps.db
      .select({ outcome: auditEvents.outcome, details: auditEvents.details })
      .from(auditEvents)
      .where(eq(auditEvents.action, "audit.verify"));
    expect(
      logged.some((l) => l.outcome === "error" && l.details?.firstBrokenSeq === edited.seq),
    ).toBe(true);
  });

  it("a deleted link, an altered link and a truncated tail are found too", async () => {
    await sealAuditChain(h.deps.db, { full: true });
    const links = await h.deps.db.select().from(auditChain).orderBy(asc(auditChain.seq));
    const anchor = { seq: links.at(-1)?.seq as number, hash: links.at(-1)?.hash as string };
    const gone = links[200];
    const altered = links[250];
    const tail = links.at(-1);
    if (!gone || !altered || !tail) throw new Error("not enough links");
    await h.deps.db.transaction(async (tx) => {
      await tx.execute(sql`ALTER TABLE audit_chain DISABLE TRIGGER audit_chain_append_only`);
      await tx.execute(sql`ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only`);
      await tx.delete(auditChain).where(eq(auditChain.seq, gone.seq));
      await tx
        .update(auditChain)
        .set({ prevHash: "f".repeat(64) })
        .where(eq(auditChain.seq, altered.seq));
      await tx.delete(auditChain).where(eq(auditChain.seq, tail.seq));
      await tx.delete(auditEvents).where(eq(auditEvents.id, tail.eventId));
      await tx.execute(sql`ALTER TABLE audit_chain ENABLE TRIGGER audit_chain_append_only`);
      await tx.execute(sql`ALTER TABLE audit_events ENABLE TRIGGER audit_events_append_only`);
    });
    const report = await verifyAuditChain(h.deps.db, { anchor });
    const kinds = report.problems.map((p) => `${p.kind}@${p.seq}`);
    expect(kinds).toContain(`link_missing@${gone.seq}`);
    expect(kinds).toContain(`link_altered@${altered.seq}`);
    expect(kinds).toContain(`anchor_mismatch@${anchor.seq}`);
    // The altered pointer is the only finding at that link: its event still hashes correctly.
    expect(kinds.filter((k) => k.endsWith(`@${altered.seq}`))).toEqual([
      `link_altered@${altered.seq}`,
    ]);
    // The event of the deleted link is now unsealed and gets a new link at the head.
    expect(report.unsealed).toBe(1);
  });

  it("link hashes cover every event field (a change anywhere breaks the link)", () => {
    const event = {
      id: "01900000-0000-7000-8000-000000000001",
      action: "patient.read",
      details: { a: 1 },
    };
    const base = linkHash(GENESIS_HASH, 1, event);
    expect(linkHash(GENESIS_HASH, 1, { ...event, details: { a: 2 } })).not.toBe(base);
    expect(linkHash(GENESIS_HASH, 2, event)).not.toBe(base);
    expect(linkHash("1".repeat(64), 1, event)).not.toBe(base);
    // Null members are dropped: a column added later (null in old rows) keeps old hashes valid.
    expect(linkHash(GENESIS_HASH, 1, { ...event, addedLater: null })).toBe(base);
  });
});
