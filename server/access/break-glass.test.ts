import { TRPCError } from "@trpc/server";
import { and, eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createHavenClient, isHavenError } from "../../client-sdk/index.ts";
import { auditEvents, patients } from "../../db/schema/index.ts";
import type { Actor } from "../kernel/roles.ts";
import { enrolTotpDirectly, totpCode } from "../mfa/service.ts";
import {
  linkCare,
  loginWithMfa,
  makeOrganization,
  makePatient,
  makePractitioner,
  makeUser,
} from "../test/factory.ts";
import { actorFor, createHarness, type Harness } from "../test/harness.ts";
import { canBreakGlass, canReviewGrant, canRevokeGrant, grantState } from "./policy.ts";

/**
 * Break-the-glass (emergency access): refused without a reason or a fresh MFA code, one patient
 * only, time-boxed (injected clock), honoured by the patient row rule, every access under it
 * audited with the grant, reviewed and acknowledged by the organization's admins, revocable.
 */
let h: Harness;
let url: string;
let orgA: string;
let orgB: string;
let p1: Awaited<ReturnType<typeof makePatient>>;
let p2: Awaited<ReturnType<typeof makePatient>>;
let p3: Awaited<ReturnType<typeof makePatient>>;
let clinicianUser: Awaited<ReturnType<typeof makeUser>>;
let secret: string;
const a: Record<string, Actor> = {};
const REASON = "Unresponsive in the emergency department, no treating clinician on site";

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return "OK";
  } catch (err) {
    if (err instanceof TRPCError) {
      const reason = (err.cause as { reason?: string } | undefined)?.reason;
      return reason ? `${err.code}:${reason}` : err.code;
    }
    throw err;
  }
}

/** A fresh TOTP code: the clock moves to the next 30-second step first (codes are single-use). */
function freshCode(): string {
  h.clock.now = new Date(h.clock.now.getTime() + 30_000);
  return totpCode(secret, h.clock.now);
}

beforeAll(async () => {
  h = await createHarness();
  h.clock.now = new Date("2031-03-01T12:00:00Z");
  orgA = await makeOrganization(h.deps);
  orgB = await makeOrganization(h.deps);
  p1 = await makePatient(h.deps, orgA);
  p2 = await makePatient(h.deps, orgA);
  p3 = await makePatient(h.deps, orgB);

  clinicianUser = await makeUser(h.deps, "clinician", orgA);
  await makePractitioner(h.deps, orgA, clinicianUser.userId);
  secret = await enrolTotpDirectly(h.deps, clinicianUser.userId);
  a.clinician = await actorFor(h, clinicianUser.userId);

  const treating = await makeUser(h.deps, "clinician", orgA);
  const treatingPractitioner = await makePractitioner(h.deps, orgA, treating.userId);
  await linkCare(h.deps, orgA, p1.id, treatingPractitioner);
  await enrolTotpDirectly(h.deps, treating.userId);
  a.treating = await actorFor(h, treating.userId);

  const notEnrolled = await makeUser(h.deps, "clinician", orgA);
  a.notEnrolled = await actorFor(h, notEnrolled.userId);
  a.adminA = await actorFor(h, (await makeUser(h.deps, "admin", orgA)).userId);
  a.adminB = await actorFor(h, (await makeUser(h.deps, "admin", orgB)).userId);
  a.staffA = await actorFor(h, (await makeUser(h.deps, "staff", orgA)).userId);
  const patientUser = await makeUser(h.deps, "patient", orgA);
  await h.deps.db
    .update(patients)
    .set({ userId: patientUser.userId })
    .where(eq(patients.id, p1.id));
  a.patient1 = await actorFor(h, patientUser.userId);
  url = await h.listen();
});
afterAll(async () => {
  await h?.close();
});

describe("access.breakGlass refusals", () => {
  it("without a reason, with a too short reason, or without a code: BAD_REQUEST naming the field", async () => {
    const c = h.caller(a.clinician as Actor);
    const issues = async (input: Record<string, unknown>) => {
      try {
        await c.access.breakGlass(input as never);
        return [];
      } catch (err) {
        expect(err).toBeInstanceOf(TRPCError);
        expect((err as TRPCError).code).toBe("BAD_REQUEST");
        return ((err as TRPCError).cause as { issues?: { path: PropertyKey[] }[] }).issues?.map(
          (i) => i.path.join("."),
        );
      }
    };
    expect(await issues({ patientId: p2.id, code: "123456" })).toEqual(["reason"]);
    expect(await issues({ patientId: p2.id, reason: "   ", code: "123456" })).toEqual(["reason"]);
    expect(await issues({ patientId: p2.id, reason: "because", code: "123456" })).toEqual([
      "reason",
    ]);
    expect(await issues({ patientId: p2.id, reason: REASON })).toEqual(["code"]);
    expect(await issues({ patientId: p2.id, reason: REASON, code: "12ab56" })).toEqual(["code"]);
    expect(await codeOf(c.patients.get({ patientId: p2.id }))).toBe(
      "FORBIDDEN:no_care_relationship",
    );
  });

  it("with a wrong code or no enrolled authenticator: FORBIDDEN, audited, no access", async () => {
    const wrong = totpCode(secret, new Date(h.clock.now.getTime() - 3_600_000));
    expect(
      await codeOf(
        h
          .caller(a.clinician as Actor)
          .access.breakGlass({ patientId: p2.id, reason: REASON, code: wrong }),
      ),
    ).toBe("FORBIDDEN:mfa_code_invalid");
    expect(
      await codeOf(
        h
          .caller(a.notEnrolled as Actor)
          .access.breakGlass({ patientId: p2.id, reason: REASON, code: "123456" }),
      ),
    ).toBe("FORBIDDEN:mfa_not_enrolled");
    const denied = await h.deps.db
      .select({ details: auditEvents.details })
      .from(auditEvents)
      .where(and(eq(auditEvents.action, "access.break_glass"), eq(auditEvents.outcome, "denied")));
    expect(denied.map((d) => d.details?.rule)).toEqual(["mfa", "mfa"]);
    expect(await codeOf(h.caller(a.clinician as Actor).patients.get({ patientId: p2.id }))).toBe(
      "FORBIDDEN:no_care_relationship",
    );
  });

  it("from a session that has not passed MFA: FORBIDDEN mfa_required before anything else", async () => {
    expect(
      await codeOf(
        h.caller(a.clinician as Actor, { mfaVerified: false }).access.breakGlass({
          patientId: p2.id,
          reason: REASON,
          code: totpCode(secret, h.clock.now),
        }),
      ),
    ).toBe("FORBIDDEN:mfa_required");
  });

  it("for another organization's patient, an unknown patient, or when a care relationship exists", async () => {
    const c = h.caller(a.clinician as Actor);
    expect(
      await codeOf(c.access.breakGlass({ patientId: p3.id, reason: REASON, code: freshCode() })),
    ).toBe("FORBIDDEN:other_organization");
    expect(
      await codeOf(
        c.access.breakGlass({
          patientId: "01900000-0000-7000-8000-00000000dead",
          reason: REASON,
          code: freshCode(),
        }),
      ),
    ).toBe("NOT_FOUND");
    expect(
      await codeOf(
        h
          .caller(a.treating as Actor)
          .access.breakGlass({ patientId: p1.id, reason: REASON, code: "000000" }),
      ),
    ).toBe("CONFLICT:care_relationship_exists");
    expect(
      await codeOf(
        h
          .caller(a.staffA as Actor)
          .access.breakGlass({ patientId: p1.id, reason: REASON, code: "000000" }),
      ),
    ).toBe("FORBIDDEN");
  });
});

describe("an emergency grant", () => {
  let grantId: string;

  it("opens ONE patient's record, and every access under it is audited with the grant", async () => {
    const c = h.caller(a.clinician as Actor);
    const grant = await c.access.breakGlass({
      patientId: p1.id,
      reason: `  ${REASON}  `,
      code: freshCode(),
    });
    grantId = grant.grantId;
    expect(grant).toMatchObject({ patientId: p1.id, state: "active", revokedAt: null });
    expect(grant.expiresAt.getTime() - grant.grantedAt.getTime()).toBe(60 * 60_000);
    expect(grant.grantedAt).toEqual(h.clock.now);

    const record = await c.patients.get({ patientId: p1.id });
    expect(record.access).toBe("break_glass");
    expect(record.demographics.name).toEqual(p1.demographics.name);
    expect(record.demographics).not.toHaveProperty("ssn");
    await c.appointments.listForPatient({ patientId: p1.id });
    const found = await c.patients.search({ mrn: p1.demographics.mrn as string });
    expect(found.map((f) => f.id)).toEqual([p1.id]);
    // One patient only.
    expect(await codeOf(c.patients.get({ patientId: p2.id }))).toBe(
      "FORBIDDEN:no_care_relationship",
    );
    expect((await c.access.myGrants()).map((g) => g.grantId)).toEqual([grantId]);

    const used = await h.deps.db
      .select()
      .from(auditEvents)
      .where(
        and(eq(auditEvents.action, "access.break_glass_used"), eq(auditEvents.patientId, p1.id)),
      );
    expect(used.map((u) => u.details?.action).sort()).toEqual([
      "appointment.list",
      "patient.read",
      "patient.search",
    ]);
    for (const u of used) {
      expect(u).toMatchObject({
        actorUserId: clinicianUser.userId,
        reason: "break_glass",
        outcome: "allowed",
      });
      expect(u.details?.grantId).toBe(grantId);
    }
    const [read] = await h.deps.db
      .select({ details: auditEvents.details })
      .from(auditEvents)
      .where(
        and(
          eq(auditEvents.action, "patient.read"),
          eq(auditEvents.outcome, "allowed"),
          eq(auditEvents.actorUserId, clinicianUser.userId),
        ),
      );
    expect(read?.details).toMatchObject({ basis: "break_glass", grantId });
    // The reason is sealed in the grant; no audit row carries it.
    const all = await h.deps.db.select().from(auditEvents);
    expect(JSON.stringify(all)).not.toContain("Unresponsive");
  });

  it("appears in the admins' review queue with its reason and use count, until acknowledged", async () => {
    const queue = await h.caller(a.adminA as Actor).audit.breakGlassReview({});
    expect(queue.items).toHaveLength(1);
    expect(queue.items[0]).toMatchObject({
      grantId,
      patientId: p1.id,
      reason: REASON,
      state: "active",
      accessCount: 3,
      review: null,
      clinician: { userId: clinicianUser.userId },
    });
    expect(queue.items[0]?.clinician.practitionerName).toMatch(/^Dr\. Test/);
    expect(
      (await h.caller(a.adminB as Actor).audit.breakGlassReview({ status: "all" })).items,
    ).toEqual([]);
    expect(await codeOf(h.caller(a.staffA as Actor).audit.breakGlassReview({}))).toBe("FORBIDDEN");
    expect(
      await codeOf(
        h
          .caller(a.adminB as Actor)
          .audit.breakGlassAcknowledge({ grantId, outcome: "appropriate" }),
      ),
    ).toBe("FORBIDDEN:other_organization");

    const ack = await h.caller(a.adminA as Actor).audit.breakGlassAcknowledge({
      grantId,
      outcome: "appropriate",
      note: "ED admission confirmed",
    });
    expect(ack).toMatchObject({ outcome: "appropriate", note: "ED admission confirmed" });
    expect((await h.caller(a.adminA as Actor).audit.breakGlassReview({})).items).toEqual([]);
    const reviewed = await h
      .caller(a.adminA as Actor)
      .audit.breakGlassReview({ status: "reviewed" });
    expect(reviewed.items[0]?.review).toMatchObject({
      outcome: "appropriate",
      note: "ED admission confirmed",
    });
    expect(
      await codeOf(
        h
          .caller(a.adminA as Actor)
          .audit.breakGlassAcknowledge({ grantId, outcome: "inappropriate" }),
      ),
    ).toBe("CONFLICT:already_reviewed");
  });

  it("shows in the patient's accounting of disclosures with who, when, what and why", async () => {
    for (const viewer of [a.adminA, a.patient1] as Actor[]) {
      const page = await h.caller(viewer).audit.forPatient({ patientId: p1.id });
      const mine = page.items.filter((i) => i.actor.userId === clinicianUser.userId);
      const read = mine.find((i) => i.action === "patient.read");
      expect(read).toMatchObject({
        outcome: "allowed",
        basis: "break_glass",
        breakGlass: { grantId, reason: REASON },
        actor: { role: "clinician" },
      });
      expect(read?.occurredAt).toBeInstanceOf(Date);
      if (viewer.role === "patient") expect(read).not.toHaveProperty("ip");
      else expect(read).toHaveProperty("ip", null); // createCaller has no client address
    }
  });

  it("expires after 60 minutes (injected clock)", async () => {
    const c = h.caller(a.clinician as Actor);
    const [grant] = await c.access.myGrants();
    const expiresAt = grant?.expiresAt as Date;
    h.clock.now = new Date(expiresAt.getTime() - 1000);
    expect(await codeOf(c.patients.get({ patientId: p1.id }))).toBe("OK");
    h.clock.now = new Date(expiresAt.getTime());
    expect(await codeOf(c.patients.get({ patientId: p1.id }))).toBe(
      "FORBIDDEN:no_care_relationship",
    );
    expect(await codeOf(c.appointments.listForPatient({ patientId: p1.id }))).toBe(
      "FORBIDDEN:no_care_relationship",
    );
    expect(await c.access.myGrants()).toEqual([]);
    const [row] = (await h.caller(a.adminA as Actor).audit.breakGlassReview({ status: "all" }))
      .items;
    expect(row?.state).toBe("expired");
  });

  it("can be revoked by its holder or the organization's admin, not by others", async () => {
    const c = h.caller(a.clinician as Actor);
    const grant = await c.access.breakGlass({
      patientId: p2.id,
      reason: REASON,
      code: freshCode(),
    });
    expect(await codeOf(c.patients.get({ patientId: p2.id }))).toBe("OK");
    expect(
      await codeOf(h.caller(a.treating as Actor).access.revoke({ grantId: grant.grantId })),
    ).toBe("FORBIDDEN");
    expect(
      await codeOf(h.caller(a.adminB as Actor).access.revoke({ grantId: grant.grantId })),
    ).toBe("FORBIDDEN");
    const revoked = await h.caller(a.adminA as Actor).access.revoke({ grantId: grant.grantId });
    expect(revoked.state).toBe("revoked");
    expect(await codeOf(c.patients.get({ patientId: p2.id }))).toBe(
      "FORBIDDEN:no_care_relationship",
    );
    // Idempotent; the holder may also end their own grant.
    expect((await c.access.revoke({ grantId: grant.grantId })).state).toBe("revoked");
    const g3 = await c.access.breakGlass({ patientId: p2.id, reason: REASON, code: freshCode() });
    expect((await c.access.revoke({ grantId: g3.grantId })).state).toBe("revoked");
    expect(await codeOf(c.patients.get({ patientId: p2.id }))).toBe(
      "FORBIDDEN:no_care_relationship",
    );
    const revokes = await h.deps.db
      .select()
      .from(auditEvents)
      .where(
        and(
          eq(auditEvents.action, "access.break_glass_revoke"),
          eq(auditEvents.outcome, "allowed"),
        ),
      );
    expect(revokes).toHaveLength(2);
  });

  it("works over HTTP through the SDK for an MFA-verified clinician", async () => {
    const token = await loginWithMfa(h, url, clinicianUser);
    const client = createHavenClient({ url, token });
    const refused = await client.patients.get.query({ patientId: p2.id }).catch((e: unknown) => e);
    expect(isHavenError(refused) && refused.data?.code).toBe("FORBIDDEN");
    const grant = await client.access.breakGlass.mutate({
      patientId: p2.id,
      reason: REASON,
      code: freshCode(),
    });
    expect(grant.expiresAt).toBeInstanceOf(Date);
    const record = await client.patients.get.query({ patientId: p2.id });
    expect(record.access).toBe("break_glass");
    expect(h.logs.text()).toContain("break-the-glass access granted");
    expect(h.logs.text()).not.toContain("Unresponsive");
  });
});

describe("break-the-glass policy", () => {
  const base: Actor = {
    userId: "u",
    role: "clinician",
    organizationId: "o",
    sessionId: "s",
    patientId: null,
    practitionerId: "p",
  };
  it.each([
    [
      "clinician, own org, no care",
      base,
      { patientOrganizationId: "o", activeCareRelationship: false },
      true,
    ],
    [
      "clinician, other org",
      base,
      { patientOrganizationId: "x", activeCareRelationship: false },
      "other_organization",
    ],
    [
      "clinician with care",
      base,
      { patientOrganizationId: "o", activeCareRelationship: true },
      "care_relationship_exists",
    ],
    [
      "staff",
      { ...base, role: "staff" as const },
      { patientOrganizationId: "o", activeCareRelationship: false },
      "role",
    ],
    [
      "admin",
      { ...base, role: "admin" as const },
      { patientOrganizationId: "o", activeCareRelationship: false },
      "role",
    ],
    [
      "patient",
      { ...base, role: "patient" as const },
      { patientOrganizationId: "o", activeCareRelationship: false },
      "role",
    ],
    [
      "service",
      { ...base, role: "service" as const },
      { patientOrganizationId: "o", activeCareRelationship: false },
      "role",
    ],
  ])("%s", (_n, actor, facts, expected) => {
    expect(canBreakGlass(actor, facts)).toEqual(
      expected === true ? { allowed: true } : { allowed: false, rule: expected },
    );
  });
  it("revocation, review and state rules", () => {
    const grant = { organizationId: "o", userId: "u" };
    expect(canRevokeGrant(base, grant)).toBe(true);
    expect(canRevokeGrant({ ...base, userId: "other" }, grant)).toBe(false);
    expect(canRevokeGrant({ ...base, role: "admin", userId: "adm" }, grant)).toBe(true);
    expect(canRevokeGrant({ ...base, role: "admin", organizationId: "x" }, grant)).toBe(false);
    expect(canRevokeGrant({ ...base, role: "staff" }, grant)).toBe(false);
    expect(canReviewGrant({ ...base, role: "admin" }, grant)).toBe(true);
    expect(canReviewGrant(base, grant)).toBe(false);
    const t = new Date("2030-01-01T00:00:00Z");
    const g = { expiresAt: new Date(t.getTime() + 60_000), revokedAt: null };
    expect(grantState(g, t)).toBe("active");
    expect(grantState(g, new Date(t.getTime() + 60_000))).toBe("expired");
    expect(grantState({ ...g, revokedAt: t }, t)).toBe("revoked");
  });
});
