import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { TRPCError } from "@trpc/server";
import { and, eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createHavenClient } from "../../client-sdk/index.ts";
import {
  appointments,
  auditEvents,
  careRelationships,
  clinicalEntries,
  organizations,
  patients,
  practitioners,
} from "../../db/schema/index.ts";
import { PhiCrypto } from "../crypto/phi.ts";
import { DEMO_BUNDLE_DIR } from "../demo/seed.ts";
import type { Demographics } from "../kernel/demographics.ts";
import { createTestDatabase, testKeyring } from "../test/db.ts";
import { makeOrganization, makePatient, makeUser } from "../test/factory.ts";
import { actorFor, createHarness, type Harness } from "../test/harness.ts";
import { exportPatientBundle, type FhirBundle, patientResourceFor } from "./export.ts";
import { type ImportDeps, importBundle, importFiles } from "./importer.ts";
import { mapPatient } from "./map.ts";
import type { FhirResource } from "./types.ts";

/**
 * Right of access (45 CFR 164.524): a patient's record exported as a FHIR R4 Bundle
 * (Patient/$everything content) round-trips through the importer — for every fixture patient,
 * into an EMPTY database with different keys, the decrypted records come back the same.
 */
const NOW = new Date("2026-01-15T10:00:00Z");
const FILES = readdirSync(DEMO_BUNDLE_DIR)
  .filter((f) => f.endsWith(".json"))
  .map((f) => join(DEMO_BUNDLE_DIR, f));
const FIXTURE_PATIENTS: { fhirId: string; family: string }[] = FILES.flatMap((file) => {
  const bundle = JSON.parse(readFileSync(file, "utf8")) as { entry: { resource: FhirResource }[] };
  return bundle.entry
    .filter((e) => e.resource.resourceType === "Patient")
    .map((e) => ({
      fhirId: e.resource.id as string,
      family: ((e.resource.name as { family: string }[])[0] as { family: string }).family,
    }));
});

let h: Harness;

beforeAll(async () => {
  h = await createHarness();
  h.clock.now = NOW;
  await importFiles(h.deps, FILES);
});
afterAll(async () => {
  await h?.close();
});

/** One patient's record, decrypted, keyed by FHIR ids (independent of Haven ids and keys). */
async function recordOf(deps: ImportDeps, fhirId: string) {
  const [p] = await deps.db
    .select({ patient: patients, orgFhirId: organizations.fhirId, orgName: organizations.name })
    .from(patients)
    .innerJoin(organizations, eq(organizations.id, patients.organizationId))
    .where(eq(patients.fhirId, deps.crypto.indexExact("patient.fhir_id", fhirId)));
  if (!p) throw new Error(`patient ${fhirId} missing`);
  const id = p.patient.id;
  const practitionerFhir = new Map(
    (await deps.db.select().from(practitioners)).map((r) => [
      r.id,
      { fhirId: r.fhirId, name: r.name, npi: r.npi },
    ]),
  );
  const orgFhir = new Map(
    (await deps.db.select().from(organizations)).map((o) => [o.id, o.fhirId]),
  );
  const entries = (
    await deps.db.select().from(clinicalEntries).where(eq(clinicalEntries.patientId, id))
  )
    .map((e) => ({
      fhirId: e.fhirId,
      kind: e.kind,
      recordedAt: e.recordedAt.toISOString(),
      source: e.source,
      author: e.authorPractitionerId ? practitionerFhir.get(e.authorPractitionerId) : null,
      body: deps.crypto.open("clinical_entries", "body", e.id, e.body),
    }))
    .sort((x, y) => String(x.fhirId).localeCompare(String(y.fhirId)));
  const appts = (await deps.db.select().from(appointments).where(eq(appointments.patientId, id)))
    .map((a) => ({
      fhirId: a.fhirId,
      startsAt: a.startsAt.toISOString(),
      endsAt: a.endsAt.toISOString(),
      status: a.status,
      practitioner: practitionerFhir.get(a.practitionerId),
      organization: orgFhir.get(a.organizationId),
      reason: a.reason ? deps.crypto.open("appointments", "reason", a.id, a.reason) : null,
    }))
    .sort((x, y) => String(x.fhirId).localeCompare(String(y.fhirId)));
  const care = (
    await deps.db.select().from(careRelationships).where(eq(careRelationships.patientId, id))
  )
    .map((c) => ({
      practitioner: practitionerFhir.get(c.practitionerId)?.fhirId,
      source: c.source,
      validFrom: c.validFrom.toISOString(),
      validTo: c.validTo?.toISOString() ?? null,
    }))
    .sort((x, y) => `${x.practitioner}|${x.source}`.localeCompare(`${y.practitioner}|${y.source}`));
  return {
    organization: { fhirId: p.orgFhirId, name: p.orgName },
    demographics: deps.crypto.open<Demographics>(
      "patients",
      "demographics",
      id,
      p.patient.demographics,
    ),
    resource: p.patient.resource
      ? deps.crypto.open("patients", "resource", id, p.patient.resource)
      : null,
    indexes: p.patient.mrnIndex !== null,
    entries,
    appointments: appts,
    care,
  };
}

describe("patient export round-trips through the importer", () => {
  it("covers all seven fixture patients", () => {
    expect(FIXTURE_PATIENTS).toHaveLength(7);
  });

  it.each(FIXTURE_PATIENTS)(
    "$family: exported, re-imported into an empty database, the same decrypted record",
    async ({ fhirId }) => {
      const [row] = await h.deps.db
        .select({ id: patients.id })
        .from(patients)
        .where(eq(patients.fhirId, h.deps.crypto.indexExact("patient.fhir_id", fhirId)));
      const bundle = await exportPatientBundle(h.deps, row?.id as string);
      expect(bundle).toMatchObject({ resourceType: "Bundle", type: "collection" });
      expect(bundle.entry[0]?.resource).toMatchObject({ resourceType: "Patient", id: fhirId });
      expect(bundle.entry[0]?.fullUrl).toBe(`urn:uuid:${fhirId}`);
      const original = await recordOf(h.deps, fhirId);
      expect(original.entries.length).toBeGreaterThan(10);
      expect(original.appointments.length).toBeGreaterThan(0);

      const target = await createTestDatabase();
      try {
        const deps: ImportDeps = {
          db: target.handle.db,
          crypto: new PhiCrypto(testKeyring("other")),
          now: () => NOW,
        };
        // Through JSON text, as a file written by the patient would come back.
        const result = await importBundle(deps, JSON.stringify(bundle));
        expect(result.created.Patient).toBe(1);
        expect(Object.keys(result.skipped).filter((k) => !k.startsWith("Appointment"))).toEqual([]);
        const copy = await recordOf(deps, fhirId);
        expect(copy).toEqual(original);
      } finally {
        await target.drop();
      }
    },
  );
});

describe("the exported Patient resource", () => {
  const stored: FhirResource = {
    resourceType: "Patient",
    id: "p-1",
    extension: [{ url: "http://example.org/x", valueString: "kept" }],
    name: [
      { use: "official", family: "Old", given: ["Ann"] },
      { use: "maiden", family: "Before" },
    ],
    telecom: [
      { system: "phone", value: "555-0000" },
      { system: "fax", value: "555-9999" },
    ],
    gender: "female",
    birthDate: "1990-01-01",
    address: [{ line: ["1 Old St"], city: "Oldtown" }],
    identifier: [
      { system: "http://hl7.org/fhir/sid/us-ssn", value: "999-00-0000" },
      { type: { coding: [{ code: "MR" }] }, value: "MRN-OLD" },
      { system: "urn:other", value: "keep-me" },
    ],
  };

  it("is the stored resource itself while it still says what the demographics say", () => {
    expect(patientResourceFor(mapPatient(stored), stored, "p-1")).toBe(stored);
  });

  it.each([
    [
      "edited contact, name and identifiers",
      {
        phone: "555-1234",
        email: "new@example.test",
        ssn: "999-11-2222",
        mrn: "MRN-NEW",
        name: { family: "New", given: ["Ann", "B"], prefix: ["Ms."], suffix: [] },
      },
    ],
    [
      "cleared fields",
      { phone: null, email: null, address: null, ssn: null, mrn: null, birthDate: null },
    ],
    ["deceased with a date", { deceased: "2024-02-03T04:05:06Z" }],
    ["deceased without a date", { deceased: true, sex: "unknown" as const }],
  ])("carries %s so that mapping it back gives the current demographics", (_label, change) => {
    const demographics = { ...mapPatient(stored), ...change } as Demographics;
    const out = patientResourceFor(demographics, stored, "p-1");
    expect(mapPatient(out)).toEqual(demographics);
    expect(out.extension).toEqual(stored.extension);
    expect((out.identifier as { system?: string }[]).some((i) => i.system === "urn:other")).toBe(
      true,
    );
    expect(stored.name).toEqual([
      { use: "official", family: "Old", given: ["Ann"] },
      { use: "maiden", family: "Before" },
    ]);
  });

  it("is built from the demographics for a patient created in Haven (no stored resource)", () => {
    const demographics = mapPatient({
      resourceType: "Patient",
      name: [{ family: "Doe", given: ["Jane"] }],
      birthDate: "1980-02-29",
      gender: "female",
      telecom: [{ system: "phone", value: "555-0101" }],
    });
    const out = patientResourceFor(demographics, null, "01900000-0000-7000-8000-000000000123");
    expect(out).toMatchObject({
      resourceType: "Patient",
      id: "01900000-0000-7000-8000-000000000123",
    });
    expect(mapPatient(out)).toEqual(demographics);
  });
});

describe("patients.exportMyRecord", () => {
  it("gives the signed-in patient their own bundle over HTTP, audited; nobody else may call it", async () => {
    const fixture = FIXTURE_PATIENTS[0] as { fhirId: string };
    const [row] = await h.deps.db
      .select({ id: patients.id, organizationId: patients.organizationId })
      .from(patients)
      .where(eq(patients.fhirId, h.deps.crypto.indexExact("patient.fhir_id", fixture.fhirId)));
    const user = await makeUser(h.deps, "patient", row?.organizationId as string);
    await h.deps.db
      .update(patients)
      .set({ userId: user.userId })
      .where(eq(patients.id, row?.id as string));
    const url = await h.listen();
    const { token } = await createHavenClient({ url }).auth.login.mutate({
      email: user.email,
      password: user.password,
    });
    const bundle = (await createHavenClient({
      url,
      token,
    }).patients.exportMyRecord.query()) as FhirBundle;
    expect(bundle.entry[0]?.resource.id).toBe(fixture.fhirId);
    expect(bundle.entry.length).toBe(
      (await exportPatientBundle(h.deps, row?.id as string)).entry.length,
    );
    const [logged] = await h.deps.db
      .select()
      .from(auditEvents)
      .where(
        and(eq(auditEvents.action, "patient.export"), eq(auditEvents.patientId, row?.id as string)),
      );
    expect(logged).toMatchObject({ outcome: "allowed", actorUserId: user.userId });
    expect(logged?.details?.resources).toBe(bundle.entry.length);

    const clinician = await actorFor(
      h,
      (await makeUser(h.deps, "clinician", row?.organizationId as string)).userId,
    );
    await expect(h.caller(clinician).patients.exportMyRecord()).rejects.toMatchObject({
      code: "FORBIDDEN",
    });
    const org = await makeOrganization(h.deps);
    await makePatient(h.deps, org);
    const unlinked = await actorFor(h, (await makeUser(h.deps, "patient", org)).userId);
    const err = await h
      .caller(unlinked)
      .patients.exportMyRecord()
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TRPCError);
    expect((err as TRPCError).code).toBe("NOT_FOUND");
  });
});
