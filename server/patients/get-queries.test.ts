import { and, eq } from "drizzle-orm";
import { drizzle } from "drizzle-orm/postgres-js";
import postgres from "postgres";
import { v7 as uuidv7 } from "uuid";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Database, schema } from "../../db/client.ts";
import { auditEvents, breakGlassGrants } from "../../db/schema/index.ts";
import type { ServiceDeps } from "../deps.ts";
import { SYSTEM_ACTOR } from "../kernel/audit.ts";
import { ForbiddenError, NotFoundError } from "../kernel/errors.ts";
import type { Actor } from "../kernel/roles.ts";
import {
  linkCare,
  makeOrganization,
  makePatient,
  makePractitioner,
  makeUser,
} from "../test/factory.ts";
import { actorFor, createHarness, type Harness } from "../test/harness.ts";
import { getPatient } from "./service.ts";

/**
 * `patients.get` reads the `patients` row once: the access rule's facts (existence, organization)
 * and the returned row come from the same query, and the rule still decides before anything is
 * decrypted or returned (issue 14; the full rule is covered by server/test/access-matrix.test.ts).
 * Queries are counted from the SQL Drizzle actually sends, through its logger.
 */
let h: Harness;
let client: postgres.Sql;
let deps: ServiceDeps;
const sent: string[] = [];
let org: string;
let patientId: string;
let withCare: Actor;
let withoutCare: Actor;

beforeAll(async () => {
  h = await createHarness();
  client = postgres(h.testDb.url, { max: 2, onnotice: () => {} });
  const db = drizzle({
    client,
    schema,
    logger: { logQuery: (query) => void sent.push(query) },
  }) as unknown as Database;
  deps = { ...h.deps, db };
  org = await makeOrganization(h.deps);
  patientId = (await makePatient(h.deps, org)).id;
  const c1 = await makeUser(h.deps, "clinician", org);
  await linkCare(h.deps, org, patientId, await makePractitioner(h.deps, org, c1.userId));
  withCare = await actorFor(h, c1.userId);
  const c2 = await makeUser(h.deps, "clinician", org);
  await makePractitioner(h.deps, org, c2.userId);
  withoutCare = await actorFor(h, c2.userId);
});

afterAll(async () => {
  await client?.end();
  await h?.close();
});

/** SELECTs whose FROM is the `patients` table (not joins that only mention it). */
function patientsReads(): number {
  return sent.filter((q) => /^select\b/i.test(q) && /\bfrom "patients"/i.test(q)).length;
}

const who = (a: Actor) => ({ ...SYSTEM_ACTOR, userId: a.userId, role: a.role });

describe("patients.get reads the patients row once", () => {
  it("allowed read: one patients query, record returned with the rule's basis", async () => {
    sent.length = 0;
    const record = await getPatient(deps, withCare, who(withCare), { patientId, entryLimit: 10 });
    expect(record.id).toBe(patientId);
    expect(record.access).toBe("care_relationship");
    expect(record.demographics.name?.family).toBeTypeOf("string");
    expect(patientsReads()).toBe(1);
    // The clinician's facts (care relationship, grants) come from the same statement.
    expect(
      sent.some(
        (q) => /^select\b[\s\S]*from "care_relationships"/i.test(q) && !/from "patients"/i.test(q),
      ),
    ).toBe(false);
    expect(sent.filter((q) => /^select\b/i.test(q)).length).toBe(2); // patient + entries
  });

  it("refused read: still one patients query, FORBIDDEN audited as denied, nothing returned", async () => {
    sent.length = 0;
    const err = await getPatient(deps, withoutCare, who(withoutCare), {
      patientId,
      entryLimit: 10,
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ForbiddenError);
    expect(patientsReads()).toBe(1);
    // The entries query never ran for a refused read.
    expect(sent.some((q) => /from "clinical_entries"/i.test(q))).toBe(false);
    const denied = await h.deps.db
      .select({ id: auditEvents.id })
      .from(auditEvents)
      .where(
        and(
          eq(auditEvents.actorUserId, withoutCare.userId),
          eq(auditEvents.outcome, "denied"),
          eq(auditEvents.patientId, patientId),
        ),
      );
    expect(denied.length).toBe(1);
  });

  it("unknown patient: NOT_FOUND after one patients query", async () => {
    sent.length = 0;
    const err = await getPatient(deps, withCare, who(withCare), {
      patientId: "01900000-0000-7000-8000-000000000000",
      entryLimit: 10,
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NotFoundError);
    expect(patientsReads()).toBe(1);
  });

  it("break-the-glass grants from the merged query: active allows, expired and revoked do not", async () => {
    const grant = async (over: Partial<typeof breakGlassGrants.$inferInsert>) => {
      const id = uuidv7();
      await h.deps.db.insert(breakGlassGrants).values({
        id,
        organizationId: org,
        patientId,
        userId: withoutCare.userId,
        practitionerId: withoutCare.practitionerId,
        reason: h.deps.crypto.seal("break_glass_grants", "reason", id, "test emergency"),
        grantedAt: new Date(Date.now() - 60_000),
        expiresAt: new Date(Date.now() + 3_600_000),
        ...over,
      });
      return id;
    };
    const read = () =>
      getPatient(deps, withoutCare, who(withoutCare), { patientId, entryLimit: 1 }).catch(
        (e: unknown) => e,
      );
    await grant({ expiresAt: new Date(Date.now() - 1_000) });
    await grant({ revokedAt: new Date(Date.now() - 1_000) });
    await grant({ grantedAt: new Date(Date.now() + 60_000) });
    expect(await read()).toBeInstanceOf(ForbiddenError);
    const active = await grant({});
    sent.length = 0;
    const record = (await read()) as Awaited<ReturnType<typeof getPatient>>;
    expect(record.access).toBe("break_glass");
    expect(patientsReads()).toBe(1);
    expect(
      sent.some(
        (q) => /^select\b[\s\S]*from "break_glass_grants"/i.test(q) && !/from "patients"/i.test(q),
      ),
    ).toBe(false);
    const used = await h.deps.db
      .select({ details: auditEvents.details })
      .from(auditEvents)
      .where(
        and(
          eq(auditEvents.actorUserId, withoutCare.userId),
          eq(auditEvents.action, "access.break_glass_used"),
        ),
      );
    expect(used.map((u) => u.details?.grantId)).toContain(active);
  });
});
