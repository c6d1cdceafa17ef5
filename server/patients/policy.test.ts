import { describe, expect, it } from "vitest";
import { mapPatient } from "../fhir/map.ts";
import { type Actor, ROLES, type Role } from "../kernel/roles.ts";
import {
  type AccessBasis,
  ALL_DEMOGRAPHIC_FIELDS,
  canReadPatient,
  type PatientFacts,
  patientViewFor,
} from "./policy.ts";

const ORG = "00000000-0000-7000-8000-00000000000a";
const OTHER_ORG = "00000000-0000-7000-8000-00000000000b";
const PATIENT = "00000000-0000-7000-8000-000000000001";
const OTHER_PATIENT = "00000000-0000-7000-8000-000000000002";
const GRANT = "00000000-0000-7000-8000-0000000000aa";

function actor(role: Role, extra: Partial<Actor> = {}): Actor {
  return {
    userId: "00000000-0000-7000-8000-0000000000ff",
    role,
    organizationId: ORG,
    sessionId: "s",
    patientId: null,
    practitionerId: null,
    ...extra,
  };
}
const facts = (extra: Partial<PatientFacts> = {}): PatientFacts => ({
  patientId: PATIENT,
  organizationId: ORG,
  activeCareRelationship: false,
  breakGlassGrantId: null,
  ...extra,
});

describe("canReadPatient — every role × relevant fact", () => {
  const table: [string, Actor, PatientFacts, AccessBasis | string][] = [
    ["patient self", actor("patient", { patientId: PATIENT }), facts(), "allow:self"],
    ["patient other", actor("patient", { patientId: OTHER_PATIENT }), facts(), "not_self"],
    ["patient without record", actor("patient"), facts(), "not_self"],
    [
      "patient other, even with a grant id in the facts",
      actor("patient", { patientId: OTHER_PATIENT }),
      facts({ breakGlassGrantId: GRANT }),
      "not_self",
    ],
    [
      "clinician with care",
      actor("clinician", { practitionerId: "p" }),
      facts({ activeCareRelationship: true }),
      "allow:care_relationship",
    ],
    [
      "clinician with care and a grant: care wins",
      actor("clinician", { practitionerId: "p" }),
      facts({ activeCareRelationship: true, breakGlassGrantId: GRANT }),
      "allow:care_relationship",
    ],
    [
      "clinician without care",
      actor("clinician", { practitionerId: "p" }),
      facts(),
      "no_care_relationship",
    ],
    [
      "clinician without care, with an active grant",
      actor("clinician", { practitionerId: "p" }),
      facts({ breakGlassGrantId: GRANT }),
      "allow:break_glass",
    ],
    [
      "clinician without practitioner, with an active grant",
      actor("clinician"),
      facts({ breakGlassGrantId: GRANT }),
      "allow:break_glass",
    ],
    [
      "clinician same org, no care",
      actor("clinician", { practitionerId: "p" }),
      facts({ organizationId: ORG }),
      "no_care_relationship",
    ],
    [
      "clinician without practitioner",
      actor("clinician"),
      facts({ activeCareRelationship: true }),
      "no_care_relationship",
    ],
    ["staff own org", actor("staff"), facts(), "allow:organization"],
    ["staff other org", actor("staff"), facts({ organizationId: OTHER_ORG }), "other_organization"],
    [
      "staff other org with a grant id in the facts",
      actor("staff"),
      facts({ organizationId: OTHER_ORG, breakGlassGrantId: GRANT }),
      "other_organization",
    ],
    ["admin own org", actor("admin"), facts(), "allow:organization"],
    ["admin other org", actor("admin"), facts({ organizationId: OTHER_ORG }), "other_organization"],
    ["service", actor("service"), facts(), "role"],
    [
      "service with a grant id in the facts",
      actor("service"),
      facts({ breakGlassGrantId: GRANT }),
      "role",
    ],
  ];
  it.each(table)("%s", (_name, a, f, expected) => {
    const d = canReadPatient(a, f);
    if (expected === "allow:break_glass") {
      expect(d).toEqual({ allowed: true, basis: "break_glass", breakGlassGrantId: GRANT });
    } else if (expected.startsWith("allow:")) {
      expect(d).toEqual({ allowed: true, basis: expected.slice("allow:".length) });
    } else {
      expect(d).toEqual({ allowed: false, rule: expected });
    }
  });

  it("covers every role", () => {
    const covered = new Set(table.map(([, a]) => a.role));
    expect([...covered].sort()).toEqual([...ROLES].sort());
  });
});

describe("patientViewFor — minimum necessary whitelists", () => {
  it.each(ROLES)("%s has a defined view", (role) => {
    expect(patientViewFor(role)).toBeDefined();
  });

  it("each role's view, exactly", () => {
    const frontDesk = ["name", "birthDate", "sex", "phone", "email", "address", "mrn", "deceased"];
    expect(patientViewFor("patient")).toEqual({
      demographics: true,
      demographicFields: [...ALL_DEMOGRAPHIC_FIELDS],
      clinicalBodies: true,
      appointmentReasons: true,
    });
    expect(patientViewFor("clinician")).toEqual({
      demographics: true,
      demographicFields: frontDesk.slice(0, 6).concat(["mrn", "deceased"]),
      clinicalBodies: true,
      appointmentReasons: true,
    });
    for (const role of ["staff", "admin"] as const) {
      expect(patientViewFor(role)).toEqual({
        demographics: true,
        demographicFields: frontDesk,
        clinicalBodies: false,
        appointmentReasons: true,
      });
    }
    expect(patientViewFor("service")).toEqual({
      demographics: false,
      demographicFields: [],
      clinicalBodies: false,
      appointmentReasons: false,
    });
  });

  it("only the patient sees the SSN; staff and admin never get clinical bodies", () => {
    for (const role of ROLES) {
      expect(patientViewFor(role).demographicFields.includes("ssn")).toBe(role === "patient");
    }
    expect(patientViewFor("staff").clinicalBodies).toBe(false);
    expect(patientViewFor("admin").clinicalBodies).toBe(false);
    expect(patientViewFor("clinician").clinicalBodies).toBe(true);
    expect(patientViewFor("patient").clinicalBodies).toBe(true);
  });

  it("ALL_DEMOGRAPHIC_FIELDS names every Demographics key once", () => {
    expect(new Set(ALL_DEMOGRAPHIC_FIELDS).size).toBe(ALL_DEMOGRAPHIC_FIELDS.length);
    // mapPatient builds every Demographics key, so a field added there must be placed in a view.
    const keys = Object.keys(mapPatient({ resourceType: "Patient" }));
    expect([...ALL_DEMOGRAPHIC_FIELDS].sort()).toEqual(keys.sort());
  });
});
