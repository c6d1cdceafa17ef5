import { TRPCError } from "@trpc/server";
import { eq } from "drizzle-orm";
import { v7 as uuidv7 } from "uuid";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createHavenClient } from "../../client-sdk/index.ts";
import { auditEvents, clinicalEntries, patients } from "../../db/schema/index.ts";
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
import { reminderContact, reminderContactView, serializeDemographics } from "./service.ts";

/**
 * Minimum necessary (45 CFR 164.502(b), 164.514(d)): each role's response carries exactly its
 * whitelist — the patient everything, clinicians no SSN, the front desk no SSN and no clinical
 * bodies, the reminder service only first name and contact.
 */
let h: Harness;
let url: string;
let org: string;
let otherOrg: string;
let patient: Awaited<ReturnType<typeof makePatient>>;
let staffUser: Awaited<ReturnType<typeof makeUser>>;
const a: Record<string, Actor> = {};
const ALL = ["address", "birthDate", "deceased", "email", "mrn", "name", "phone", "sex", "ssn"];
const NO_SSN = ALL.filter((k) => k !== "ssn");

beforeAll(async () => {
  h = await createHarness();
  org = await makeOrganization(h.deps);
  otherOrg = await makeOrganization(h.deps);
  patient = await makePatient(h.deps, org);
  for (const [i, kind] of (["condition", "observation"] as const).entries()) {
    const id = uuidv7();
    await h.deps.db.insert(clinicalEntries).values({
      id,
      organizationId: org,
      patientId: patient.id,
      kind,
      recordedAt: new Date(Date.UTC(2020, 0, 1 + i)),
      body: h.deps.crypto.seal("clinical_entries", "body", id, {
        resourceType: kind === "condition" ? "Condition" : "Observation",
        code: { text: "Asthma" },
      }),
      source: "portal",
    });
  }
  const patientUser = await makeUser(h.deps, "patient", org);
  await h.deps.db
    .update(patients)
    .set({ userId: patientUser.userId })
    .where(eq(patients.id, patient.id));
  a.patient = await actorFor(h, patientUser.userId);
  const clinician = await makeUser(h.deps, "clinician", org);
  await linkCare(h.deps, org, patient.id, await makePractitioner(h.deps, org, clinician.userId));
  a.clinician = await actorFor(h, clinician.userId);
  staffUser = await makeUser(h.deps, "staff", org);
  a.staff = await actorFor(h, staffUser.userId);
  a.admin = await actorFor(h, (await makeUser(h.deps, "admin", org)).userId);
  a.service = await actorFor(h, (await makeUser(h.deps, "service", org)).userId);
  a.otherService = await actorFor(h, (await makeUser(h.deps, "service", otherOrg)).userId);
  url = await h.listen();
});
afterAll(async () => {
  await h?.close();
});

describe("patients.get returns exactly each role's whitelist", () => {
  it.each([
    ["patient", ALL, true, "self"],
    ["clinician", NO_SSN, true, "care_relationship"],
    ["staff", NO_SSN, false, "organization"],
    ["admin", NO_SSN, false, "organization"],
  ] as const)("%s", async (role, fields, bodies, basis) => {
    const record = await h.caller(a[role] as Actor).patients.get({ patientId: patient.id });
    expect(Object.keys(record).sort()).toEqual(
      [
        "access",
        "demographics",
        "entries",
        "entriesTruncated",
        "id",
        "organizationId",
        "version",
      ].sort(),
    );
    expect(record.access).toBe(basis);
    expect(Object.keys(record.demographics).sort()).toEqual([...fields].sort());
    for (const f of fields) {
      expect(record.demographics[f as keyof typeof record.demographics]).toEqual(
        patient.demographics[f as keyof typeof patient.demographics],
      );
    }
    expect(record.entries).toHaveLength(2);
    for (const e of record.entries) {
      expect(Object.keys(e).sort()).toEqual(
        (bodies
          ? ["id", "kind", "recordedAt", "resource", "source"]
          : ["id", "kind", "recordedAt", "source"]
        ).sort(),
      );
    }
    if (bodies) expect(record.entries[0]?.resource).toMatchObject({ code: { text: "Asthma" } });
    else expect(JSON.stringify(record)).not.toContain("Asthma");
  });

  it("the service role may not read the record at all", async () => {
    await expect(
      h.caller(a.service as Actor).patients.get({ patientId: patient.id }),
    ).rejects.toBeInstanceOf(TRPCError);
  });

  it("the same whitelist holds over HTTP (staff, through the SDK)", async () => {
    const token = await loginWithMfa(h, url, staffUser);
    const record = await createHavenClient({ url, token }).patients.get.query({
      patientId: patient.id,
    });
    expect(Object.keys(record.demographics).sort()).toEqual(NO_SSN.sort());
    expect(record.entries.every((e) => !("resource" in e))).toBe(true);
  });

  it("search hits carry name, birth date, sex and MRN only", async () => {
    for (const role of ["clinician", "staff", "admin"] as const) {
      const hits = await h
        .caller(a[role] as Actor)
        .patients.search({ mrn: patient.demographics.mrn as string });
      expect(hits).toHaveLength(1);
      expect(Object.keys(hits[0] ?? {}).sort()).toEqual([
        "birthDate",
        "id",
        "mrn",
        "name",
        "organizationId",
        "sex",
      ]);
      expect(Object.keys(hits[0]?.name ?? {}).sort()).toEqual(["family", "given"]);
    }
  });

  it("serializeDemographics copies only whitelisted fields, even from a value with extra members", () => {
    const tainted = { ...patient.demographics, internalNote: "x" } as typeof patient.demographics;
    expect(Object.keys(serializeDemographics("staff", tainted)).sort()).toEqual(NO_SSN.sort());
    expect(serializeDemographics("service", tainted)).toEqual({});
  });
});

describe("the reminder projection (service role)", () => {
  it("is first name, phone and e-mail — nothing else", async () => {
    const contact = await reminderContact(
      h.deps,
      a.service as Actor,
      { ...nullAudit(), userId: a.service?.userId ?? null },
      patient.id,
    );
    expect(contact).toEqual({
      givenName: patient.demographics.name.given[0],
      phone: patient.demographics.phone,
      email: patient.demographics.email,
    });
    expect(Object.keys(reminderContactView(patient.demographics)).sort()).toEqual([
      "email",
      "givenName",
      "phone",
    ]);
  });

  it("only for the caller's organization, and only for service, staff and admin; audited", async () => {
    await expect(
      reminderContact(h.deps, a.otherService as Actor, nullAudit(), patient.id),
    ).rejects.toMatchObject({ reason: "other_organization" });
    await expect(
      reminderContact(h.deps, a.clinician as Actor, nullAudit(), patient.id),
    ).rejects.toMatchObject({
      reason: "role",
    });
    await expect(
      reminderContact(
        h.deps,
        a.service as Actor,
        nullAudit(),
        "01900000-0000-7000-8000-00000000f00d",
      ),
    ).rejects.toMatchObject({ name: "NotFoundError" });
    expect(
      (await reminderContact(h.deps, a.staff as Actor, nullAudit(), patient.id)).givenName,
    ).toBe(patient.demographics.name.given[0]);
    const rows = await h.deps.db
      .select()
      .from(auditEvents)
      .where(eq(auditEvents.action, "patient.read"));
    const contact = rows.filter((r) => r.details?.view === "reminder_contact");
    expect(contact.map((r) => `${r.outcome}:${r.details?.rule ?? ""}`).sort()).toEqual(
      [
        "allowed:",
        "allowed:",
        "denied:not_found",
        "denied:other_organization",
        "denied:role",
      ].sort(),
    );
  });
});

function nullAudit() {
  return {
    userId: null,
    role: null,
    sessionId: null,
    organizationId: null,
    ip: null,
    requestId: null,
  };
}
