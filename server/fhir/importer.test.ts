import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { and, asc, count, eq } from "drizzle-orm";
import { v7 as uuidv7 } from "uuid";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  appointments,
  careRelationships,
  clinicalEntries,
  organizations,
  patients,
  practitioners,
} from "../../db/schema/index.ts";
import type { Demographics } from "../kernel/demographics.ts";
import { createTestDatabase, type TestDatabase, testCrypto } from "../test/db.ts";
import { FhirImportError } from "./errors.ts";
import { type ImportDeps, type ImportSummary, importBundle, importFiles } from "./importer.ts";
import type { FhirResource } from "./types.ts";

const SYNTHEA = resolve(dirname(fileURLToPath(import.meta.url)), "../../db/seed/synthea");
const FILES = readdirSync(SYNTHEA)
  .filter((f) => f.endsWith(".json"))
  .sort();
const PATIENT_FILES = FILES.filter((f) => !/^(hospital|practitioner)Information/.test(f));

interface Bundle {
  resourceType: "Bundle";
  type: string;
  entry: { fullUrl?: string; resource: FhirResource }[];
}

function readBundle(file: string): Bundle {
  return JSON.parse(readFileSync(join(SYNTHEA, file), "utf8")) as Bundle;
}

/** Distinct FHIR ids per resource type across all fixture files. */
function fixtureIds(): Map<string, Set<string>> {
  const ids = new Map<string, Set<string>>();
  for (const f of FILES) {
    for (const { resource } of readBundle(f).entry) {
      let set = ids.get(resource.resourceType);
      if (!set) {
        set = new Set();
        ids.set(resource.resourceType, set);
      }
      set.add(resource.id ?? "");
    }
  }
  return ids;
}

const TABLES = {
  organizations,
  practitioners,
  patients,
  clinicalEntries,
  appointments,
  careRelationships,
};

let tdb: TestDatabase;
let deps: ImportDeps;

/** Every row of every table the importer writes, in id order (ciphertexts and timestamps included). */
async function snapshot(): Promise<string> {
  const out: Record<string, unknown[]> = {};
  for (const [name, table] of Object.entries(TABLES)) {
    out[name] = await deps.db.select().from(table).orderBy(asc(table.id));
  }
  return JSON.stringify(out);
}

async function rowCounts(): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const [name, table] of Object.entries(TABLES)) {
    const [row] = await deps.db.select({ n: count() }).from(table);
    out[name] = row?.n ?? 0;
  }
  return out;
}

function total(counts: Record<string, number>): number {
  return Object.values(counts).reduce((a, b) => a + b, 0);
}

beforeAll(async () => {
  tdb = await createTestDatabase();
  deps = { db: tdb.handle.db, crypto: testCrypto(), now: () => new Date() };
});

afterAll(async () => {
  await tdb?.drop();
});

describe("importFiles on the Synthea fixtures", () => {
  let first: ImportSummary;
  const order: string[] = [];

  it("imports every bundle with the expected counts", async () => {
    const progress: [number, number][] = [];
    first = await importFiles(deps, [SYNTHEA], {
      onProgress: (done, all) => progress.push([done, all]),
      onFile: (file) => order.push(file),
    });
    console.log(`imported ${first.files} fixture files in ${Math.round(first.durationMs)} ms`);
    const ids = fixtureIds();
    const n = (type: string) => ids.get(type)?.size ?? 0;

    expect(first.files).toBe(FILES.length);
    expect(progress[0]).toEqual([0, FILES.length]);
    expect(progress.at(-1)).toEqual([FILES.length, FILES.length]);
    // Organization and practitioner bundles go first.
    expect(
      order.slice(0, 2).map((f) =>
        f
          .split("/")
          .at(-1)
          ?.replace(/\d+\.json$/, ""),
      ),
    ).toEqual(["hospitalInformation", "practitionerInformation"]);

    expect(first.created.Patient).toBe(7);
    expect(first.created.Organization).toBe(n("Organization"));
    expect(n("Organization")).toBeGreaterThanOrEqual(17);
    expect(first.created.Practitioner).toBe(n("Practitioner"));
    expect(n("Practitioner")).toBeGreaterThanOrEqual(17);
    for (const type of [
      "Encounter",
      "Condition",
      "Observation",
      "Immunization",
      "Procedure",
      "DiagnosticReport",
      "CarePlan",
      "CareTeam",
    ]) {
      expect(first.created[type], type).toBe(n(type));
    }
    expect(first.created.Appointment).toBe(n("Encounter"));
    expect(first.created.CareRelationship).toBeGreaterThan(0);
    expect(first.skipped.Claim).toBe(n("Claim"));
    expect(first.skipped.ExplanationOfBenefit).toBe(n("ExplanationOfBenefit"));
    expect(first.skipped["Encounter.appointment"]).toBeUndefined();
    expect(first.durationMs).toBeLessThan(10_000);

    const counts = await rowCounts();
    expect(counts).toMatchObject({
      patients: 7,
      organizations: n("Organization"),
      practitioners: n("Practitioner"),
      appointments: n("Encounter"),
    });
    expect(counts.clinicalEntries).toBe(
      [
        "Encounter",
        "Condition",
        "Observation",
        "Immunization",
        "Procedure",
        "DiagnosticReport",
        "CarePlan",
        "CareTeam",
      ]
        .map(n)
        .reduce((a, b) => a + b, 0),
    );
    const encounterCare = await deps.db
      .select({ n: count() })
      .from(careRelationships)
      .where(eq(careRelationships.source, "encounter"));
    const teamCare = await deps.db
      .select({ n: count() })
      .from(careRelationships)
      .where(eq(careRelationships.source, "care-team"));
    expect(encounterCare[0]?.n).toBeGreaterThan(0);
    expect(teamCare[0]?.n).toBeGreaterThan(0);

    // Every practitioner who saw a patient got the encounter's organization.
    const apptPractitioners = await deps.db
      .selectDistinct({ organizationId: practitioners.organizationId })
      .from(appointments)
      .innerJoin(practitioners, eq(practitioners.id, appointments.practitionerId));
    expect(apptPractitioners.every((p) => p.organizationId !== null)).toBe(true);
    // All fixture encounters are finished and in the past.
    const statuses = await deps.db
      .selectDistinct({ status: appointments.status })
      .from(appointments);
    expect(statuses).toEqual([{ status: "completed" }]);
  });

  it("re-importing unchanged input writes nothing", async () => {
    const before = await snapshot();
    const second = await importFiles(deps, [SYNTHEA]);
    console.log(
      `re-imported ${second.files} unchanged fixture files in ${Math.round(second.durationMs)} ms`,
    );
    expect(total(second.created)).toBe(0);
    expect(total(second.updated)).toBe(0);
    expect(second.unchanged.Patient).toBe(7);
    expect(second.unchanged.Appointment).toBe(first.created.Appointment);
    expect(second.unchanged.CareRelationship).toBeGreaterThan(0);
    expect(second.skipped.Claim).toBe(first.skipped.Claim);
    expect(await snapshot()).toBe(before);
  });

  it("stores demographics that decrypt to the FHIR Patient, with working blind indexes", async () => {
    for (const file of PATIENT_FILES) {
      const fhir = readBundle(file).entry.find((e) => e.resource.resourceType === "Patient")
        ?.resource as FhirResource & {
        id: string;
        name: { use?: string; family: string; given: string[] }[];
        birthDate: string;
        identifier: { system?: string; value: string; type?: { coding: { code: string }[] } }[];
      };
      const fhirIndex = deps.crypto.indexExact("patient.fhir_id", fhir.id);
      const [row] = await deps.db.select().from(patients).where(eq(patients.fhirId, fhirIndex));
      if (!row) throw new Error("patient row missing");
      // The FHIR id (= the MRN in Synthea) is stored only as its keyed index.
      expect(row.fhirId).not.toBe(fhir.id);
      const demo = deps.crypto.open<Demographics>(
        "patients",
        "demographics",
        row.id,
        row.demographics,
      );
      const official = fhir.name.find((n) => n.use === "official") ?? fhir.name[0];
      expect(demo.name.family).toBe(official?.family);
      expect(demo.name.given).toEqual(official?.given);
      expect(demo.birthDate).toBe(fhir.birthDate);
      expect(demo.ssn).toBe(
        fhir.identifier.find((i) => i.system === "http://hl7.org/fhir/sid/us-ssn")?.value,
      );
      expect(demo.mrn).toBe(
        fhir.identifier.find((i) => i.type?.coding.some((c) => c.code === "MR"))?.value,
      );
      expect(demo.mrn).toBeTruthy();
      expect(
        row.resource && deps.crypto.open("patients", "resource", row.id, row.resource),
      ).toEqual(fhir);
      expect(row.version).toBe(1);

      const byFamilyBirth = await deps.db
        .select({ fhirId: patients.fhirId })
        .from(patients)
        .where(
          eq(
            patients.familyBirthIndex,
            deps.crypto.familyBirth(demo.name.family.toUpperCase(), fhir.birthDate),
          ),
        );
      expect(byFamilyBirth).toEqual([{ fhirId: fhirIndex }]);
      const byMrn = await deps.db
        .select({ fhirId: patients.fhirId })
        .from(patients)
        .where(eq(patients.mrnIndex, deps.crypto.index("patient.mrn", demo.mrn ?? "")));
      expect(byMrn).toEqual([{ fhirId: fhirIndex }]);
    }
  });

  it("turns encounters into sealed clinical entries, past appointments and care relationships", async () => {
    const bundle = readBundle(PATIENT_FILES[0] ?? "");
    const encounters = bundle.entry
      .map((e) => e.resource)
      .filter((r) => r.resourceType === "Encounter") as (FhirResource & {
      id: string;
      period: { start: string; end: string };
      type: { text: string }[];
    })[];
    const enc = encounters[0];
    if (!enc) throw new Error("fixture has no encounter");
    const [entry] = await deps.db
      .select()
      .from(clinicalEntries)
      .where(eq(clinicalEntries.fhirId, enc.id));
    expect(entry?.kind).toBe("encounter");
    expect(entry?.source).toBe("fhir-import");
    expect(entry?.recordedAt.getTime()).toBe(new Date(enc.period.start).getTime());
    expect(entry?.authorPractitionerId).toBeTruthy();
    expect(entry && deps.crypto.open("clinical_entries", "body", entry.id, entry.body)).toEqual(
      enc,
    );

    const [appt] = await deps.db.select().from(appointments).where(eq(appointments.fhirId, enc.id));
    if (!appt?.reason) throw new Error("appointment or reason missing");
    expect(appt.startsAt.getTime()).toBe(new Date(enc.period.start).getTime());
    expect(appt.endsAt.getTime()).toBe(new Date(enc.period.end).getTime());
    expect(appt.status).toBe("completed");
    expect(appt.patientId).toBe(entry?.patientId);
    expect(deps.crypto.open("appointments", "reason", appt.id, appt.reason)).toBe(
      enc.type[0]?.text,
    );

    // validFrom is the earliest encounter start for the pair.
    const [rel] = await deps.db
      .select()
      .from(careRelationships)
      .where(
        and(
          eq(careRelationships.patientId, appt.patientId),
          eq(careRelationships.practitionerId, appt.practitionerId),
          eq(careRelationships.source, "encounter"),
        ),
      );
    const pairStarts = await deps.db
      .select({ startsAt: appointments.startsAt })
      .from(appointments)
      .where(
        and(
          eq(appointments.patientId, appt.patientId),
          eq(appointments.practitionerId, appt.practitionerId),
        ),
      );
    expect(rel?.validFrom.getTime()).toBe(Math.min(...pairStarts.map((r) => r.startsAt.getTime())));
    expect(rel?.validTo).toBeNull();
  });
});

/** A new organization + patient bundle used by the tests below; ids are unique per call. */
function smallBundle(tag: string, extra: FhirResource[] = []): Bundle {
  return {
    resourceType: "Bundle",
    type: "transaction",
    entry: [
      {
        fullUrl: `urn:uuid:00000000-0000-4000-8000-${tag.padStart(12, "0")}`,
        resource: { resourceType: "Organization", id: `org-${tag}`, name: `Clinic ${tag}` },
      },
      {
        fullUrl: `urn:uuid:10000000-0000-4000-8000-${tag.padStart(12, "0")}`,
        resource: {
          resourceType: "Patient",
          id: `pat-${tag}`,
          name: [{ use: "official", family: "Testfamily", given: ["Ann"] }],
          birthDate: "1990-01-02",
          managingOrganization: { reference: `Organization/org-${tag}` },
        },
      },
      ...extra.map((resource) => ({ resource })),
    ],
  };
}

describe("importBundle", () => {
  it("counts unknown resource types as skipped", async () => {
    const result = await importBundle(
      deps,
      smallBundle("1", [
        { resourceType: "Medication", id: "med-1" },
        { resourceType: "Claim" },
        { resourceType: "Basic", id: "b-1" },
      ]),
    );
    expect(result.skipped).toEqual({ Medication: 1, Claim: 1, Basic: 1 });
    expect(result.created).toMatchObject({ Organization: 1, Patient: 1 });
  });

  it("rejects malformed input with a PHI-free FhirImportError and writes nothing", async () => {
    const before = await rowCounts();
    const cases: unknown[] = [
      "{ not json",
      { resourceType: "Patient", id: "x" },
      { resourceType: "Bundle", type: "searchset", entry: [] },
      { resourceType: "Bundle", type: "batch", entry: {} },
      { ...smallBundle("2"), entry: [...smallBundle("2").entry, { fullUrl: "urn:uuid:x" }] },
      {
        resourceType: "Bundle",
        type: "batch",
        entry: [{ resource: { resourceType: "Patient", name: [] } }],
      },
    ];
    for (const input of cases) {
      const err = await importBundle(deps, input).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(FhirImportError);
      expect((err as FhirImportError).failure).toBe("malformed");
      expect((err as Error).message).not.toMatch(/Testfamily|Ann|1990/);
    }
    const noResource = await importBundle(deps, cases[4]).catch((e: unknown) => e);
    expect((noResource as FhirImportError).entryIndex).toBe(2);
    expect((noResource as Error).message).toBe("entry 2 has no resource");
    expect(await rowCounts()).toEqual(before);
  });

  it("refuses __proto__/constructor/prototype keys at any depth (superjson could never serve them)", async () => {
    const before = await rowCounts();
    const observation = (extra: Record<string, unknown>) =>
      smallBundle("ab12", [
        {
          resourceType: "Observation",
          id: "obs-ab12",
          status: "final",
          subject: { reference: "Patient/pat-ab12" },
          code: { text: "x" },
          ...extra,
        } as FhirResource,
      ]);
    const inputs: unknown[] = [
      observation({ note: [{ text: "ok", constructor: "x" }] }),
      observation({ valueQuantity: { value: 1, prototype: { a: 1 } } }),
      // JSON.parse makes "__proto__" an own key; only the text form can carry it.
      JSON.stringify(observation({})).replace(
        '"status":"final"',
        '"__proto__":{"x":1},"status":"final"',
      ),
    ];
    for (const input of inputs) {
      const err = await importBundle(deps, input).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(FhirImportError);
      expect((err as FhirImportError).failure).toBe("malformed");
      expect((err as FhirImportError).resourceType).toBe("Observation");
      expect((err as Error).message).toMatch(/__proto__, constructor or prototype key/);
    }
    expect(await rowCounts()).toEqual(before);
  });

  it("gives a stored practitioner the organization its bundle creates (writes in order)", async () => {
    // The practitioner exists without an organization; the next bundle creates the organization
    // and, through an Encounter, assigns it: the UPDATE must reach the server after the INSERT.
    await importBundle(deps, {
      resourceType: "Bundle",
      type: "batch",
      entry: [
        {
          resource: {
            resourceType: "Practitioner",
            id: "prac-order",
            name: [{ family: "Order", given: ["Olga"] }],
            identifier: [{ system: "http://hl7.org/fhir/sid/us-npi", value: "2222222222" }],
          },
        },
      ],
    });
    const result = await importBundle(
      deps,
      smallBundle("order", [
        {
          resourceType: "Encounter",
          id: "enc-order",
          status: "finished",
          subject: { reference: "Patient/pat-order" },
          serviceProvider: { reference: "Organization/org-order" },
          participant: [{ individual: { reference: "Practitioner/prac-order" } }],
          period: { start: "2020-01-01T10:00:00Z", end: "2020-01-01T10:30:00Z" },
        },
      ]),
    );
    expect(result.created).toMatchObject({ Organization: 1, Patient: 1, Encounter: 1 });
    expect(result.updated).toMatchObject({ Practitioner: 1 });
    const [org] = await deps.db
      .select({ id: organizations.id })
      .from(organizations)
      .where(eq(organizations.fhirId, "org-order"));
    const [prac] = await deps.db
      .select({ organizationId: practitioners.organizationId })
      .from(practitioners)
      .where(eq(practitioners.fhirId, "prac-order"));
    expect(org?.id).toBeDefined();
    expect(prac?.organizationId).toBe(org?.id);
  });

  it("rolls the whole bundle back when a later resource fails", async () => {
    const before = await snapshot();
    // The practitioner is written first; the patient then has no organization to belong to.
    const bundle: Bundle = {
      resourceType: "Bundle",
      type: "batch",
      entry: [
        {
          resource: {
            resourceType: "Practitioner",
            id: "prac-rollback",
            name: [{ family: "Rollback", given: ["Rita"] }],
            identifier: [{ system: "http://hl7.org/fhir/sid/us-npi", value: "1111111111" }],
          },
        },
        {
          resource: {
            resourceType: "Patient",
            id: "pat-rollback",
            name: [{ family: "Secretname", given: ["Hidden"] }],
            birthDate: "2001-02-03",
          },
        },
      ],
    };
    const err = await importBundle(deps, bundle).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FhirImportError);
    expect((err as FhirImportError).failure).toBe("unresolved");
    expect((err as Error).message).toContain("entry 1 (Patient)");
    expect((err as Error).message).not.toMatch(/Secretname|Hidden|2001/);
    expect(await snapshot()).toBe(before);
  });

  it("maps a database refusal to a PHI-free FhirImportError and rolls back", async () => {
    const [prac] = await deps.db.select().from(practitioners).limit(1);
    if (!prac?.npi) throw new Error("no practitioner");
    const before = await snapshot();
    // Two overlapping future visits with one practitioner: both "booked", so the exclusion
    // constraint refuses the second.
    const start = Date.now() + 7 * 86_400_000;
    const visit = (id: string, offsetMin: number): FhirResource => ({
      resourceType: "Encounter",
      id,
      status: "planned",
      subject: { reference: "Patient/pat-3" },
      participant: [
        {
          individual: {
            reference: `Practitioner?identifier=http://hl7.org/fhir/sid/us-npi|${prac.npi}`,
          },
        },
      ],
      period: {
        start: new Date(start + offsetMin * 60_000).toISOString(),
        end: new Date(start + (offsetMin + 30) * 60_000).toISOString(),
      },
      type: [{ text: "Secret reason" }],
    });
    const err = await importBundle(
      deps,
      smallBundle("3", [visit("enc-3a", 0), visit("enc-3b", 10)]),
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FhirImportError);
    expect((err as FhirImportError).failure).toBe("database");
    expect((err as FhirImportError).sqlState).toBe("23P01");
    expect((err as Error).message).toContain("appointments_no_overlap");
    expect((err as Error).message).not.toMatch(/Secret|Testfamily|pat-3|enc-3/);
    expect(await snapshot()).toBe(before);
  });

  it("resolves conditional references against the database", async () => {
    const [prac] = await deps.db.select().from(practitioners).limit(1);
    const [org] = await deps.db.select().from(organizations).limit(1);
    if (!prac?.npi || !org?.fhirId) throw new Error("fixtures missing");
    const bundle: Bundle = {
      resourceType: "Bundle",
      type: "batch",
      entry: [
        {
          resource: {
            resourceType: "Patient",
            id: "pat-cond",
            name: [{ family: "Conditional", given: ["Cora"] }],
            birthDate: "2010-05-06",
          },
        },
        {
          resource: {
            resourceType: "Encounter",
            id: "enc-cond",
            status: "finished",
            subject: { reference: "Patient/pat-cond" },
            participant: [
              {
                individual: {
                  reference: `Practitioner?identifier=http://hl7.org/fhir/sid/us-npi|${prac.npi}`,
                },
              },
            ],
            serviceProvider: {
              reference: `Organization?identifier=https://github.com/synthetichealth/synthea|${org.fhirId}`,
            },
            period: { start: "2020-01-01T10:00:00Z" },
            reasonCode: [{ text: "Checkup" }],
          },
        },
      ],
    };
    const result = await importBundle(deps, bundle);
    expect(result.created).toEqual({
      Patient: 1,
      Encounter: 1,
      Appointment: 1,
      CareRelationship: 1,
    });
    const [appt] = await deps.db
      .select()
      .from(appointments)
      .where(eq(appointments.fhirId, "enc-cond"));
    expect(appt?.practitionerId).toBe(prac.id);
    expect(appt?.organizationId).toBe(org.id);
    // No end: a 15-minute visit.
    expect(appt && appt.endsAt.getTime() - appt.startsAt.getTime()).toBe(15 * 60_000);
    expect(appt?.reason && deps.crypto.open("appointments", "reason", appt.id, appt.reason)).toBe(
      "Checkup",
    );
    const [pat] = await deps.db
      .select()
      .from(patients)
      .where(eq(patients.fhirId, deps.crypto.indexExact("patient.fhir_id", "pat-cond")));
    expect(pat?.organizationId).toBe(org.id);
    const [entry] = await deps.db
      .select()
      .from(clinicalEntries)
      .where(eq(clinicalEntries.fhirId, "enc-cond"));
    expect(entry?.authorPractitionerId).toBe(prac.id);
  });

  it("skips clinical resources whose patient is unknown", async () => {
    const result = await importBundle(deps, {
      resourceType: "Bundle",
      type: "collection",
      entry: [
        {
          resource: {
            resourceType: "Observation",
            id: "obs-orphan",
            subject: { reference: "urn:uuid:99999999-9999-4999-8999-999999999999" },
            effectiveDateTime: "2020-01-01",
          },
        },
        {
          resource: {
            resourceType: "Condition",
            id: "cond-orphan",
            subject: { reference: "Patient/nobody" },
          },
        },
      ],
    });
    expect(result.skipped).toEqual({ "Observation.orphan": 1, "Condition.orphan": 1 });
    expect(total(result.created)).toBe(0);
  });

  it("re-imports a changed Patient as an update and bumps its version", async () => {
    const file = PATIENT_FILES[0] ?? "";
    const bundle = readBundle(file);
    const patient = bundle.entry.find((e) => e.resource.resourceType === "Patient")?.resource;
    if (!patient?.id) throw new Error("fixture has no patient");
    patient.telecom = [{ system: "phone", value: "555-000-1234", use: "home" }];
    const fhirIndex = deps.crypto.indexExact("patient.fhir_id", patient.id);
    const [before] = await deps.db.select().from(patients).where(eq(patients.fhirId, fhirIndex));
    if (!before) throw new Error("patient not imported");

    const result = await importBundle(deps, bundle);
    expect(result.updated).toEqual({ Patient: 1 });
    expect(total(result.created)).toBe(0);

    const [after] = await deps.db.select().from(patients).where(eq(patients.fhirId, fhirIndex));
    if (!after) throw new Error("patient vanished");
    expect(after.id).toBe(before.id);
    expect(after.version).toBe(before.version + 1);
    expect(after.updatedAt.getTime()).toBeGreaterThan(before.updatedAt.getTime());
    expect(after.demographics).not.toBe(before.demographics);
    expect(after.familyBirthIndex).toBe(before.familyBirthIndex);
    const demo = deps.crypto.open<Demographics>(
      "patients",
      "demographics",
      after.id,
      after.demographics,
    );
    expect(demo.phone).toBe("555-000-1234");
    const [{ n } = { n: 0 }] = await deps.db
      .select({ n: count() })
      .from(patients)
      .where(eq(patients.fhirId, fhirIndex));
    expect(n).toBe(1);
  });

  it("adopts a practitioner created in Haven with the same NPI instead of duplicating it", async () => {
    const id = uuidv7();
    await deps.db.insert(practitioners).values({ id, name: "Dr. Pre Existing", npi: "5555555555" });
    const practitioner: FhirResource = {
      resourceType: "Practitioner",
      id: "prac-adopt",
      identifier: [{ system: "http://hl7.org/fhir/sid/us-npi", value: "5555555555" }],
      name: [{ family: "Existing", given: ["Pre"], prefix: ["Dr."] }],
    };
    const bundle = { resourceType: "Bundle", type: "batch", entry: [{ resource: practitioner }] };
    expect((await importBundle(deps, bundle)).updated).toEqual({ Practitioner: 1 });
    expect((await importBundle(deps, bundle)).unchanged).toEqual({ Practitioner: 1 });
    const rows = await deps.db
      .select()
      .from(practitioners)
      .where(eq(practitioners.npi, "5555555555"));
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ id, fhirId: "prac-adopt", name: "Dr. Pre Existing" });
  });

  it("does not write anything on a dry run", async () => {
    const before = await snapshot();
    const result = await importBundle(deps, smallBundle("4"), { dryRun: true });
    expect(result.created).toEqual({ Organization: 1, Patient: 1 });
    expect(await snapshot()).toBe(before);
  });
});
