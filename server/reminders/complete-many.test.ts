import { and, eq, inArray } from "drizzle-orm";
import { v7 as uuidv7 } from "uuid";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { createHavenClient, type HavenClient, isHavenError } from "../../client-sdk/index.ts";
import { auditEvents, reminders } from "../../db/schema/index.ts";
import type { Actor } from "../kernel/roles.ts";
import { makeOrganization, makeServiceApiKey, makeUser } from "../test/factory.ts";
import { actorFor, createHarness, type Harness } from "../test/harness.ts";
import { COMPLETE_MANY_MAX } from "./schemas.ts";
import { seedDueReminders } from "./test/fixtures.ts";

/**
 * `reminders.completeMany` through the real router, HTTP and Postgres: per-report results, the
 * same row transitions and audit rows as `reminders.complete` on the same states (table test),
 * callers and input bounds. The worker that uses it is tested in `workers/reminders/cron.test.ts`.
 */
let h: Harness;
let orgA: string;
let orgB: string;
let queueA: HavenClient;
let queueB: HavenClient;
let url: string;

beforeAll(async () => {
  h = await createHarness({ maxConnections: 10 });
  h.clock.now = new Date("2031-05-06T09:00:00Z");
  orgA = await makeOrganization(h.deps);
  orgB = await makeOrganization(h.deps);
  url = await h.listen();
  queueA = createHavenClient({ url, token: (await makeServiceApiKey(h.deps, orgA)).key });
  queueB = createHavenClient({ url, token: (await makeServiceApiKey(h.deps, orgB)).key });
});
afterAll(async () => {
  await h?.close();
});
beforeEach(async () => {
  h.services.reminders = { maxAttempts: 3, backoffBaseSeconds: 10, backoffMaxSeconds: 25 };
  await h.deps.db
    .update(reminders)
    .set({ status: "cancelled", lastError: "test_reset" })
    .where(inArray(reminders.status, ["pending", "claimed"]));
});

const advance = (seconds: number) => {
  h.clock.now = new Date(h.clock.now.getTime() + seconds * 1000);
};

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return "OK";
  } catch (err) {
    if (isHavenError(err)) return err.data?.code ?? "?";
    const code = (err as { code?: string }).code;
    if (code) return code;
    throw err;
  }
}

async function rowsOf(ids: string[]) {
  const rows = await h.deps.db.select().from(reminders).where(inArray(reminders.id, ids));
  return new Map(rows.map((r) => [r.id, r]));
}

async function completeAudits(ids: string[]) {
  return h.deps.db
    .select()
    .from(auditEvents)
    .where(and(eq(auditEvents.action, "reminder.complete"), inArray(auditEvents.resourceId, ids)));
}

async function claimAll(client: HavenClient, count: number) {
  const got = await client.reminders.claimDue.mutate({ limit: 500, leaseSeconds: 60 });
  expect(got.reminders).toHaveLength(count);
  return got.reminders;
}

describe("reminders.completeMany", () => {
  it("applies every report in one call and audits each as complete does", async () => {
    const seeded = await seedDueReminders(h.deps, {
      organizationId: orgA,
      count: 5,
      now: h.clock.now,
    });
    const claimed = await claimAll(queueA, 5);
    const { results } = await queueA.reminders.completeMany.mutate({
      items: claimed.map((c) => ({
        id: c.id,
        version: c.version,
        outcome: "sent" as const,
        providerMessageId: `<m.${c.id}@relay>`,
      })),
    });
    expect(results).toEqual(
      claimed.map((c) => ({
        ok: true,
        id: c.id,
        status: "sent",
        attempts: 1,
        nextAttemptAt: null,
      })),
    );
    const ids = seeded.map((s) => s.reminderId);
    const rows = await rowsOf(ids);
    for (const c of claimed) {
      expect(rows.get(c.id)).toMatchObject({
        status: "sent",
        providerMessageId: `<m.${c.id}@relay>`,
        leaseUntil: null,
        lastError: null,
        sentAt: h.clock.now,
      });
    }
    const audits = await completeAudits(ids);
    expect(audits).toHaveLength(5);
    for (const a of audits) {
      expect(a).toMatchObject({ outcome: "allowed", resourceType: "Reminder" });
      expect(a.details).toEqual({ outcome: "sent", attempt: 1, status: "sent", error: null });
      expect(a.patientId).toBe(seeded.find((s) => s.reminderId === a.resourceId)?.patientId);
    }
  });

  it("one stale or unknown report is refused on its own; the others are applied", async () => {
    const seeded = await seedDueReminders(h.deps, {
      organizationId: orgA,
      count: 3,
      now: h.clock.now,
    });
    const [other] = await seedDueReminders(h.deps, {
      organizationId: orgB,
      count: 1,
      now: h.clock.now,
    });
    const first = await claimAll(queueA, 3);
    await claimAll(queueB, 1);
    // The third reminder's lease runs out and another worker reclaims it: its old token is stale.
    const [a, b, c] = first;
    if (!a || !b || !c || !other) throw new Error("seed");
    await h.deps.db
      .update(reminders)
      .set({ leaseUntil: new Date(h.clock.now.getTime() - 1) })
      .where(eq(reminders.id, c.id));
    const reclaimed = await claimAll(queueA, 1);
    expect(reclaimed[0]?.id).toBe(c.id);
    const unknown = uuidv7();

    const { results } = await queueA.reminders.completeMany.mutate({
      items: [
        { id: a.id, version: a.version, outcome: "retry", error: "smtp_451" },
        { id: c.id, version: c.version, outcome: "sent", providerMessageId: "<late@x>" },
        { id: other.reminderId, version: 2, outcome: "sent" },
        { id: unknown, version: 2, outcome: "sent" },
        { id: b.id, version: b.version, outcome: "released" },
      ],
    });
    expect(results).toEqual([
      {
        ok: true,
        id: a.id,
        status: "pending",
        attempts: 1,
        nextAttemptAt: new Date(h.clock.now.getTime() + 10_000),
      },
      { ok: false, id: c.id, code: "CONFLICT", reason: "stale_claim" },
      { ok: false, id: other.reminderId, code: "NOT_FOUND", reason: "not_found" },
      { ok: false, id: unknown, code: "NOT_FOUND", reason: "not_found" },
      { ok: true, id: b.id, status: "pending", attempts: 0, nextAttemptAt: h.clock.now },
    ]);
    const rows = await rowsOf([...seeded.map((s) => s.reminderId), other.reminderId]);
    expect(rows.get(c.id)).toMatchObject({ status: "claimed", version: reclaimed[0]?.version });
    expect(rows.get(other.reminderId)).toMatchObject({ status: "claimed" }); // untouched
    const audits = await completeAudits([a.id, b.id, c.id, other.reminderId, unknown]);
    expect(audits.map((x) => [x.resourceId, x.outcome]).sort()).toEqual(
      [
        [a.id, "allowed"],
        [b.id, "allowed"],
        [c.id, "error"],
      ].sort(),
    );
    expect(audits.find((x) => x.resourceId === c.id)?.details).toEqual({
      outcome: "sent",
      reason: "stale_claim",
      currentStatus: "claimed",
    });
  });

  it("leaves exactly the rows, results and audit rows complete leaves, state by state", async () => {
    // Each case puts two claimed reminders in the same state; one is reported with `complete`,
    // the other (all in one call) with `completeMany`; every column, result and audit row must match.
    const max = 3;
    type Outcome = "sent" | "retry" | "failed" | "released";
    interface Case {
      attempts: number;
      outcome: Outcome;
      stale?: "version" | "sent" | "pending";
    }
    const cases: Case[] = [];
    for (const outcome of ["sent", "retry", "failed", "released"] as const) {
      for (const attempts of [1, max - 1, max]) cases.push({ attempts, outcome });
      for (const stale of ["version", "sent", "pending"] as const) {
        cases.push({ attempts: 1, outcome, stale });
      }
    }
    await seedDueReminders(h.deps, {
      organizationId: orgA,
      count: cases.length * 2,
      now: h.clock.now,
    });
    const claimed = await claimAll(queueA, cases.length * 2);
    const pairs = cases.map((c, i) => ({
      c,
      single: claimed[2 * i] as (typeof claimed)[number],
      many: claimed[2 * i + 1] as (typeof claimed)[number],
    }));
    for (const { c, single, many } of pairs) {
      await h.deps.db
        .update(reminders)
        .set({
          attempts: c.attempts,
          ...(c.stale === "sent" ? { status: "sent" as const, sentAt: h.clock.now } : {}),
          ...(c.stale === "pending" ? { status: "pending" as const, leaseUntil: null } : {}),
        })
        .where(inArray(reminders.id, [single.id, many.id]));
    }
    const report = (r: (typeof claimed)[number], c: Case) => ({
      id: r.id,
      version: c.stale === "version" ? r.version - 1 : r.version,
      outcome: c.outcome,
      ...(c.outcome === "sent" ? { providerMessageId: "<same@relay>" } : {}),
      ...(c.outcome === "retry" || c.outcome === "failed" ? { error: "smtp_451" } : {}),
    });
    advance(7); // reports come later than the claim, so updated_at/next_attempt_at tell if "now" is used

    const singles: unknown[] = [];
    for (const { c, single } of pairs) {
      try {
        singles.push({ ok: true, ...(await queueA.reminders.complete.mutate(report(single, c))) });
      } catch (err) {
        singles.push({ ok: false, code: isHavenError(err) ? err.data?.code : String(err) });
      }
    }
    const { results } = await queueA.reminders.completeMany.mutate({
      items: pairs.map(({ c, many }) => report(many, c)),
    });

    const all = claimed.map((r) => r.id);
    const rows = await rowsOf(all);
    const audits = await completeAudits(all);
    const comparable = (id: string) => {
      const r = rows.get(id);
      if (!r) throw new Error("row");
      // Seeded visits differ in time only: compare next_attempt_at as "unchanged" or the new value.
      const {
        id: _id,
        appointmentId: _a,
        createdAt: _c,
        version,
        dueAt,
        nextAttemptAt,
        ...rest
      } = r;
      const claimedVersion = claimed.find((x) => x.id === id)?.version as number;
      return {
        ...rest,
        nextAttemptAt: nextAttemptAt.getTime() === dueAt.getTime() ? "unchanged" : nextAttemptAt,
        versionDelta: version - claimedVersion,
      };
    };
    const auditOf = (id: string) =>
      audits
        .filter((a) => a.resourceId === id)
        .map((a) => ({ outcome: a.outcome, details: a.details, occurredAt: a.occurredAt }));
    const mismatches: string[] = [];
    pairs.forEach(({ c, single, many }, i) => {
      const label = JSON.stringify(c);
      const r = results[i];
      const manyResult =
        r?.ok === true
          ? { ok: true, status: r.status, attempts: r.attempts, nextAttemptAt: r.nextAttemptAt }
          : { ok: false, code: r?.code };
      const singleResult = singles[i] as Record<string, unknown>;
      const { id: _sid, ...singleComparable } = singleResult;
      if (JSON.stringify(singleComparable) !== JSON.stringify(manyResult)) {
        mismatches.push(`${label} result: ${JSON.stringify(singleResult)} vs ${JSON.stringify(r)}`);
      }
      if (JSON.stringify(comparable(single.id)) !== JSON.stringify(comparable(many.id))) {
        mismatches.push(
          `${label} row: ${JSON.stringify(comparable(single.id))} vs ${JSON.stringify(comparable(many.id))}`,
        );
      }
      if (JSON.stringify(auditOf(single.id)) !== JSON.stringify(auditOf(many.id))) {
        mismatches.push(
          `${label} audit: ${JSON.stringify(auditOf(single.id))} vs ${JSON.stringify(auditOf(many.id))}`,
        );
      }
      if (auditOf(many.id).length !== 1) mismatches.push(`${label}: not audited exactly once`);
    });
    expect(mismatches).toEqual([]);
    // The table really covers every result: applied to each status, and both refusals.
    const seen = new Set(results.map((r) => (r.ok ? `${r.status}` : `${r.code}`)));
    expect(seen).toEqual(new Set(["sent", "pending", "failed", "CONFLICT"]));
  });

  it("two overlapping calls in opposite orders neither deadlock nor apply a report twice", async () => {
    await seedDueReminders(h.deps, { organizationId: orgA, count: 60, now: h.clock.now });
    const claimed = await claimAll(queueA, 60);
    const items = claimed.map((c) => ({
      id: c.id,
      version: c.version,
      outcome: "sent" as const,
      providerMessageId: "<x@relay>",
    }));
    const [one, two] = await Promise.all([
      queueA.reminders.completeMany.mutate({ items }),
      queueA.reminders.completeMany.mutate({ items: [...items].reverse() }),
    ]);
    for (const c of claimed) {
      const outcomes = [one, two].map((x) => x.results.find((r) => r.id === c.id)?.ok);
      expect(outcomes.sort()).toEqual([false, true]);
    }
    const audits = await completeAudits(claimed.map((c) => c.id));
    expect(audits.filter((a) => a.outcome === "allowed")).toHaveLength(60);
    expect(audits.filter((a) => a.outcome === "error")).toHaveLength(60);
  });
});

describe("reminders.completeMany: callers and input", () => {
  it("is for the same callers as complete: service keys with the reminders scope", async () => {
    await seedDueReminders(h.deps, { organizationId: orgA, count: 1, now: h.clock.now });
    const [c] = await claimAll(queueA, 1);
    if (!c) throw new Error("claim");
    const items = [{ id: c.id, version: c.version, outcome: "released" as const }];
    const unscoped = createHavenClient({
      url,
      token: (await makeServiceApiKey(h.deps, orgA, [])).key,
    });
    expect(await codeOf(unscoped.reminders.completeMany.mutate({ items }))).toBe("FORBIDDEN");
    expect(await codeOf(createHavenClient({ url }).reminders.completeMany.mutate({ items }))).toBe(
      "UNAUTHORIZED",
    );
    const humans: Actor[] = [];
    for (const role of ["staff", "admin", "clinician", "patient"] as const) {
      humans.push(await actorFor(h, (await makeUser(h.deps, role, orgA)).userId));
    }
    for (const actor of humans) {
      expect(await codeOf(h.caller(actor).reminders.completeMany({ items }))).toBe("FORBIDDEN");
      expect(await codeOf(h.caller(actor).reminders.complete(items[0] as never))).toBe("FORBIDDEN");
    }
    const denials = await h.deps.db
      .select()
      .from(auditEvents)
      .where(
        and(
          eq(auditEvents.action, "access.denied"),
          eq(auditEvents.resourceId, "reminders.completeMany"),
        ),
      );
    expect(denials.length).toBeGreaterThanOrEqual(5);
    expect((await rowsOf([c.id])).get(c.id)?.status).toBe("claimed");
  });

  it("refuses too many, none, duplicate ids and any bad item with BAD_REQUEST, applying nothing", async () => {
    await seedDueReminders(h.deps, { organizationId: orgA, count: 2, now: h.clock.now });
    const [a, b] = await claimAll(queueA, 2);
    if (!a || !b) throw new Error("claim");
    const ok = { id: a.id, version: a.version, outcome: "released" as const };
    const tooMany = Array.from({ length: COMPLETE_MANY_MAX + 1 }, () => ({
      ...ok,
      id: uuidv7(),
    }));
    const cases: { items: unknown[]; path: string }[] = [
      { items: tooMany, path: "items" },
      { items: [], path: "items" },
      { items: [ok, { ...ok, outcome: "sent" }], path: "items.1.id" },
      {
        items: [ok, { id: b.id, version: b.version, outcome: "retry", error: "550 <jane@x.test>" }],
        path: "items.1.error",
      },
      { items: [ok, { id: b.id, version: b.version, outcome: "failed" }], path: "items.1.error" },
    ];
    for (const { items, path } of cases) {
      try {
        await queueA.reminders.completeMany.mutate({ items } as never);
        expect.unreachable();
      } catch (err) {
        expect(isHavenError(err) && err.data?.code).toBe("BAD_REQUEST");
        const paths = ((isHavenError(err) && err.data?.issues) || []).map((i) => i.path);
        expect(paths).toContain(path);
        expect(JSON.stringify(err)).not.toContain("jane@x.test");
      }
    }
    // Exactly the bound is accepted (unknown ids are NOT_FOUND results, not an error).
    const atBound = await queueA.reminders.completeMany.mutate({
      items: tooMany.slice(0, COMPLETE_MANY_MAX),
    });
    expect(atBound.results.every((r) => !r.ok && r.code === "NOT_FOUND")).toBe(true);
    const rows = await rowsOf([a.id, b.id]);
    expect([...rows.values()].every((r) => r.status === "claimed")).toBe(true);
  });
});
