import { TRPCError } from "@trpc/server";
import { and, eq, or } from "drizzle-orm";
import superjson from "superjson";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { auditEvents, patients, practitioners } from "../../db/schema/index.ts";
import type { Actor, Role } from "../kernel/roles.ts";
import { appRouter } from "../router.ts";
import { ACCESS_MATRIX, PATIENT_ROW_CELLS } from "./access-matrix.data.ts";
import {
  linkCare,
  makeOrganization,
  makePatient,
  makePractitioner,
  makeServiceApiKey,
  makeUser,
} from "./factory.ts";
import { actorFor, createHarness, type Harness } from "./harness.ts";

/**
 * The three row-level rules of ARCHITECTURE §3, exercised through the real router and database:
 * patient → self only; clinician → care relationship only; staff/admin → own organization only.
 * Every refusal must be audited as `denied`.
 */
let h: Harness;
let orgA: string;
let orgB: string;
let patientA: { id: string };
let patientB: { id: string };
let patientOtherOrg: { id: string };
const actors: Record<string, Actor> = {};

beforeAll(async () => {
  h = await createHarness();
  orgA = await makeOrganization(h.deps);
  orgB = await makeOrganization(h.deps);
  patientA = await makePatient(h.deps, orgA);
  patientB = await makePatient(h.deps, orgA);
  patientOtherOrg = await makePatient(h.deps, orgB);

  const pa = await makeUser(h.deps, "patient", orgA);
  await h.deps.db.update(patients).set({ userId: pa.userId }).where(eq(patients.id, patientA.id));
  actors.patientA = await actorFor(h, pa.userId);

  const treating = await makeUser(h.deps, "clinician", orgA);
  const treatingPractitioner = await makePractitioner(h.deps, orgA, treating.userId);
  await linkCare(h.deps, orgA, patientA.id, treatingPractitioner);
  actors.treatingClinician = await actorFor(h, treating.userId);

  const stranger = await makeUser(h.deps, "clinician", orgA);
  await makePractitioner(h.deps, orgA, stranger.userId);
  actors.strangerClinician = await actorFor(h, stranger.userId);

  const expired = await makeUser(h.deps, "clinician", orgA);
  const expiredPractitioner = await makePractitioner(h.deps, orgA, expired.userId);
  await linkCare(h.deps, orgA, patientA.id, expiredPractitioner, new Date("2010-01-01T00:00:00Z"));
  actors.expiredClinician = await actorFor(h, expired.userId);

  actors.staffA = await actorFor(h, (await makeUser(h.deps, "staff", orgA)).userId);
  actors.staffB = await actorFor(h, (await makeUser(h.deps, "staff", orgB)).userId);
  actors.adminB = await actorFor(h, (await makeUser(h.deps, "admin", orgB)).userId);
  actors.service = await actorFor(h, (await makeUser(h.deps, "service", orgA)).userId);
});
afterAll(async () => {
  await h?.close();
});

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return "OK";
  } catch (err) {
    if (err instanceof TRPCError) return err.code;
    throw err;
  }
}

async function deniedAuditCount(actor: Actor, patientId: string): Promise<number> {
  const rows = await h.deps.db
    .select()
    .from(auditEvents)
    .where(
      and(
        eq(auditEvents.actorUserId, actor.userId),
        eq(auditEvents.resourceId, patientId),
        eq(auditEvents.outcome, "denied"),
      ),
    );
  return rows.length;
}

describe("row-level access to patients.get and appointments.listForPatient", () => {
  const cases: [string, () => string, "OK" | "FORBIDDEN"][] = [
    ["patientA", () => patientA.id, "OK"],
    ["patientA", () => patientB.id, "FORBIDDEN"],
    ["treatingClinician", () => patientA.id, "OK"],
    ["treatingClinician", () => patientB.id, "FORBIDDEN"],
    ["strangerClinician", () => patientA.id, "FORBIDDEN"],
    ["expiredClinician", () => patientA.id, "FORBIDDEN"],
    ["staffA", () => patientA.id, "OK"],
    ["staffA", () => patientOtherOrg.id, "FORBIDDEN"],
    ["staffB", () => patientA.id, "FORBIDDEN"],
    ["adminB", () => patientA.id, "FORBIDDEN"],
    ["adminB", () => patientOtherOrg.id, "OK"],
  ];

  it.each(cases)("%s reading a patient → %s (get)", async (who, target, expected) => {
    const actor = actors[who] as Actor;
    const before = await deniedAuditCount(actor, target());
    const code = await codeOf(h.caller(actor).patients.get({ patientId: target() }));
    expect(code).toBe(expected);
    const after = await deniedAuditCount(actor, target());
    expect(after - before).toBe(expected === "OK" ? 0 : 1);
  });

  it.each(cases)("%s listing appointments of a patient → %s", async (who, target, expected) => {
    const actor = actors[who] as Actor;
    const before = await deniedAuditCount(actor, target());
    const code = await codeOf(h.caller(actor).appointments.listForPatient({ patientId: target() }));
    expect(code).toBe(expected);
    expect((await deniedAuditCount(actor, target())) - before).toBe(expected === "OK" ? 0 : 1);
  });

  it("a refused read returns no data and names no PHI in the error", async () => {
    try {
      await h.caller(actors.patientA as Actor).patients.get({ patientId: patientB.id });
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(TRPCError);
      expect(JSON.stringify(err)).not.toMatch(/Family|Given|555-|999-/);
    }
  });

  it("an unknown patient is NOT_FOUND and audited as denied", async () => {
    const id = "01900000-0000-7000-8000-000000000000";
    expect(await codeOf(h.caller(actors.staffA as Actor).patients.get({ patientId: id }))).toBe(
      "NOT_FOUND",
    );
    const rows = await h.deps.db.select().from(auditEvents).where(eq(auditEvents.resourceId, id));
    expect(rows.map((r) => r.outcome)).toEqual(["denied"]);
  });
});

describe("role-level rules (meta.roles) are enforced and audited", () => {
  it("anonymous callers get UNAUTHORIZED on every protected procedure", async () => {
    const anon = h.caller(null);
    expect(await codeOf(anon.patients.get({ patientId: patientA.id }))).toBe("UNAUTHORIZED");
    expect(await codeOf(anon.patients.search({ mrn: "x" }))).toBe("UNAUTHORIZED");
    expect(await codeOf(anon.appointments.listForPatient({ patientId: patientA.id }))).toBe(
      "UNAUTHORIZED",
    );
    expect(await codeOf(anon.auth.me())).toBe("UNAUTHORIZED");
  });

  it("a patient may not search, and the refusal is audited", async () => {
    const actor = actors.patientA as Actor;
    expect(await codeOf(h.caller(actor).patients.search({ mrn: "x" }))).toBe("FORBIDDEN");
    const rows = await h.deps.db
      .select()
      .from(auditEvents)
      .where(
        and(eq(auditEvents.actorUserId, actor.userId), eq(auditEvents.action, "access.denied")),
      );
    expect(rows.at(-1)?.resourceId).toBe("patients.search");
  });

  it("the service role never reads a full record", async () => {
    expect(
      await codeOf(h.caller(actors.service as Actor).patients.get({ patientId: patientA.id })),
    ).toBe("FORBIDDEN");
  });
});

describe("search is scoped by the same rules", () => {
  it("staff of another organization find nothing; staff of the patient's organization find the patient", async () => {
    const [row] = await h.deps.db.select().from(patients).where(eq(patients.id, patientA.id));
    const d = h.deps.crypto.open<{ mrn: string }>(
      "patients",
      "demographics",
      patientA.id,
      row?.demographics ?? "",
    );
    expect(await h.caller(actors.staffB as Actor).patients.search({ mrn: d.mrn })).toEqual([]);
    const found = await h.caller(actors.staffA as Actor).patients.search({ mrn: d.mrn });
    expect(found.map((p) => p.id)).toEqual([patientA.id]);
  });

  it("a clinician finds only patients in their care", async () => {
    const [rowB] = await h.deps.db.select().from(patients).where(eq(patients.id, patientB.id));
    const dB = h.deps.crypto.open<{ mrn: string }>(
      "patients",
      "demographics",
      patientB.id,
      rowB?.demographics ?? "",
    );
    expect(
      await h.caller(actors.treatingClinician as Actor).patients.search({ mrn: dB.mrn }),
    ).toEqual([]);
  });

  it("every allowed read is audited with the patient id", async () => {
    const actor = actors.treatingClinician as Actor;
    await h.caller(actor).patients.get({ patientId: patientA.id });
    const rows = await h.deps.db
      .select()
      .from(auditEvents)
      .where(
        and(
          eq(auditEvents.actorUserId, actor.userId),
          eq(auditEvents.action, "patient.read"),
          eq(auditEvents.outcome, "allowed"),
        ),
      );
    expect(rows.length).toBeGreaterThan(0);
    expect(rows.every((r) => r.patientId === patientA.id)).toBe(true);
  });

  it("the practitioner table links the treating clinician", async () => {
    const rows = await h.deps.db
      .select()
      .from(practitioners)
      .where(eq(practitioners.userId, (actors.treatingClinician as Actor).userId));
    expect(rows).toHaveLength(1);
  });
});

/**
 * The access matrix as data (issue 13): `access-matrix.data.ts` lists every procedure's allowed
 * roles and row rule. Enumerate the router at run time (no procedure without an entry), then call
 * every procedure × caller over HTTP with fresh sessions and check allowed/refused exactly as the
 * file says, and that every refusal of a signed-in caller leaves an `access.denied`/denied audit row.
 */
describe("access matrix as data, over HTTP", () => {
  type Caller = "anon" | Role;
  const CALLERS: Caller[] = ["anon", "patient", "clinician", "staff", "admin", "service"];
  const users: Partial<Record<Role, string>> = {};
  let url: string;
  let serviceKey: string;
  let serviceUser: string;
  let own: string;
  let otherPatient: string;
  let otherOrgPatient: string;
  const procedures = Object.entries(
    appRouter._def.procedures as unknown as Record<string, { _def: { type: string } }>,
  );

  beforeAll(async () => {
    url = await h.listen();
    own = (await makePatient(h.deps, orgA)).id;
    otherPatient = (await makePatient(h.deps, orgA)).id;
    otherOrgPatient = (await makePatient(h.deps, orgB)).id;
    for (const role of ["patient", "clinician", "staff", "admin"] as const) {
      users[role] = (await makeUser(h.deps, role, orgA)).userId;
    }
    await h.deps.db.update(patients).set({ userId: users.patient }).where(eq(patients.id, own));
    const pr = await makePractitioner(h.deps, orgA, users.clinician ?? null);
    await linkCare(h.deps, orgA, own, pr);
    const key = await makeServiceApiKey(h.deps, orgA);
    serviceKey = key.key;
    serviceUser = key.userId;
  });

  async function tokenFor(caller: Caller): Promise<string | null> {
    if (caller === "anon") return null;
    if (caller === "service") return serviceKey;
    const { token } = await h.services.sessions.create(users[caller] ?? "", {
      ip: "127.0.0.1",
      userAgent: "matrix",
      mfaVerified: true,
      now: h.deps.now(),
    });
    return token;
  }

  /** HTTP status of one call; for the SSE subscription, the status its first error event carries. */
  async function httpCall(path: string, type: string, input: unknown, token: string | null) {
    const headers: Record<string, string> = token ? { authorization: `Bearer ${token}` } : {};
    const body = JSON.stringify(superjson.serialize(input));
    if (type === "subscription") {
      const ctl = new AbortController();
      const res = await fetch(`${url}/trpc/${path}?input=${encodeURIComponent(body)}`, {
        headers: { ...headers, accept: "text/event-stream" },
        signal: ctl.signal,
      });
      let text = "";
      const reader = res.body?.getReader();
      const deadline = Date.now() + 1_500;
      while (reader && Date.now() < deadline && !/serialized-error|"code"/.test(text)) {
        const chunk = await Promise.race([
          reader.read(),
          new Promise<null>((r) => setTimeout(() => r(null), 300)),
        ]);
        if (!chunk || chunk.done) break;
        text += new TextDecoder().decode(chunk.value);
      }
      ctl.abort();
      if (/UNAUTHORIZED/.test(text)) return 401;
      if (/FORBIDDEN/.test(text)) return 403;
      return res.status;
    }
    const res = await fetch(`${url}/trpc/${path}`, {
      method: "POST",
      headers: { ...headers, "content-type": "application/json" },
      body,
    });
    return res.status;
  }

  async function roleDenials(userId: string, path: string): Promise<number> {
    const rows = await h.deps.db
      .select({ id: auditEvents.id })
      .from(auditEvents)
      .where(
        and(
          eq(auditEvents.actorUserId, userId),
          eq(auditEvents.action, "access.denied"),
          eq(auditEvents.resourceId, path),
        ),
      );
    return rows.length;
  }

  it("every procedure of the router has an entry, and every entry a procedure", () => {
    const paths = procedures.map(([p]) => p).sort();
    expect(paths.filter((p) => !(p in ACCESS_MATRIX))).toEqual([]);
    expect(Object.keys(ACCESS_MATRIX).filter((p) => !paths.includes(p))).toEqual([]);
  });

  it("every procedure × caller is allowed or refused as the file says; refusals are audited", async () => {
    const mismatches: string[] = [];
    let cells = 0;
    for (const [path, proc] of procedures) {
      const entry = ACCESS_MATRIX[path];
      if (!entry) continue;
      for (const caller of CALLERS) {
        cells++;
        const token = await tokenFor(caller);
        const userId =
          caller === "service" ? serviceUser : caller === "anon" ? null : users[caller];
        const before = userId ? await roleDenials(userId, path) : 0;
        const status = await httpCall(path, proc._def.type, {}, token);
        const after = userId ? await roleDenials(userId, path) : 0;
        const allowed =
          entry.roles === "public" || (caller !== "anon" && entry.roles.includes(caller));
        let ok: boolean;
        if (allowed) ok = status !== 401 && after === before && status < 500;
        else if (caller === "anon") ok = status === 401;
        else ok = status === 403 && after === before + 1;
        if (!ok) mismatches.push(`${path} × ${caller}: HTTP ${status}, denials +${after - before}`);
      }
    }
    expect(cells).toBe(procedures.length * CALLERS.length);
    expect(mismatches).toEqual([]);
  }, 180_000);

  it("the patient row rule: own allowed, foreign refused and audited, per role", async () => {
    const mismatches: string[] = [];
    const foreignOf: Record<string, string> = {
      patient: otherPatient,
      clinician: otherPatient,
      staff: otherOrgPatient,
      admin: otherOrgPatient,
    };
    for (const [path, input] of Object.entries(PATIENT_ROW_CELLS)) {
      const entry = ACCESS_MATRIX[path];
      expect(entry?.row).toBe("patient");
      for (const role of ["patient", "clinician", "staff", "admin"] as const) {
        if (entry?.roles === "public" || !entry?.roles.includes(role)) continue;
        const userId = users[role] ?? "";
        const token = await tokenFor(role);
        const ownStatus = await httpCall(path, "query", input(own), token);
        if (ownStatus !== 200) mismatches.push(`${path} × ${role} own: ${ownStatus}`);
        const foreign = foreignOf[role] ?? "";
        const denied = async () =>
          (
            await h.deps.db
              .select({ id: auditEvents.id })
              .from(auditEvents)
              .where(
                and(
                  eq(auditEvents.actorUserId, userId),
                  eq(auditEvents.outcome, "denied"),
                  or(eq(auditEvents.resourceId, foreign), eq(auditEvents.patientId, foreign)),
                ),
              )
          ).length;
        const before = await denied();
        const foreignStatus = await httpCall(path, "query", input(foreign), token);
        const after = await denied();
        if (![403, 404].includes(foreignStatus) || after !== before + 1) {
          mismatches.push(
            `${path} × ${role} foreign: ${foreignStatus}, denials +${after - before}`,
          );
        }
      }
    }
    expect(mismatches).toEqual([]);
  }, 120_000);
});

describe("appointments.practitioners lists the caller's own clinic only", () => {
  it("staff see their organization's practitioners; patients and anonymous callers are refused", async () => {
    const a = await h.caller(actors.staffA as Actor).appointments.practitioners({});
    expect(a.organizationId).toBe(orgA);
    const [treating] = await h.deps.db
      .select({ id: practitioners.id })
      .from(practitioners)
      .where(eq(practitioners.userId, (actors.treatingClinician as Actor).userId));
    expect(a.items.map((p) => p.id)).toContain(treating?.id);
    const b = await h.caller(actors.staffB as Actor).appointments.practitioners({});
    expect(b.items.map((p) => p.id)).not.toContain(treating?.id);
    expect(await codeOf(h.caller(actors.patientA as Actor).appointments.practitioners({}))).toBe(
      "FORBIDDEN",
    );
    expect(await codeOf(h.caller(null).appointments.practitioners({}))).toBe("UNAUTHORIZED");
  });
});
