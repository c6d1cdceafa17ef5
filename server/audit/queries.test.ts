import { TRPCError } from "@trpc/server";
import { eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createHavenClient } from "../../client-sdk/index.ts";
import { patients } from "../../db/schema/index.ts";
import type { Actor } from "../kernel/roles.ts";
import {
  linkCare,
  loginWithMfa,
  makeOrganization,
  makePatient,
  makePractitioner,
  makeUser,
} from "../test/factory.ts";
import { actorFor, createHarness, type Harness } from "../test/harness.ts";

/**
 * Accounting of disclosures (HIPAA 45 CFR 164.528) and the admins' audit search: who accessed a
 * record, when, which action and why; filters, time ranges and cursor pagination; who may ask.
 */
let h: Harness;
let url: string;
let orgA: string;
let orgB: string;
let p: { id: string };
let q: { id: string };
let r: { id: string };
const a: Record<string, Actor> = {};
let adminUser: Awaited<ReturnType<typeof makeUser>>;
let patientUser: Awaited<ReturnType<typeof makeUser>>;
const t0 = new Date("2032-05-01T08:00:00Z");
const at = (minutes: number) => new Date(t0.getTime() + minutes * 60_000);

async function codeOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
    return "OK";
  } catch (err) {
    if (err instanceof TRPCError) {
      const reason = (err.cause as { reason?: string } | undefined)?.reason;
      return reason ? `${err.code}:${reason}` : err.code;
    }
    throw err;
  }
}

beforeAll(async () => {
  h = await createHarness();
  orgA = await makeOrganization(h.deps);
  orgB = await makeOrganization(h.deps);
  p = await makePatient(h.deps, orgA);
  q = await makePatient(h.deps, orgA);
  r = await makePatient(h.deps, orgB);
  const clinician = await makeUser(h.deps, "clinician", orgA);
  await linkCare(h.deps, orgA, p.id, await makePractitioner(h.deps, orgA, clinician.userId));
  a.clinician = await actorFor(h, clinician.userId);
  a.staffA = await actorFor(h, (await makeUser(h.deps, "staff", orgA)).userId);
  adminUser = await makeUser(h.deps, "admin", orgA);
  a.adminA = await actorFor(h, adminUser.userId);
  a.adminB = await actorFor(h, (await makeUser(h.deps, "admin", orgB)).userId);
  patientUser = await makeUser(h.deps, "patient", orgA);
  await h.deps.db.update(patients).set({ userId: patientUser.userId }).where(eq(patients.id, p.id));
  a.patient = await actorFor(h, patientUser.userId);

  h.clock.now = at(0);
  await h.caller(a.clinician as Actor).patients.get({ patientId: p.id });
  h.clock.now = at(60);
  await h.caller(a.staffA as Actor).patients.get({ patientId: p.id });
  await h.caller(a.staffA as Actor).patients.get({ patientId: q.id });
  h.clock.now = at(120);
  await h.caller(a.patient as Actor).patients.get({ patientId: p.id });
  h.clock.now = at(180);
  await codeOf(h.caller(a.staffA as Actor).patients.get({ patientId: r.id }));
  h.clock.now = at(600);
  url = await h.listen();
});
afterAll(async () => {
  await h?.close();
});

describe("audit.forPatient — accounting of disclosures", () => {
  it("lists who accessed the record, when, which action and why, newest first", async () => {
    const page = await h
      .caller(a.adminA as Actor)
      .audit.forPatient({ patientId: p.id, to: at(300) });
    expect(
      page.items.map((i) => [
        i.occurredAt.toISOString(),
        i.actor.role,
        i.action,
        i.outcome,
        i.basis,
      ]),
    ).toEqual([
      [at(120).toISOString(), "patient", "patient.read", "allowed", "self"],
      [at(60).toISOString(), "staff", "patient.read", "allowed", "organization"],
      [at(0).toISOString(), "clinician", "patient.read", "allowed", "care_relationship"],
    ]);
    expect(page.items[2]?.actor.userId).toBe(a.clinician?.userId);
    expect(page.items[2]?.actor.practitionerName).toMatch(/^Dr\. Test/);
    expect(page.items[1]?.actor.practitionerName).toBeNull();
    expect(page.nextCursor).toBeNull();
  });

  it("filters by [from, to) and pages with a cursor", async () => {
    const mid = await h
      .caller(a.adminA as Actor)
      .audit.forPatient({ patientId: p.id, from: at(30), to: at(90) });
    expect(mid.items.map((i) => i.actor.role)).toEqual(["staff"]);
    const edge = await h
      .caller(a.adminA as Actor)
      .audit.forPatient({ patientId: p.id, from: at(60), to: at(120) });
    expect(edge.items.map((i) => i.actor.role)).toEqual(["staff"]);
    const seen: string[] = [];
    let cursor: string | undefined;
    for (let n = 0; n < 5; n++) {
      const page = await h.caller(a.adminA as Actor).audit.forPatient({
        patientId: p.id,
        to: at(300),
        limit: 1,
        ...(cursor ? { cursor } : {}),
      });
      seen.push(...page.items.map((i) => i.actor.role as string));
      if (!page.nextCursor) break;
      cursor = page.nextCursor;
    }
    expect(seen).toEqual(["patient", "staff", "clinician"]);
  });

  it("the patient sees their own accounting (without request addresses), nobody else's", async () => {
    const own = await h
      .caller(a.patient as Actor)
      .audit.forPatient({ patientId: p.id, to: at(300) });
    expect(own.items).toHaveLength(3);
    for (const i of own.items) {
      expect(i).not.toHaveProperty("ip");
      expect(i).not.toHaveProperty("requestId");
    }
    expect(await codeOf(h.caller(a.patient as Actor).audit.forPatient({ patientId: q.id }))).toBe(
      "FORBIDDEN:not_self",
    );
  });

  it("admins only for their organization's patients; other roles never", async () => {
    expect(await codeOf(h.caller(a.adminB as Actor).audit.forPatient({ patientId: p.id }))).toBe(
      "FORBIDDEN:other_organization",
    );
    expect(
      await codeOf(
        h
          .caller(a.adminA as Actor)
          .audit.forPatient({ patientId: "01900000-0000-7000-8000-00000000beef" }),
      ),
    ).toBe("NOT_FOUND");
    expect(await codeOf(h.caller(a.clinician as Actor).audit.forPatient({ patientId: p.id }))).toBe(
      "FORBIDDEN",
    );
    expect(await codeOf(h.caller(a.staffA as Actor).audit.forPatient({ patientId: p.id }))).toBe(
      "FORBIDDEN",
    );
  });

  it("rejects a reversed range and a forged cursor as BAD_REQUEST", async () => {
    expect(
      await codeOf(
        h.caller(a.adminA as Actor).audit.forPatient({ patientId: p.id, from: at(10), to: at(5) }),
      ),
    ).toBe("BAD_REQUEST");
    expect(
      await codeOf(
        h
          .caller(a.adminA as Actor)
          .audit.forPatient({ patientId: p.id, cursor: "bm90IGEgY3Vyc29y" }),
      ),
    ).toBe("BAD_REQUEST:bad_cursor");
  });

  it("reading the accounting is itself audited", async () => {
    const page = await h
      .caller(a.adminA as Actor)
      .audit.forPatient({ patientId: p.id, from: at(500) });
    expect(
      page.items.some(
        (i) => i.action === "audit.for_patient" && i.actor.userId === adminUser.userId,
      ),
    ).toBe(true);
  });
});

describe("audit.search — admins, their organization", () => {
  it("filters by action, outcome, actor and patient", async () => {
    const c = h.caller(a.adminA as Actor);
    const reads = await c.audit.search({ action: "patient.read", to: at(300) });
    expect(reads.items.map((i) => [i.actorRole, i.patientId, i.outcome])).toEqual([
      ["staff", r.id, "denied"],
      ["patient", p.id, "allowed"],
      ["staff", q.id, "allowed"],
      ["staff", p.id, "allowed"],
      ["clinician", p.id, "allowed"],
    ]);
    const denied = await c.audit.search({ outcome: "denied", action: "patient.read" });
    expect(denied.items.map((i) => i.patientId)).toEqual([r.id]);
    const byClinician = await c.audit.search({
      actorUserId: a.clinician?.userId as string,
      to: at(300),
    });
    expect(byClinician.items.map((i) => i.action)).toEqual(["patient.read"]);
    const aboutQ = await c.audit.search({ patientId: q.id, to: at(300) });
    expect(aboutQ.items.map((i) => i.actorRole)).toEqual(["staff"]);
  });

  it("stays inside the admin's organization (events by its members or about its patients)", async () => {
    const other = await h.caller(a.adminB as Actor).audit.search({ action: "patient.read" });
    // Admin B sees the refused attempt on its patient R, by another organization's staff member,
    // and nothing about organization A's patients.
    expect(other.items.map((i) => i.patientId)).toEqual([r.id]);
  });

  it("pages with a cursor over a time range, over HTTP as an MFA-verified admin", async () => {
    const token = await loginWithMfa(h, url, adminUser);
    const client = createHavenClient({ url, token });
    const ids: string[] = [];
    let cursor: string | null = null;
    do {
      const page: Awaited<ReturnType<typeof client.audit.search.query>> =
        await client.audit.search.query({
          from: at(0),
          to: at(300),
          limit: 2,
          ...(cursor ? { cursor } : {}),
        });
      expect(page.items.length).toBeLessThanOrEqual(2);
      ids.push(...page.items.map((i) => i.id));
      cursor = page.nextCursor;
    } while (cursor);
    expect(ids).toHaveLength(5);
    expect(new Set(ids).size).toBe(5);
    expect(await codeOf(h.caller(a.staffA as Actor).audit.search({}))).toBe("FORBIDDEN");
  });
});
