import { describe, expect, it } from "vitest";
import { canonicalJson } from "../kernel/canonical-json.ts";
import {
  appointmentStatus,
  authorReferences,
  careTeamPeriod,
  encounterReason,
  encounterWindow,
  mainTime,
  mapClinical,
  mapOrganization,
  mapPatient,
  mapPractitioner,
  parseFhirDateTime,
  patientReference,
} from "./map.ts";
import { BundleIndex, Directory, Lookups, parseReference } from "./references.ts";
import type { FhirResource } from "./types.ts";

const IMPORTED_AT = new Date("2024-06-01T12:00:00Z");

/** Trimmed from the Synthea fixture (synthetic data). */
const patient: FhirResource = {
  resourceType: "Patient",
  id: "475d72ca-91c7-7211-97e3-f000af33fc04",
  identifier: [
    {
      system: "https://github.com/synthetichealth/synthea",
      value: "475d72ca-91c7-7211-97e3-f000af33fc04",
    },
    {
      type: { coding: [{ system: "http://terminology.hl7.org/CodeSystem/v2-0203", code: "MR" }] },
      system: "http://hospital.smarthealthit.org",
      value: "mrn-475d72ca",
    },
    {
      type: { coding: [{ system: "http://terminology.hl7.org/CodeSystem/v2-0203", code: "SS" }] },
      system: "http://hl7.org/fhir/sid/us-ssn",
      value: "999-97-5872",
    },
  ],
  name: [
    { use: "nickname", family: "Nick", given: ["N"] },
    { use: "official", family: "Schowalter414", given: ["Bibi254", "Middle"], prefix: ["Ms."] },
  ],
  telecom: [
    { system: "email", value: "bibi@example.com" },
    { system: "phone", value: "555-259-9533", use: "home" },
    { system: "phone", value: "555-000-0000", use: "work" },
  ],
  gender: "female",
  birthDate: "2009-04-29",
  address: [
    {
      line: ["346 Marvin Divide Suite 33"],
      city: "Westborough",
      state: "Massachusetts",
      postalCode: "01581",
      country: "US",
    },
    { line: ["elsewhere"], city: "Other" },
  ],
};

describe("mapPatient", () => {
  it("maps the official name, first phone/email/address, SSN and MRN", () => {
    expect(mapPatient(patient)).toEqual({
      name: { family: "Schowalter414", given: ["Bibi254", "Middle"], prefix: ["Ms."], suffix: [] },
      birthDate: "2009-04-29",
      sex: "female",
      phone: "555-259-9533",
      email: "bibi@example.com",
      address: {
        line: ["346 Marvin Divide Suite 33"],
        city: "Westborough",
        state: "Massachusetts",
        postalCode: "01581",
        country: "US",
      },
      ssn: "999-97-5872",
      mrn: "mrn-475d72ca",
      deceased: null,
    });
  });

  it("falls back to the first name and tolerates missing or ill-typed fields", () => {
    const demo = mapPatient({
      resourceType: "Patient",
      name: [{ family: "First", given: ["A", 3] }, { family: "Second" }],
      gender: "nonsense",
      telecom: "not-an-array",
      identifier: [{ type: { coding: [{ code: "MR" }] } }],
    });
    expect(demo).toEqual({
      name: { family: "First", given: ["A"], prefix: [], suffix: [] },
      birthDate: null,
      sex: "unknown",
      phone: null,
      email: null,
      address: null,
      ssn: null,
      mrn: null,
      deceased: null,
    });
    expect(mapPatient({ resourceType: "Patient" }).name.family).toBe("");
  });

  it("maps deceasedDateTime and deceasedBoolean", () => {
    expect(
      mapPatient({ resourceType: "Patient", deceasedDateTime: "2020-01-01T00:00:00Z" }).deceased,
    ).toBe("2020-01-01T00:00:00Z");
    expect(mapPatient({ resourceType: "Patient", deceasedBoolean: true }).deceased).toBe(true);
    expect(mapPatient({ resourceType: "Patient", deceasedBoolean: false }).deceased).toBeNull();
  });
});

describe("mapPractitioner and mapOrganization", () => {
  it("formats the practitioner name and finds the NPI", () => {
    expect(
      mapPractitioner({
        resourceType: "Practitioner",
        identifier: [{ system: "http://hl7.org/fhir/sid/us-npi", value: "9999984089" }],
        name: [{ family: "Ferry570", given: ["Cordell41"], prefix: ["Dr."] }],
      }),
    ).toEqual({ name: "Dr. Cordell41 Ferry570", npi: "9999984089" });
    expect(
      mapPractitioner({ resourceType: "Practitioner", name: [{ family: "Lee", given: ["Ana"] }] }),
    ).toEqual({
      name: "Dr. Ana Lee",
      npi: null,
    });
    expect(mapPractitioner({ resourceType: "Practitioner" }).name).toBe("Unnamed practitioner");
  });

  it("takes the organization name", () => {
    expect(mapOrganization({ resourceType: "Organization", name: " PCP24285 " })).toEqual({
      name: "PCP24285",
    });
    expect(mapOrganization({ resourceType: "Organization" })).toEqual({
      name: "Unnamed organization",
    });
  });
});

describe("mapClinical", () => {
  const at = (iso: string) => new Date(iso);
  it.each([
    [
      "Encounter",
      { period: { start: "2011-04-06T21:20:23-07:00" } },
      "encounter",
      "2011-04-07T04:20:23Z",
    ],
    [
      "Condition",
      { onsetDateTime: "2020-03-01T00:00:00Z", recordedDate: "2020-03-06T20:20:23-08:00" },
      "condition",
      "2020-03-07T04:20:23Z",
    ],
    [
      "Observation",
      { effectiveDateTime: "2020-03-06", issued: "2021-01-01T00:00:00Z" },
      "observation",
      "2020-03-06",
    ],
    [
      "Immunization",
      { occurrenceDateTime: "2019-05-05T10:00:00Z" },
      "immunization",
      "2019-05-05T10:00:00Z",
    ],
    [
      "Procedure",
      { performedPeriod: { start: "2018-01-01T01:00:00Z" } },
      "procedure",
      "2018-01-01T01:00:00Z",
    ],
    [
      "Procedure",
      { performedDateTime: "2018-02-02T02:00:00Z" },
      "procedure",
      "2018-02-02T02:00:00Z",
    ],
    [
      "DiagnosticReport",
      { issued: "2017-07-07T07:07:07.175Z" },
      "diagnostic-report",
      "2017-07-07T07:07:07.175Z",
    ],
    ["CarePlan", { period: { start: "2016-06-06" } }, "care-plan", "2016-06-06"],
    [
      "CareTeam",
      { period: { start: "2015-05-05T05:05:05Z" } },
      "care-team",
      "2015-05-05T05:05:05Z",
    ],
  ] as const)("%s → kind and main time", (type, fields, kind, iso) => {
    expect(mapClinical(type, { resourceType: type, ...fields }, IMPORTED_AT)).toEqual({
      kind,
      recordedAt: at(iso),
    });
  });

  it("falls back to the import time when no time parses", () => {
    expect(
      mapClinical(
        "Observation",
        { resourceType: "Observation", effectiveDateTime: "yesterday" },
        IMPORTED_AT,
      ),
    ).toEqual({ kind: "observation", recordedAt: IMPORTED_AT });
    expect(mainTime({ resourceType: "Observation" })).toBeNull();
  });

  it("finds the patient and author references", () => {
    expect(
      patientReference({ resourceType: "Immunization", patient: { reference: "urn:uuid:p" } }),
    ).toBe("urn:uuid:p");
    expect(
      patientReference({ resourceType: "Condition", subject: { reference: "Patient/1" } }),
    ).toBe("Patient/1");
    expect(
      authorReferences("Procedure", {
        resourceType: "Procedure",
        recorder: { reference: "Practitioner/r" },
        performer: [{ actor: { reference: "Practitioner/p" } }],
        asserter: { reference: "Practitioner/a" },
      }),
    ).toEqual(["Practitioner/r", "Practitioner/p", "Practitioner/a"]);
    expect(
      authorReferences("Observation", {
        resourceType: "Observation",
        performer: [{ reference: "Practitioner/o" }],
      }),
    ).toEqual(["Practitioner/o"]);
    expect(
      authorReferences("Encounter", {
        resourceType: "Encounter",
        participant: [{ individual: { reference: "Practitioner/e" } }, { type: [] }],
      }),
    ).toEqual(["Practitioner/e"]);
  });
});

describe("encounter helpers", () => {
  it("parses FHIR date-times, partial dates as UTC", () => {
    expect(parseFhirDateTime("2020")?.toISOString()).toBe("2020-01-01T00:00:00.000Z");
    expect(parseFhirDateTime("2020-03")?.toISOString()).toBe("2020-03-01T00:00:00.000Z");
    expect(parseFhirDateTime("2020-03-06T10:00:00")?.toISOString()).toBe(
      "2020-03-06T10:00:00.000Z",
    );
    expect(parseFhirDateTime("2020-13-45")).toBeNull();
    expect(parseFhirDateTime("March 6")).toBeNull();
    expect(parseFhirDateTime(20200306)).toBeNull();
  });

  it("derives the appointment window, defaulting to 15 minutes", () => {
    const start = "2020-01-01T10:00:00Z";
    expect(
      encounterWindow({
        resourceType: "Encounter",
        period: { start, end: "2020-01-01T10:40:00Z" },
      }),
    ).toEqual({
      startsAt: new Date(start),
      endsAt: new Date("2020-01-01T10:40:00Z"),
    });
    for (const end of [undefined, start, "2020-01-01T09:00:00Z", "garbage"]) {
      expect(
        encounterWindow({ resourceType: "Encounter", period: { start, end } })?.endsAt,
      ).toEqual(new Date("2020-01-01T10:15:00Z"));
    }
    expect(encounterWindow({ resourceType: "Encounter" })).toBeNull();
  });

  it("maps encounter status to appointment status", () => {
    const now = new Date("2024-01-01T00:00:00Z");
    const past = new Date("2023-01-01T00:00:00Z");
    const future = new Date("2025-01-01T00:00:00Z");
    expect(appointmentStatus("finished", future, now)).toBe("completed");
    expect(appointmentStatus("cancelled", past, now)).toBe("cancelled");
    expect(appointmentStatus("entered-in-error", past, now)).toBeNull();
    expect(appointmentStatus("planned", past, now)).toBe("no_show");
    expect(appointmentStatus("planned", future, now)).toBe("booked");
    expect(appointmentStatus("in-progress", past, now)).toBe("completed");
    expect(appointmentStatus("arrived", future, now)).toBe("checked_in");
    expect(appointmentStatus(undefined, past, now)).toBe("completed");
    expect(appointmentStatus("unknown", future, now)).toBe("booked");
  });

  it("takes the reason from type[0].text, else reasonCode[0].text", () => {
    expect(
      encounterReason({
        resourceType: "Encounter",
        type: [{ text: "Well child" }],
        reasonCode: [{ text: "x" }],
      }),
    ).toBe("Well child");
    expect(
      encounterReason({
        resourceType: "Encounter",
        type: [{ coding: [] }],
        reasonCode: [{ text: "Cough" }],
      }),
    ).toBe("Cough");
    expect(encounterReason({ resourceType: "Encounter" })).toBeNull();
  });

  it("reads a care team period", () => {
    expect(careTeamPeriod({ resourceType: "CareTeam", period: { start: "2020-01-01" } })).toEqual({
      start: new Date("2020-01-01"),
      end: null,
    });
  });
});

describe("canonicalJson", () => {
  it("sorts keys at every depth and keeps array order", () => {
    const a = { b: 1, a: { d: [3, { z: 1, y: 2 }], c: "x" }, u: undefined };
    const b = { a: { c: "x", d: [3, { y: 2, z: 1 }] }, b: 1 };
    expect(canonicalJson(a)).toBe('{"a":{"c":"x","d":[3,{"y":2,"z":1}]},"b":1}');
    expect(canonicalJson(a)).toBe(canonicalJson(b));
    expect(canonicalJson({ d: [1, 2] })).not.toBe(canonicalJson({ d: [2, 1] }));
    expect(canonicalJson([undefined, null, "é"])).toBe('[null,null,"é"]');
  });
});

describe("references", () => {
  it("parses the reference forms", () => {
    expect(parseReference("urn:uuid:475d72ca-91c7-7211-97e3-f000af33fc04")).toEqual({
      kind: "url",
      url: "urn:uuid:475d72ca-91c7-7211-97e3-f000af33fc04",
    });
    expect(parseReference("Patient/123")).toEqual({
      kind: "literal",
      resourceType: "Patient",
      id: "123",
      url: "Patient/123",
    });
    expect(parseReference("https://fhir.example/r4/Practitioner/p-1/_history/2")).toMatchObject({
      kind: "literal",
      resourceType: "Practitioner",
      id: "p-1",
    });
    expect(
      parseReference("Practitioner?identifier=http://hl7.org/fhir/sid/us-npi|9999984089"),
    ).toEqual({
      kind: "conditional",
      resourceType: "Practitioner",
      system: "http://hl7.org/fhir/sid/us-npi",
      value: "9999984089",
    });
    expect(
      parseReference(
        "Organization?identifier=https%3A%2F%2Fgithub.com%2Fsynthetichealth%2Fsynthea%7Cabc",
      ),
    ).toEqual({
      kind: "conditional",
      resourceType: "Organization",
      system: "https://github.com/synthetichealth/synthea",
      value: "abc",
    });
    expect(parseReference("Practitioner?name=Smith")).toBeNull();
    expect(parseReference("#contained")).toBeNull();
  });

  it("resolves inside the bundle first, then describes the database lookup", () => {
    const entries = [
      {
        index: 0,
        fullUrl: "urn:uuid:11111111-1111-4111-8111-111111111111",
        fhirId: "prac-1",
        resource: {
          resourceType: "Practitioner",
          id: "prac-1",
          identifier: [{ system: "http://hl7.org/fhir/sid/us-npi", value: "42" }],
        },
      },
      {
        index: 1,
        fullUrl: undefined,
        fhirId: "pat-1",
        resource: { resourceType: "Patient", id: "pat-1" },
      },
    ];
    const index = new BundleIndex(entries);
    const inBundle = { by: "id", resourceType: "Practitioner", fhirId: "prac-1", inBundle: true };
    expect(index.target("urn:uuid:11111111-1111-4111-8111-111111111111")).toEqual(inBundle);
    expect(index.target("Practitioner?identifier=http://hl7.org/fhir/sid/us-npi|42")).toEqual(
      inBundle,
    );
    expect(index.target("Practitioner/prac-1")).toEqual(inBundle);
    expect(index.target("Patient/pat-1")).toMatchObject({ fhirId: "pat-1", inBundle: true });
    expect(index.target("Patient/elsewhere")).toEqual({
      by: "id",
      resourceType: "Patient",
      fhirId: "elsewhere",
      inBundle: false,
    });
    expect(index.target("urn:uuid:22222222-2222-4222-8222-222222222222")).toEqual({
      by: "id",
      resourceType: null,
      fhirId: "22222222-2222-4222-8222-222222222222",
      inBundle: false,
    });
    const byNpi = index.target("Practitioner?identifier=http://hl7.org/fhir/sid/us-npi|77");
    expect(byNpi).toEqual({
      by: "identifier",
      resourceType: "Practitioner",
      system: "http://hl7.org/fhir/sid/us-npi",
      value: "77",
    });

    const lookups = new Lookups();
    lookups.add(byNpi, "Practitioner");
    lookups.add(
      index.target("Organization?identifier=https://github.com/synthetichealth/synthea|org-9"),
      "Organization",
    );
    lookups.add(index.target("Patient/elsewhere"), "Organization"); // wrong type: ignored
    expect([...lookups.practitionerNpis]).toEqual(["77"]);
    expect([...lookups.organizations]).toEqual(["org-9"]);

    const dir = new Directory();
    const row = {
      id: "row-1",
      fhirId: "db-prac",
      npi: "77",
      name: "Dr. A B",
      organizationId: null,
    };
    dir.addPractitioner("db-prac", row);
    expect(dir.resolve(byNpi, "Practitioner")).toBe(row);
    expect(dir.resolve(byNpi, "Patient")).toBeUndefined();
    expect(
      dir.resolve(
        { by: "id", resourceType: null, fhirId: "db-prac", inBundle: false },
        "Practitioner",
      ),
    ).toBe(row);
  });
});
